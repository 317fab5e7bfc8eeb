import FleetwatchProcesses
import FleetwatchTestSupport
import Foundation
import Testing

/// The harness's answer to a port taken between `freeTCPPort()` and the hub's bind (another process of the
/// parallel suite did it once in CI, and a test failed for it): the hub is started again on another port.
@Suite(.enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct HubPortTakenTests {
    @Test(.timeLimit(.minutes(2)))
    func aHubWhosePortWasTakenStartsOnAnother() async throws {
        let db = try await TestDatabase.create()
        let hub = try HubUnderTest(database: db)
        let taken = hub.port
        let holder = try Self.hold(taken)
        defer { close(holder) }
        #expect(!LoopbackPort.canBind(taken))

        try await hub.start()
        defer { Task { await hub.kill(SIGTERM) } }
        #expect(hub.port != taken)
        #expect(try await HubUnderTest.httpGet(port: hub.port, path: "/health/ready") == 200)
        #expect(hub.log.contains("Address already in use"), "the first start did not meet the taken port: \(hub.log.suffix(1500))")
    }

    /// A hub given its port by the test is not moved: the test may have told others where it listens.
    @Test(.timeLimit(.minutes(2)))
    func aHubGivenItsPortIsNotMoved() async throws {
        let db = try await TestDatabase.create()
        let taken = try freeTCPPort()
        let holder = try Self.hold(taken)
        defer { close(holder) }
        let hub = try HubUnderTest(database: db, port: taken)
        await #expect(throws: TestSupportError.self) { try await hub.start() }
        #expect(hub.port == taken)
        #expect(hub.log.contains("Address already in use"))
    }

    /// A socket bound to 127.0.0.1:`port`, not listening: a connection to it is refused, as to a port nobody holds,
    /// and a server cannot bind the port.
    static func hold(_ port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard bound else { close(fd); throw TestSupportError("cannot hold port \(port)") }
        return fd
    }
}
