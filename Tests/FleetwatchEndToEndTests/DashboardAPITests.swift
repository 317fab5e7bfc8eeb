import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import PostgresNIO
import Testing

/// The dashboard's sign-in, sessions, CSRF, roles, fleet endpoints and live WebSocket, through real hub
/// processes on a real PostgreSQL.
@Suite(.serialized, .enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct DashboardAPITests {
    static func count(_ db: TestDatabase, _ query: PostgresQuery) async throws -> Int64 {
        try await db.withClient { client in
            for try await n in try await client.query(query, logger: Logger(label: "test")).decode(Int64.self) { return n }
            return 0
        }
    }

    @Test(.timeLimit(.minutes(3)))
    func signInSessionsCSRFAndRoles() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["dash-bot"], token: "secret", in: db)
        let hub = try HubUnderTest(database: db)
        try await hub.start()
        defer { Task { await hub.kill(SIGTERM) } }

        // No default password: the first start generated one into a 0600 file (its output is not a terminal), never
        // to the log.
        let password = try #require(printedAdminPassword(hub), "no first-start password in:\n\(hub.log.suffix(3000))")
        #expect(password.count == 20)
        #expect(!hub.log.contains(password), "the password is in the log")
        let mode = try FileManager.default.attributesOfItem(atPath: hub.dataDirectory + "/initial-admin-password")[.posixPermissions] as? Int
        #expect(mode == 0o600)
        // A second replica on the same database creates nobody and prints nothing.
        let other = try HubUnderTest(database: db, name: "hub-b")
        try await other.start()
        defer { Task { await other.kill(SIGTERM) } }
        #expect(printedAdminPassword(other) == nil)

        // Wrong password: 401 and an audit row; no cookie.
        let (wrong, none) = try await signIn(port: hub.port, user: "admin", password: "not-the-password")
        #expect(wrong == 401 && none == nil)
        #expect(try await Self.count(db, "SELECT count(*) FROM audit_log WHERE action = 'POST /auth/login' AND outcome = 'refused'") == 1)

        // Right password: an HttpOnly, SameSite=Strict session cookie and a CSRF token. Any replica accepts it.
        let (ok, signed) = try await signIn(port: hub.port, user: "admin", password: password)
        let session = try #require(signed, "sign-in answered \(ok)")
        #expect(session.setCookie.contains("HttpOnly") && session.setCookie.contains("SameSite=Strict") && session.setCookie.contains("Path=/"))
        for port in [hub.port, other.port] {
            let (status, body) = try await api("GET", port: port, path: "/api/session", token: nil, headers: session.cookieOnly)
            #expect(status == 200)
            let info = jsonObject(body) as? [String: Any]
            #expect(info?["user"] as? String == "admin" && info?["role"] as? String == "operator" && info?["csrfToken"] as? String == session.csrf)
        }
        // The database holds only the hash of the cookie's secret.
        let secret = String(session.cookie.split(separator: "=", maxSplits: 1)[1])
        #expect(try await Self.count(db, "SELECT count(*) FROM sessions WHERE token_hash = \(BotToken.hash(secret))") == 1)

        // A state-changing request with the cookie needs the CSRF token: none or a wrong one is 403 and audited.
        let change = #"{"memory_usage_mb": 900}"#
        #expect(try await api("PUT", port: hub.port, path: "/api/bots/dash-bot/thresholds", body: change, token: nil,
                              headers: session.cookieOnly).0 == 403)
        #expect(try await api("PUT", port: hub.port, path: "/api/bots/dash-bot/thresholds", body: change, token: nil,
                              headers: [("Cookie", session.cookie), ("X-CSRF-Token", "forged")]).0 == 403)
        // Refusals of one kind from one address are written once a minute: the first at once, the rest counted
        // into one row with `repeats` when the minute ends (RefusalAudit).
        #expect(try await Self.count(db, "SELECT count(*) FROM audit_log WHERE detail = 'missing or wrong CSRF token'") == 1)
        let (changed, profile) = try await api("PUT", port: hub.port, path: "/api/bots/dash-bot/thresholds", body: change, token: nil,
                                               headers: session.headers)
        #expect(changed == 200, "\(profile)")
        // A stop by a signed-in operator is audited under the user's name.
        let (stopped, command) = try await api("POST", port: other.port, path: "/api/bots/dash-bot/emergency-stop",
                                               body: #"{"reason": "from the dashboard"}"#, token: nil, headers: session.headers)
        #expect(stopped == 202, "\(command)")
        #expect((jsonObject(command) as? [String: Any])?["issuedBy"] as? String == "admin")

        // A viewer reads but changes nothing, with or without the CSRF token.
        let viewerPassword = "viewer-password-123"
        let add = try ChildProcess(builtExecutable("monitor-hub"),
                                   ["users", "add", "watcher", "--role", "viewer", "--database-url", db.url.urlString],
                                   logPath: "\(NSTemporaryDirectory())/\(db.url.database)-users-add.log",
                                   environment: ["FLEETWATCH_USER_PASSWORD": viewerPassword])
        #expect(await add.stop(signal: 0, timeout: .seconds(60)) == 0, "\(add.log)")
        let viewer = try #require(try await signIn(port: hub.port, user: "watcher", password: viewerPassword).1)
        #expect(try await api("GET", port: hub.port, path: "/api/bots", token: nil, headers: viewer.cookieOnly).0 == 200)
        #expect(try await api("POST", port: hub.port, path: "/api/bots/dash-bot/resume", body: "{}", token: nil,
                              headers: viewer.headers).0 == 403)
        #expect(try await api("PUT", port: hub.port, path: "/api/bots/dash-bot/thresholds", body: change, token: nil,
                              headers: viewer.headers).0 == 403)

        // Sign-out needs the CSRF token too; afterwards the cookie is worthless on every replica.
        #expect(try await api("POST", port: hub.port, path: "/auth/logout", token: nil, headers: session.cookieOnly).0 == 403)
        #expect(try await api("POST", port: hub.port, path: "/auth/logout", token: nil, headers: session.headers).0 == 204)
        for port in [hub.port, other.port] {
            #expect(try await api("GET", port: port, path: "/api/session", token: nil, headers: session.cookieOnly).0 == 401)
        }

        // Password guessing is rate-limited per user name (and per address): 429 before the 11th attempt.
        var statuses: [Int] = []
        for _ in 0..<12 { statuses.append(try await signIn(port: other.port, user: "watcher", password: "guess-guess-guess").0) }
        #expect(statuses.prefix(10).allSatisfy { $0 == 401 } && statuses.suffix(2).allSatisfy { $0 == 429 }, "\(statuses)")
        // Pages carry a strict Content-Security-Policy; the page itself needs no sign-in, the data does.
        let (page, headers, html) = try await http("GET", port: hub.port, path: "/", token: nil)
        #expect(page == 200 && html.contains("/assets/app.js"))
        #expect(headers["Content-Security-Policy"].first?.contains("default-src 'self'") == true)
        #expect(try await api("GET", port: hub.port, path: "/api/bots", token: nil).0 == 401)
    }

    @Test(.timeLimit(.minutes(3)))
    func liveUpdatesReachViewersOfEveryReplica() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["live-bot", "quiet-bot"], token: "secret", in: db)
        let config = #"{"dashboard": {"admin_password": "correct-horse-battery", "ping_interval": 0.5}}"#
        let hubA = try HubUnderTest(database: db, name: "hub-a")
        let hubB = try HubUnderTest(database: db, name: "hub-b")
        try await hubA.start(config: config)
        try await hubB.start(config: config)
        defer { Task { await hubA.kill(SIGTERM); await hubB.kill(SIGTERM) } }
        #expect(printedAdminPassword(hubA) == nil && !hubA.log.contains("correct-horse-battery"))
        let session = try #require(try await signIn(port: hubA.port, user: "admin", password: "correct-horse-battery").1)
        let origin = ("Origin", "http://127.0.0.1:\(hubA.port)")

        // Refused upgrades: no session, a foreign origin, a browser without Origin. Said as HTTP statuses.
        await #expect(throws: (any Error).self) { try await ViewerClient.connect(port: hubA.port, headers: [origin]) }
        await #expect(throws: (any Error).self) {
            try await ViewerClient.connect(port: hubA.port, headers: session.cookieOnly + [("Origin", "http://evil.example")])
        }
        #expect(try await api("GET", port: hubA.port, path: "/ws", token: nil, headers: [origin]).0 == 401)
        #expect(try await api("GET", port: hubA.port, path: "/ws", token: nil, headers: session.cookieOnly + [("Origin", "http://evil.example")]).0 == 403)

        // A fleet viewer and a one-bot viewer on hub A; the bot streams to hub B.
        let fleet = try await ViewerClient.connect(port: hubA.port, headers: session.cookieOnly + [origin])
        let one = try await ViewerClient.connect(port: hubA.port, path: "/ws?bot=live-bot", headers: session.cookieOnly + [origin])
        let scripted = try await ViewerClient.connect(port: hubA.port, headers: [("Authorization", "Bearer \(viewerToken)")])
        defer { fleet.stop(); one.stop(); scripted.stop() }
        let (agent, run) = try streamingAgent(bot: "live-bot", hub: hubB.agentURL)
        defer { run.cancel() }
        agent.gauge("total_pnl").set(123.25)
        agent.state("websocket_status").set("<img src=x onerror=alert(1)>")
        agent.counter("trades_executed").increment(by: 7)

        func fleetValue(_ messages: [[String: Any]], _ metric: String) -> Any? {
            messages.reversed().lazy.compactMap { ($0["metrics"] as? [String: Any])?["live-bot"] as? [String: Any] }
                .compactMap { $0[metric] }.first
        }
        #expect(try await eventually(.seconds(20)) { fleetValue(fleet.all, "total_pnl") as? Double == 123.25 }, "\(fleet.all.suffix(3))")
        #expect(fleetValue(fleet.all, "websocket_status") as? String == "<img src=x onerror=alert(1)>")
        #expect(try await eventually(.seconds(10)) { fleetValue(scripted.all, "trades_executed") as? Double == 7 })
        // The one-bot viewer gets the bot's metrics flat, and only that bot.
        #expect(try await eventually(.seconds(10)) {
            one.all.contains { ($0["metrics"] as? [String: Any])?["total_pnl"] as? Double == 123.25 && $0["scope"] as? String == "bot" }
        })
        // A changed value arrives as a new message; pings arrive; status carries the bot's state.
        agent.gauge("total_pnl").set(-5.5)
        #expect(try await eventually(.seconds(10)) { fleetValue(fleet.all, "total_pnl") as? Double == -5.5 })
        #expect(try await eventually(.seconds(5)) { fleet.all.contains { $0["type"] as? String == "ping" && $0["timestamp"] is Double } })
        let status = fleet.all.compactMap { $0["system_status"] as? [String: Any] }.last
        #expect((status?["botStatuses"] as? [[String: Any]])?.contains { $0["bot"] as? String == "live-bot" } == true)

        // The fleet endpoints on hub A, which does not hold the bot's connection, show its newest values.
        let (code, body) = try await api("GET", port: hubA.port, path: "/api/bots", token: viewerToken)
        #expect(code == 200)
        let bots = jsonObject(body) as? [[String: Any]] ?? []
        let live = bots.first { $0["id"] as? String == "live-bot" }
        #expect((live?["metrics"] as? [String: Any])?["total_pnl"] as? Double == -5.5)
        #expect((live?["states"] as? [String: Any])?["websocket_status"] as? String == "<img src=x onerror=alert(1)>")
        #expect(live?["state"] as? String == "online" && live?["connectedHub"] as? String == "hub-b")
        #expect(bots.first { $0["id"] as? String == "quiet-bot" }?["state"] as? String == "offline")
        let (_, statusBody) = try await api("GET", port: hubA.port, path: "/api/status", token: viewerToken)
        let totals = (jsonObject(statusBody) as? [String: Any])?["totals"] as? [String: Any]
        #expect(totals?["totalPnl"] as? Double == -5.5 && totals?["tradesExecuted"] as? Double == 7)

        // Signing out on hub B closes this session's sockets on hub A (4001); the token viewer stays.
        #expect(try await api("POST", port: hubB.port, path: "/auth/logout", token: nil, headers: session.headers).0 == 204)
        #expect(try await eventually(.seconds(10)) { fleet.closeCode.withLock { $0 } == 4001 && one.closeCode.withLock { $0 } == 4001 })
        #expect(scripted.closeCode.withLock { $0 } == nil)
    }
}
