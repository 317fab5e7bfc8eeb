import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import PostgresNIO
import Synchronization
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

    static let artifacts = ProcessInfo.processInfo.environment["FLEETWATCH_TEST_ARTIFACTS"] ?? NSTemporaryDirectory()

    /// The SQLSTATE a statement fails with, or nil if it succeeds.
    static func sqlState(_ db: TestDatabase, _ sql: String) async -> String? {
        do {
            try await db.withClient { client in _ = try await client.query(PostgresQuery(unsafeSQL: sql), logger: Logger(label: "t")).all() }
            return nil
        } catch let error as PSQLError {
            return error.serverInfo?[.sqlState] ?? "\(error.code)"
        } catch {
            return "\(error)"
        }
    }

    /// The embedded cluster: the hub's role owns its database and nothing else (no roles, no pg_authid, no
    /// programs on the server); every secret file is 0600 from the moment it exists; a superuser (the cluster's
    /// own) makes analysts' logins.
    @Test(.timeLimit(.minutes(3)))
    func embeddedHubRoleIsLeastPrivilegedAndSecretsArePrivate() async throws {
        let dir = "\(Self.artifacts)/fw-embedded-\(UUID().uuidString.prefix(8))"
        let port = try freeTCPPort()
        let secrets = ["pg-password", "pg-admin-password", "initial-admin-password"]
        // Watch the files' modes while the hub starts for the first time.
        let seen = Mutex<[String: Set<Int>]>([:])
        let watcher = Task {
            while !Task.isCancelled {
                for name in secrets {
                    if let mode = try? FileManager.default.attributesOfItem(atPath: "\(dir)/\(name)")[.posixPermissions] as? Int {
                        seen.withLock { _ = $0[name, default: []].insert(mode) }
                    }
                }
                try? await Task.sleep(for: .milliseconds(5))
            }
        }
        let hub = try ChildProcess(builtExecutable("monitor-hub"), ["serve", "--data-dir", dir, "--port", "\(port)", "--log-level", "info"],
                                   logPath: "\(Self.artifacts)/fw-embedded-hub.log")
        defer { Task { await hub.stop(signal: SIGTERM, timeout: .seconds(30)) } }
        #expect(try await eventually(.seconds(90)) { try await HubUnderTest.httpGet(port: port, path: "/health/ready") == 200 }, "\(hub.log)")
        try await Task.sleep(for: .milliseconds(100))
        watcher.cancel()
        let modes = seen.withLock { $0 }
        for name in secrets { #expect(modes[name] == [0o600], "\(name): modes seen \(modes[name].map { $0.map { String($0, radix: 8) } } ?? [])") }
        #expect(!hub.log.contains("which has SUPERUSER"), "\(hub.log)")

        let password = try String(contentsOfFile: "\(dir)/pg-password", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let pgPort = try #require(Int(try String(contentsOfFile: "\(dir)/pg-port", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        let asHub = TestDatabase(url: DatabaseURL(host: "127.0.0.1", port: pgPort, username: "fleetwatch", password: password, database: "fleetwatch"))
        // What the hub's role may not do.
        for statement in ["CREATE ROLE intruder LOGIN", "SELECT rolpassword FROM pg_authid", "COPY (SELECT 1) TO PROGRAM 'true'",
                          "CREATE DATABASE another", "ALTER ROLE fleetwatch SUPERUSER", "SELECT pg_read_file('/etc/passwd')"] {
            #expect(await Self.sqlState(asHub, statement) == "42501", "\(statement) was not refused for lack of privilege")
        }
        // What it does own.
        #expect(await Self.sqlState(asHub, "SELECT count(*) FROM bots") == nil)
        let owner = try await asHub.withClient { c in
            try await c.query("SELECT tableowner::text FROM pg_tables WHERE tablename = 'bots'", logger: Logger(label: "t")).decode(String.self).all()
        }
        #expect(owner == ["fleetwatch"])

        // An analyst's login, made through the cluster's superuser; read-only.
        let add = try ChildProcess(builtExecutable("monitor-hub"), ["analysts", "add", "ana", "--data-dir", dir, "--log-level", "error"],
                                   logPath: "\(Self.artifacts)/fw-embedded-analyst.log")
        #expect(await add.stop(signal: 0, timeout: .seconds(60)) == 0, "\(add.log)")
        let analystPassword = try #require(add.log.split(separator: "\n").last.map(String.init))
        let asAnalyst = TestDatabase(url: DatabaseURL(host: "127.0.0.1", port: pgPort, username: "ana", password: analystPassword, database: "fleetwatch"))
        #expect(await Self.sqlState(asAnalyst, "SELECT count(*) FROM review_bot_day") == nil)
        #expect(await Self.sqlState(asAnalyst, "SELECT token_hash FROM bots") == "42501")
        #expect(await Self.sqlState(asAnalyst, "DELETE FROM alerts") != nil)
        #expect(await hub.stop(signal: SIGTERM, timeout: .seconds(30)) == 0)
    }
}
