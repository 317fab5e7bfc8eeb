import FleetwatchTestSupport
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The ports the tests give hubs and servers: never handed out twice, and outside the kernel's ephemeral range, so an
/// outgoing connection cannot take one as its source port before the server binds it.
struct FreePortTests {
    @Test func portsAreDistinctBindableAndBelowTheEphemeralRange() throws {
        let range = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8))?
            .split(whereSeparator: \.isWhitespace).compactMap { Int($0) }.first ?? 32_768
        let ports = try (0..<100).map { _ in try freeTCPPort() }
        #expect(Set(ports).count == ports.count)
        #expect(ports.allSatisfy { $0 < range }, "\(ports.filter { $0 >= range }) at or above \(range)")
        // Each can be listened on.
        for port in ports.prefix(10) {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            let bound = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
            }
            #expect(bound && listen(fd, 1) == 0, "port \(port)")
        }
    }
}
