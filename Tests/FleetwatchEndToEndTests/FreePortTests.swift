import FleetwatchProcesses
import FleetwatchTestSupport
import Foundation
import Testing

/// The ports the tests give hubs and servers: never handed out twice, and outside the kernel's ephemeral range, so an
/// outgoing connection cannot take one as its source port before the server binds it.
struct FreePortTests {
    @Test func portsAreDistinctBindableAndBelowTheEphemeralRange() throws {
        let range = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8))?
            .split(whereSeparator: \.isWhitespace).compactMap { Int($0) }.first ?? 32_768
        let ports = try (0..<100).map { _ in try freeTCPPort() }
        #expect(Set(ports).count == ports.count)
        #expect(ports.allSatisfy { $0 < range }, "\(ports.filter { $0 >= range }) at or above \(range)")
        #expect(ports.prefix(10).allSatisfy { LoopbackPort.canBind($0) }, "each can be bound")
    }
}
