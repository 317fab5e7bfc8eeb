import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import PostgresNIO
import Testing

/// The paths operators deploy on (issue 15), against real hub processes: a balancer in front, a
/// least-privileged database role, secrets on disk, the sidecar's local port, notifications, outages.
@Suite(.serialized, .enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct OperatorSecurityTests {
    static let adminPassword = "proxy-test-password"

    /// One HTTP/1.1 request from `source`; the whole response (head and body).
    static func request(port: Int, source: String, _ text: String) async throws -> String {
        let socket = try RawSocket(port: port, source: source)
        defer { socket.disconnect() }
        let deadline = ContinuousClock.now + .seconds(10)
        guard await socket.write(Array(text.utf8), until: deadline) else { return "" }
        var received: [UInt8] = []
        while case .data(let bytes) = await socket.read(until: deadline) { received += bytes }
        return String(decoding: received, as: UTF8.self)
    }

    static func signIn(port: Int, source: String, password: String, headers: String = "") async throws -> String {
        let body = #"{"username": "admin", "password": "\#(password)"}"#
        return try await request(port: port, source: source, "POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + headers + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body)
    }

    static func status(_ response: String) -> Int? {
        response.split(separator: " ", maxSplits: 2).dropFirst().first.flatMap { Int($0) }
    }

    static func head(_ response: String) -> String {
        response.components(separatedBy: "\r\n\r\n").first?.lowercased() ?? ""
    }

    /// X-Forwarded-For and -Proto count only from a trusted proxy (127.0.0.1 here); from anyone else (127.0.0.2)
    /// they are ignored. Behind the proxy, each client has its own sign-in lock-out and audit address, and an
    /// HTTPS client gets a Secure cookie and HSTS.
    @Test(.timeLimit(.minutes(3)))
    func forwardedHeadersOnlyFromTrustedProxies() async throws {
        let db = try await TestDatabase.create()
        try await registerBots([], token: "secret", in: db)
        let config = NSTemporaryDirectory() + "/\(db.url.database)-proxy.json"
        try #"{"hub": {"trusted_proxies": ["127.0.0.1/32"]}, "dashboard": {"admin_password": "\#(Self.adminPassword)"}}"#
            .write(toFile: config, atomically: true, encoding: .utf8)
        let hub = try HubUnderTest(database: db)
        try await hub.start(extra: ["--config", config])
        defer { Task { await hub.kill(SIGTERM) } }

        // An untrusted peer claiming to be someone else and to use HTTPS: neither is believed.
        let spoofed = try await Self.signIn(port: hub.port, source: "127.0.0.2", password: Self.adminPassword,
                                            headers: "X-Forwarded-For: 198.51.100.1\r\nX-Forwarded-Proto: https\r\n")
        #expect(Self.status(spoofed) == 200)
        #expect(!Self.head(spoofed).contains("secure") && !Self.head(spoofed).contains("strict-transport-security"), "\(Self.head(spoofed))")

        // Ten wrong passwords from one client behind the proxy lock out that client only.
        for _ in 0..<10 {
            let r = try await Self.signIn(port: hub.port, source: "127.0.0.1", password: "wrong-password", headers: "X-Forwarded-For: 203.0.113.5\r\n")
            #expect(Self.status(r) == 401)
        }
        let locked = try await Self.signIn(port: hub.port, source: "127.0.0.1", password: Self.adminPassword, headers: "X-Forwarded-For: 203.0.113.5\r\n")
        #expect(Self.status(locked) == 429)
        // Another client through the same proxy, over HTTPS at the balancer: signed in, Secure cookie, HSTS.
        let other = try await Self.signIn(port: hub.port, source: "127.0.0.1", password: Self.adminPassword,
                                          headers: "X-Forwarded-For: 203.0.113.6\r\nX-Forwarded-Proto: https\r\n")
        #expect(Self.status(other) == 200)
        let head = Self.head(other)
        #expect(head.contains("set-cookie: fw_session=") && head.contains("; secure") && head.contains("strict-transport-security: max-age=31536000"), "\(head)")

        // The audit log names the clients (and the proxy they came through), and the spoofer by its own address.
        let remotes = try await db.withClient { client in
            try await client.query("SELECT remote, outcome FROM audit_log WHERE action = 'POST /auth/login' ORDER BY id", logger: Logger(label: "t"))
                .decode((String?, String).self).all()
        }
        #expect(remotes.contains { $0.0?.hasPrefix("127.0.0.2:") == true && $0.1 == "accepted" }, "\(remotes)")
        #expect(remotes.contains { $0.0?.hasPrefix("203.0.113.5 via 127.0.0.1:") == true && $0.1 == "refused" }, "\(remotes)")
        #expect(remotes.contains { $0.0?.hasPrefix("203.0.113.6 via 127.0.0.1:") == true && $0.1 == "accepted" }, "\(remotes)")
        #expect(!remotes.contains { $0.0?.contains("198.51.100.1") == true })
    }
}
