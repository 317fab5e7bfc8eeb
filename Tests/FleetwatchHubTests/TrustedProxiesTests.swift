@testable import FleetwatchHub
import Testing

/// Who the client is behind a proxy: only trusted peers are believed, and only for hops they appended.
@Suite struct TrustedProxiesTests {
    let trusted = try! TrustedProxies(parsing: ["10.0.0.0/8", "192.0.2.7", "fd00::/8"], source: "test")

    @Test func networks() throws {
        #expect(trusted.contains("10.200.3.4") && trusted.contains("192.0.2.7") && trusted.contains("fd12::1"))
        #expect(!trusted.contains("11.0.0.1") && !trusted.contains("192.0.2.8") && !trusted.contains("fe80::1"))
        #expect(trusted.contains("::ffff:10.0.0.9"))   // IPv4-mapped, as a dual-stack listener reports it
        #expect(throws: ConfigurationError.self) { try TrustedProxies(parsing: ["10.0.0.0/33"], source: "x") }
        #expect(throws: ConfigurationError.self) { try TrustedProxies(parsing: ["proxy.internal"], source: "x") }
        #expect(TrustedProxies.Network("0.0.0.0/0")?.contains([8, 8, 8, 8]) == true)
    }

    @Test func clientBehindTrustedProxies() {
        // client → 10.1.1.1 (balancer) → 10.2.2.2 (ingress) → hub. The client's own X-Forwarded-For entry is ignored.
        let o = trusted.origin(peerIP: "10.2.2.2", peerPort: 4431, forwardedFor: "6.6.6.6, 203.0.113.5, 10.1.1.1",
                               forwardedProto: "https", directTLS: false)
        #expect(o.client == "203.0.113.5" && o.https)
        #expect(o.remote == "203.0.113.5 via 10.2.2.2:4431")
        // Ports and IPv6 brackets in entries.
        #expect(trusted.origin(peerIP: "10.0.0.1", peerPort: 1, forwardedFor: "[2001:db8::5]:443", forwardedProto: nil, directTLS: false).client == "2001:db8::5")
        #expect(trusted.origin(peerIP: "10.0.0.1", peerPort: 1, forwardedFor: "203.0.113.9:5555", forwardedProto: "http", directTLS: true).https == false)
        // Garbage stops the walk at the last good hop (the proxy itself here).
        #expect(trusted.origin(peerIP: "10.0.0.1", peerPort: 1, forwardedFor: "203.0.113.5, <script>", forwardedProto: nil, directTLS: false).client == "10.0.0.1")
        // Only proxies in the chain: the leftmost.
        #expect(trusted.origin(peerIP: "10.0.0.1", peerPort: 1, forwardedFor: "10.9.9.9", forwardedProto: nil, directTLS: false).client == "10.9.9.9")
    }

    @Test func untrustedPeersAreNotBelieved() {
        let o = trusted.origin(peerIP: "198.51.100.4", peerPort: 999, forwardedFor: "1.2.3.4", forwardedProto: "https", directTLS: false)
        #expect(o.client == "198.51.100.4" && !o.https && o.remote == "198.51.100.4:999")
        let none = TrustedProxies()
        #expect(none.origin(peerIP: "10.0.0.1", peerPort: 1, forwardedFor: "1.2.3.4", forwardedProto: "https", directTLS: true) ==
                .init(client: "10.0.0.1", remote: "10.0.0.1:1", https: true))
    }
}
