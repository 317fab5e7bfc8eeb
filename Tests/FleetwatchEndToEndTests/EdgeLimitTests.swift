import FleetwatchProtocol
import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import PostgresNIO
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// What an unauthenticated client can do to the hub (issue 13, items 5, 6 and 8), against a real hub process:
/// sign-in floods, lock-outs, audit growth, token revocation on live sockets, plain HTTP limits, scrapes.
@Suite(.serialized, .enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct EdgeLimitTests {
    static let adminPassword = "correct-horse-battery"

    /// One HTTP/1.1 request over a raw socket from `source` (a loopback address); the status and body.
    static func raw(port: Int, source: String = "127.0.0.1", _ request: String, timeout: Duration = .seconds(10)) async throws -> (Int?, String) {
        let socket = try RawSocket(port: port, source: source)
        defer { socket.disconnect() }
        let deadline = ContinuousClock.now + timeout
        guard await socket.write(Array(request.utf8), until: deadline) else { return (nil, "") }
        var received: [UInt8] = []
        while true {
            switch await socket.read(until: deadline) {
            case .data(let bytes): received += bytes
            default:
                let text = String(decoding: received, as: UTF8.self)
                let status = text.split(separator: " ", maxSplits: 2).dropFirst().first.flatMap { Int($0) }
                return (status, text.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n"))
            }
        }
    }

    static func signIn(port: Int, source: String, user: String, password: String) async throws -> Int? {
        let body = #"{"username": "\#(user)", "password": "\#(password)"}"#
        let request = "POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body
        return try await raw(port: port, source: source, request).0
    }

    /// 2,000 sign-ins with 200 KB user names leave the hub's memory where it was; ten wrong passwords from
    /// one address lock out only that address; many addresses lock out only addresses new to the user;
    /// refusals are aggregated in the audit log, and old audit rows are pruned.
    @Test(.timeLimit(.minutes(5)))
    func signInFloodsNeitherGrowTheHubNorLockOutTheAdmin() async throws {
        let db = try await TestDatabase.create()
        try await registerBots([], token: "secret", in: db)
        // A year-and-a-half-old audit row: the default retention (400 days) deletes it at start.
        try await db.withClient { client in
            try await client.query("""
                INSERT INTO audit_log (at, actor, actor_kind, action, outcome, detail)
                VALUES (now() - interval '500 days', 'old', 'anonymous', 'POST /auth/login', 'refused', 'ancient'),
                       (now() - interval '10 days', 'recent', 'anonymous', 'POST /auth/login', 'refused', 'recent')
                """, logger: Logger(label: "test"))
        }
        // Three attempts a minute (thirty failures a minute for a user): the lock-outs below are reached in a
        // few seconds, well inside the limits' one-minute windows even on a loaded machine.
        let perMinute = 3
        let config = #"{"dashboard": {"login_attempts_per_minute": \#(perMinute)}}"#
        let hub = try HubUnderTest(database: db)
        try await hub.start(config: config, environment: ["FLEETWATCH_ADMIN_PASSWORD": Self.adminPassword])
        defer { Task { await hub.kill(SIGTERM) } }
        #expect(try await eventually(.seconds(20)) {
            try await BotIsolationTests.count(db, "SELECT count(*) FROM audit_log WHERE detail = 'ancient'") == 0
        })
        #expect(try await BotIsolationTests.count(db, "SELECT count(*) FROM audit_log WHERE detail = 'recent'") == 1)

        let rss = RSSWatch(pid: hub.process!.pid)
        rss.sample()
        let baseline = RSSWatch.statusKiB(pid: hub.process!.pid, "VmRSS") ?? 0
        rss.start()
        let longName = String(repeating: "A", count: 200_000)
        var statuses: [Int: Int] = [:]
        try await withThrowingTaskGroup(of: Int?.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    var last: Int?
                    for i in stride(from: worker, to: 2000, by: 8) {
                        last = try await Self.signIn(port: hub.port, source: "127.0.\(10 + i / 250).\(1 + i % 250)",
                                                     user: longName, password: "x")
                        if last == nil || last! >= 500 { return last }
                    }
                    return last
                }
            }
            for try await status in group { statuses[status ?? -1, default: 0] += 1 }
        }
        let peak = rss.stop()
        print("edge-limits: 2,000 sign-ins with 200 KB names: RSS \(baseline / 1024) → peak \(peak / 1024) MiB, last statuses \(statuses)")
        #expect(statuses.keys.allSatisfy { $0 == 400 || $0 == 429 }, "\(statuses)")
        #expect(peak - baseline < 150 * 1024, "the hub grew by \((peak - baseline) / 1024) MiB")

        // Three wrong passwords for ADMIN from one address: that address is refused, even with the right
        // password; the admin signs in from another.
        for _ in 0..<perMinute {
            #expect(try await Self.signIn(port: hub.port, source: "127.0.1.1", user: "ADMIN", password: "guess") == 401)
        }
        #expect(try await Self.signIn(port: hub.port, source: "127.0.1.1", user: "admin", password: Self.adminPassword) == 429)
        #expect(try await Self.signIn(port: hub.port, source: "127.0.1.2", user: "admin", password: Self.adminPassword) == 200)
        // Guessing from many addresses: past the user's limit only addresses it signed in from go on.
        for a in 0..<10 {
            for _ in 0..<perMinute { _ = try await Self.signIn(port: hub.port, source: "127.0.2.\(a + 1)", user: "admin", password: "guess") }
        }
        #expect(try await Self.signIn(port: hub.port, source: "127.0.3.1", user: "admin", password: Self.adminPassword) == 429)
        #expect(try await Self.signIn(port: hub.port, source: "127.0.1.2", user: "admin", password: Self.adminPassword) == 200)

        // The audit log holds a few rows for all of this (past 60 kinds a minute, one "many sources" row), and
        // counts every refusal once the minute is written.
        let rows = try await BotIsolationTests.count(db, "SELECT count(*) FROM audit_log WHERE action = 'POST /auth/login' AND outcome = 'refused'")
        #expect(rows < 400, "\(rows) audit rows for about 2,035 refusals")
        // The counted refusals are written as the hub stops: it must stop cleanly (not be killed after the
        // timeout) for them to be there.
        let stopping = ContinuousClock.now
        let status = await hub.kill(SIGTERM)
        print("edge-limits: the hub stopped in \(ContinuousClock.now - stopping), wait status \(status)")
        #expect(status == 0, "the hub did not stop cleanly (wait status \(status)): \(hub.log.suffix(3000))")
        let refused = try await BotIsolationTests.count(db, """
            SELECT COALESCE(sum(repeats), 0)::int8 FROM audit_log WHERE outcome = 'refused' AND detail <> 'recent'
            """)
        #expect(refused == 2000 + perMinute + 1 + 10 * perMinute + 1, "\(refused) refusals counted; the hub's log ends: \(hub.log.suffix(3000))")
    }

    /// A dashboard WebSocket opened with an API token closes once the token is revoked.
    @Test(.timeLimit(.minutes(2)))
    func aRevokedTokensWebSocketIsClosed() async throws {
        let db = try await TestDatabase.create()
        try await registerBots([], token: "secret", in: db)
        let config = #"{"dashboard": {"session_check_interval": 0.5}}"#
        let hub = try HubUnderTest(database: db)
        try await hub.start(config: config)
        defer { Task { await hub.kill(SIGTERM) } }
        let token = try await HostileBotTests.cli(["tokens", "add", "wall-screen", "--role", "viewer"], db)
            .split(separator: "\n").last.map(String.init) ?? ""
        let ws = try await RawWebSocket.open(port: hub.port, path: "/ws", headers: [("Authorization", "Bearer \(token)")])
        defer { ws.socket.disconnect() }
        guard case .frame = await ws.nextFrame(until: .now + .seconds(10)) else { Issue.record("no first update"); return }
        _ = try await HostileBotTests.cli(["tokens", "revoke", "wall-screen"], db)
        let started = ContinuousClock.now
        let outcome = await ws.awaitClose(until: .now + .seconds(10))
        #expect(outcome == .closeFrame(4001), "\(outcome)")
        #expect(ContinuousClock.now - started < .seconds(5))
    }

    /// Plain HTTP: a connection that says nothing, a head that never ends, a head too large, an idle
    /// keep-alive connection, and more connections than allowed.
    @Test(.timeLimit(.minutes(3)))
    func plainHTTPLimits() async throws {
        let db = try await TestDatabase.create()
        try await registerBots([], token: "secret", in: db)
        let config = #"{"hub": {"http_idle_timeout": 2, "http_head_timeout": 2, "max_header_bytes": 4096, "max_connections": 8, "max_connections_per_address": 3}, "dashboard": {"enabled": false}}"#
        let hub = try HubUnderTest(database: db)
        try await hub.start(config: config)
        defer { Task { await hub.kill(SIGTERM) } }
        let port = hub.port

        // Silence, and a head that never ends: 408 after the idle timeout.
        for opening in ["", "GET /health/live HTTP/1.1\r\nHost: x\r\n"] {
            let started = ContinuousClock.now
            let (status, _) = try await Self.raw(port: port, opening)
            #expect(status == 408, "after \(opening.debugDescription): \(String(describing: status))")
            #expect(ContinuousClock.now - started < .seconds(6))
        }
        // A head over the limit: 431, on the first request and on the WebSocket path alike.
        for path in ["/health/live", "/agent/v1"] {
            let big = "GET \(path) HTTP/1.1\r\nHost: x\r\nX-Filler: \(String(repeating: "a", count: 5000))\r\n\r\n"
            #expect(try await Self.raw(port: port, big).0 == 431)
        }
        // An idle keep-alive connection ends after the timeout.
        let keep = try RawSocket(port: port)
        defer { keep.disconnect() }
        _ = await keep.write(Array("GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n".utf8), until: .now + .seconds(5))
        guard case .data = await keep.read(until: .now + .seconds(5)) else { Issue.record("no answer"); return }
        let idleStart = ContinuousClock.now
        var ended = false
        while !ended, ContinuousClock.now - idleStart < .seconds(6) {
            switch await keep.read(until: .now + .seconds(1)) {
            case .eof, .failed: ended = true
            default: continue
            }
        }
        #expect(ended, "an idle keep-alive connection stayed open")

        // Three connections from one address are its share: a fourth is closed at once; another address is served.
        let share = try (0..<3).map { _ in try RawSocket(port: port, source: "127.0.7.1") }
        try await Task.sleep(for: .milliseconds(200))
        let fourth = try RawSocket(port: port, source: "127.0.7.1")
        defer { fourth.disconnect() }
        let refused = await fourth.read(until: .now + .seconds(5))
        #expect(refused == .eof || { if case .failed = refused { return true } else { return false } }(), "\(refused)")
        #expect(try await Self.raw(port: port, source: "127.0.7.2", "GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").0 == 200)
        share.forEach { $0.disconnect() }
        try await Task.sleep(for: .milliseconds(200))

        // Eight connections held open (from eight addresses): a ninth is not served until one of them ends.
        var held: [RawSocket] = []
        for i in 0..<8 { held.append(try RawSocket(port: port, source: "127.0.8.\(i + 1)")) }
        try await Task.sleep(for: .milliseconds(200))
        let ninth = try RawSocket(port: port, source: "127.0.8.9")
        defer { ninth.disconnect() }
        _ = await ninth.write(Array("GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8), until: .now + .seconds(5))
        #expect(await ninth.read(until: .now + .milliseconds(800)) == .timedOut)
        held.forEach { $0.disconnect() }
        guard case .data(let answer) = await ninth.read(until: .now + .seconds(5)) else { Issue.record("the ninth connection was never served"); return }
        #expect(String(decoding: answer, as: UTF8.self).hasPrefix("HTTP/1.1 200"))
    }

    /// `/metrics` reads the fleet figures through partial indexes (no table scan, however long the history)
    /// and at most once per refresh period, however often it is scraped.
    @Test(.timeLimit(.minutes(3)))
    func metricsScrapesScanNoTable() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["scrape-bot"], token: "secret", in: db)
        try await db.withClient { client in
            let logger = Logger(label: "test")
            try await client.query("""
                INSERT INTO commands (id, bot_id, kind, origin, issued_by, reason, actions, state, created_at)
                SELECT gen_random_uuid(), b.id, 'emergency_stop', 'operator', 'history', 'old', 11, 'completed', now() - g * interval '1 minute'
                FROM bots b, generate_series(1, 20000) g WHERE b.name = 'scrape-bot'
                """, logger: logger)
            try await client.query("""
                INSERT INTO alerts (bot_id, rule_id, metric, level, state, summary, limit_value, value, last_value)
                SELECT b.id, 'r' || g, 'm', 'WARNING', 'resolved', 'old', 1, 2, 2 FROM bots b, generate_series(1, 20000) g
                WHERE b.name = 'scrape-bot'
                """, logger: logger)
            try await client.query("ANALYZE commands", logger: logger)
            try await client.query("ANALYZE alerts", logger: logger)
            try await client.query("ANALYZE bots", logger: logger)
            for statement in FleetFigures.statements {
                var plan = ""
                for try await line in try await client.query(PostgresQuery(unsafeSQL: "EXPLAIN " + statement), logger: logger).decode(String.self) {
                    plan += line + "\n"
                }
                #expect(!plan.contains("Seq Scan on commands") && !plan.contains("Seq Scan on alerts"), "\(statement):\n\(plan)")
            }
        }
        let hub = try HubUnderTest(database: db)
        try await hub.start()
        defer { Task { await hub.kill(SIGTERM) } }
        var last = ""
        for _ in 0..<10 {
            let (status, _, text) = try await http("GET", port: hub.port, path: "/metrics", token: nil)
            #expect(status == 200)
            last = text
        }
        let pings = last.split(separator: "\n").first { $0.hasPrefix("fleetwatch_postgres_ping_duration_seconds_count") }
        #expect(pings.map { $0.hasSuffix(" 1") } == true, "\(String(describing: pings))")
        #expect(last.contains(#"fleetwatch_commands{state="pending"} 0"#))
    }
}
