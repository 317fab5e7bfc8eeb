import FleetwatchAgent
import FleetwatchControl
import FleetwatchProtocol
import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import PostgresNIO
import Synchronization
import Testing

/// Emergency stops end to end: real hub processes on one real PostgreSQL, real agents.
@Suite(.serialized, .enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct EmergencyStopTests {
    /// An emergency handler that records what it was asked to do.
    final class RecordingHandler: EmergencyHandler {
        let calls = Mutex<[String]>([])
        let liquidationEnabled: Bool
        let slowCancel: Duration

        init(liquidationEnabled: Bool = false, slowCancel: Duration = .zero) {
            self.liquidationEnabled = liquidationEnabled
            self.slowCancel = slowCancel
        }

        func stopTrading() async throws -> String { calls.withLock { $0.append("stop") }; return "stopped" }
        func cancelOpenOrders() async throws -> String {
            calls.withLock { $0.append("cancel") }
            if slowCancel > .zero { try await Task.sleep(for: slowCancel) }
            return "cancelled 3 orders"
        }
        func liquidatePositions() async throws -> String { calls.withLock { $0.append("liquidate") }; return "sold" }
        func setEmergencyMode() async throws -> String { calls.withLock { $0.append("latch") }; return "latched" }
        func resume() async throws -> String { calls.withLock { $0.append("resume") }; return "resumed" }
        var all: [String] { calls.withLock { $0 } }
    }

    static func agent(_ bot: String, hub: String, handler: RecordingHandler?, spool: String? = nil) async throws -> MonitorAgent {
        var c = AgentConfiguration(hubURL: hub, botID: bot, token: "secret")
        c.flushInterval = .seconds(3600)
        c.processCollector = false
        c.backoff = Backoff(initial: .milliseconds(50), maximum: .milliseconds(300))
        c.spoolDirectory = spool
        var logger = Logger(label: "agent")
        logger.logLevel = .error
        let agent = try MonitorAgent(configuration: c, logger: logger)
        if let handler { await agent.setEmergencyHandler(handler) }
        return agent
    }

    static func command(_ port: Int, _ id: String) async throws -> [String: Any] {
        let (status, body) = try await api("GET", port: port, path: "/api/commands/\(id)")
        #expect(status == 200, "GET /api/commands/\(id): \(status) \(body)")
        return jsonObject(body) as? [String: Any] ?? [:]
    }

    static func waitForState(_ port: Int, _ id: String, _ state: String, timeout: Duration = .seconds(30)) async throws -> [String: Any] {
        var last: [String: Any] = [:]
        let ok = try await eventually(timeout) {
            let (status, body) = try await api("GET", port: port, path: "/api/commands/\(id)")
            last = status == 200 ? jsonObject(body) as? [String: Any] ?? [:] : ["status": status]
            return last["state"] as? String == state
        }
        #expect(ok, "command \(id) never reached \(state); last: \(last)")
        return last
    }

    static func steps(_ record: [String: Any]) -> Set<String> {
        Set((record["steps"] as? [[String: Any]] ?? []).map { "\($0["step"] ?? "?")/\($0["status"] ?? "?")" })
    }

    static func scalar<T: PostgresDecodable & Sendable>(_ db: TestDatabase, _ type: T.Type, _ query: PostgresQuery) async throws -> T? where T._DecodableType == T {
        try await db.withClient { client in
            let rows = try await client.query(query, logger: Logger(label: "test"))
            for try await value in rows.decode(Optional<T>.self) { return value }
            return nil
        }
    }

    @Test(.timeLimit(.minutes(4)))
    func stopThroughTheOtherReplicaCompletesAndResumes() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["stop-bot"], token: "secret", in: db)
        let hubA = try HubUnderTest(database: db, name: "hub-a")
        let hubB = try HubUnderTest(database: db, name: "hub-b")
        try await hubA.start()
        try await hubB.start()
        defer { Task { await hubA.kill(SIGTERM); await hubB.kill(SIGTERM) } }
        // The real simulated bot, connected to hub A only.
        let dir = ProcessInfo.processInfo.environment["FLEETWATCH_TEST_ARTIFACTS"] ?? NSTemporaryDirectory()
        let simbot = try ChildProcess(builtExecutable("fleetwatch-simbot"),
                                      ["--hub", hubA.agentURL, "--bot-id", "stop-bot", "--token", "secret", "--trade-rate", "20",
                                       "--flush-interval", "0.2"], logPath: "\(dir)/\(db.url.database)-simbot.log")
        defer { Task { await simbot.stop(signal: SIGTERM) } }
        #expect(try await eventually { try await Self.scalar(db, String.self, "SELECT connected_hub FROM bots WHERE name = 'stop-bot'") == "hub-a" })
        #expect(try await eventually {
            (try await Self.scalar(db, Double.self, "SELECT value FROM sample_points WHERE bot = 'stop-bot' AND metric = 'trading_enabled' ORDER BY ts DESC LIMIT 1")) == 1
        })

        // Refused: no credentials, a viewer, a wrong token. Each leaves an audit row and stores no command.
        let body = #"{"reason": "runaway losses", "liquidate": false}"#
        #expect(try await api("POST", port: hubB.port, path: "/api/bots/stop-bot/emergency-stop", body: body, token: nil).0 == 401)
        #expect(try await api("POST", port: hubB.port, path: "/api/bots/stop-bot/emergency-stop", body: body, token: viewerToken).0 == 403)
        #expect(try await api("POST", port: hubB.port, path: "/api/bots/stop-bot/emergency-stop", body: body, token: "fwo_wrong").0 == 401)
        #expect(try await Self.scalar(db, Int64.self, "SELECT count(*) FROM commands") == 0)
        #expect(try await Self.scalar(db, Int64.self, "SELECT count(*) FROM audit_log WHERE outcome = 'refused' AND bot = 'stop-bot'") == 3)
        #expect(try await Self.scalar(db, Int64.self, "SELECT count(*) FROM audit_log WHERE actor = 'test-viewer' AND outcome = 'refused'") == 1)
        // A doubled slash is the same route to the router, so it needs a token too.
        let (doubled, _) = try await api("POST", port: hubB.port, path: "//api/bots/stop-bot/emergency-stop", body: body, token: nil)
        #expect(doubled == 401 || doubled == 404, "//api/… answered \(doubled)")
        #expect(try await Self.scalar(db, Int64.self, "SELECT count(*) FROM commands") == 0)
        // Liquidation is refused until it is allowed for the bot.
        #expect(try await api("POST", port: hubB.port, path: "/api/bots/stop-bot/emergency-stop",
                              body: #"{"reason": "x", "liquidate": true}"#).0 == 409)

        // The stop, through hub B, with an idempotency key.
        let (status, created) = try await api("POST", port: hubB.port, path: "/api/bots/stop-bot/emergency-stop", body: body,
                                              headers: [("Idempotency-Key", "stop-1")])
        #expect(status == 202, "\(created)")
        let id = try #require(jsonObject(created) as? [String: Any])["id"] as? String ?? ""
        let done = try await Self.waitForState(hubB.port, id, "completed")
        #expect(Self.steps(done).isSuperset(of: ["command/received", "stop_trading/succeeded", "cancel_orders/succeeded",
                                                  "latch_emergency/succeeded", "command/completed"]))
        #expect(done["origin"] as? String == "operator" && done["issuedBy"] as? String == "test-operator")
        #expect(done["deliveredBy"] as? String == "hub-a")
        // Same key, same body: the same command. Same key, other body: 422. The reference endpoint works too.
        let (again, repeated) = try await api("POST", port: hubA.port, path: "/api/bots/stop-bot/emergency-stop", body: body,
                                              headers: [("Idempotency-Key", "stop-1")])
        #expect(again == 200 && (jsonObject(repeated) as? [String: Any])?["id"] as? String == id)
        #expect(try await api("POST", port: hubA.port, path: "/api/bots/stop-bot/emergency-stop", body: #"{"reason": "other"}"#,
                              headers: [("Idempotency-Key", "stop-1")]).0 == 422)
        #expect(try await Self.scalar(db, Int64.self, "SELECT count(*) FROM commands") == 1)
        // The bot stopped trading for real and is latched; the ledger and the audit log tell the story.
        #expect(simbot.log.contains("stop-bot EMERGENCY stop_trading: trading loop halted"))
        #expect(simbot.log.contains("stop-bot EMERGENCY cancel_orders: cancelled"))
        #expect(try await eventually {
            (try await Self.scalar(db, Double.self, "SELECT value FROM sample_points WHERE bot = 'stop-bot' AND metric = 'trading_enabled' ORDER BY ts DESC LIMIT 1")) == 0
        })
        #expect(try await Self.scalar(db, String.self, "SELECT emergency_command_id::text FROM bots WHERE name = 'stop-bot'") == id)
        let actions = try await db.withClient { client in
            var out: [String] = []
            let rows = try await client.query("SELECT action FROM audit_log WHERE command_id = \(UUID(uuidString: id)!) ORDER BY id",
                                              logger: Logger(label: "test"))
            for try await a in rows.decode(String.self) { out.append(a) }
            return out
        }
        #expect(actions.first == "emergency_stop.requested" && actions.contains("command.delivered")
                && actions.contains("command.acknowledged") && actions.last == "command.completed", "\(actions)")
        #expect(try await Self.scalar(db, String.self, "SELECT state FROM alerts WHERE rule_id = 'emergency_mode'") == "firing")
        let (_, list) = try await api("GET", port: hubA.port, path: "/api/bots/stop-bot/commands", token: viewerToken)
        #expect((jsonObject(list) as? [[String: Any]])?.first?["id"] as? String == id)

        // Resume: an operator's explicit action, through hub A this time.
        #expect(try await api("POST", port: hubA.port, path: "/api/bots/stop-bot/resume", body: "{}", token: viewerToken).0 == 403)
        let (resumed, resumeBody) = try await api("POST", port: hubA.port, path: "/api/bots/stop-bot/resume",
                                                  body: #"{"reason": "losses explained"}"#)
        #expect(resumed == 202, "\(resumeBody)")
        let resumeID = (jsonObject(resumeBody) as? [String: Any])?["id"] as? String ?? ""
        let resumeDone = try await Self.waitForState(hubA.port, resumeID, "completed")
        #expect(Self.steps(resumeDone).contains("resume/succeeded"))
        #expect(try await Self.scalar(db, String.self, "SELECT emergency_command_id::text FROM bots WHERE name = 'stop-bot'") == nil)
        #expect(try await eventually {
            (try await Self.scalar(db, Double.self, "SELECT value FROM sample_points WHERE bot = 'stop-bot' AND metric = 'trading_enabled' ORDER BY ts DESC LIMIT 1")) == 1
        })
        #expect(try await Self.scalar(db, String.self, "SELECT state FROM alerts WHERE rule_id = 'emergency_mode'") == "resolved")
        #expect(try await api("POST", port: hubA.port, path: "/api/bots/stop-bot/resume", body: #"{"reason": "again"}"#).0 == 409)
    }

    @Test(.timeLimit(.minutes(3)))
    func anOfflineBotGetsTheStopOnReconnectAndStaysLatched() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["offline-bot"], token: "secret", in: db)
        let config = NSTemporaryDirectory() + "fw-emergency-\(UUID().uuidString).json"
        try #"{"alerts": {"console_alerts": false}, "emergency": {"acknowledge_timeout": 1, "poll_interval": 0.5}}"#
            .write(toFile: config, atomically: true, encoding: .utf8)
        let hub = try HubUnderTest(database: db)
        try await hub.start(extra: ["--config", config])
        defer { Task { await hub.kill(SIGTERM) } }

        let (status, created) = try await api("POST", port: hub.port, path: "/api/control/emergency-stop",
                                              body: #"{"bot_id": "offline-bot", "reason": "exchange incident"}"#)
        #expect(status == 202, "\(created)")
        let id = (jsonObject(created) as? [String: Any])?["id"] as? String ?? ""
        #expect(try await Self.command(hub.port, id)["state"] as? String == "pending")
        // Nobody acknowledged it in time: a CRITICAL alert.
        #expect(try await eventually(.seconds(20)) {
            try await Self.scalar(db, String.self, "SELECT level FROM alerts WHERE rule_id = 'command_unacknowledged' AND state = 'firing'") == "CRITICAL"
        })

        let handler = RecordingHandler()
        let agent = try await Self.agent("offline-bot", hub: hub.agentURL, handler: handler)
        let task = Task { try await agent.run() }
        _ = try await Self.waitForState(hub.port, id, "completed")
        #expect(handler.all == ["stop", "cancel", "latch"])
        #expect(await agent.isInEmergencyMode)
        // Acknowledged: the overdue alert resolves.
        #expect(try await eventually(.seconds(20)) {
            try await Self.scalar(db, String.self, "SELECT state FROM alerts WHERE rule_id = 'command_unacknowledged'") == "resolved"
        })
        task.cancel()
        _ = await task.result

        // A restarted bot (a new process, no journal) is put back into emergency mode on connect: the finished
        // command comes back as stop trading + latch only, so orders are not cancelled (or positions sold) again.
        let handler2 = RecordingHandler()
        let agent2 = try await Self.agent("offline-bot", hub: hub.agentURL, handler: handler2)
        let task2 = Task { try await agent2.run() }
        defer { task2.cancel() }
        // The agent counts itself latched once the handler's latch call has returned, a moment after the handler
        // recorded it: wait for that rather than read it in between.
        #expect(try await eventually { await agent2.isInEmergencyMode })
        #expect(handler2.all == ["stop", "latch"])
        #expect(try await Self.command(hub.port, id)["state"] as? String == "completed")
    }

    @Test(.timeLimit(.minutes(3)))
    func aDuplicatedDeliveryExecutesOnce() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["dup-bot"], token: "secret", in: db)
        let hub = try HubUnderTest(database: db)
        try await hub.start()
        defer { Task { await hub.kill(SIGTERM) } }
        let handler = RecordingHandler(slowCancel: .seconds(4))
        let agent = try await Self.agent("dup-bot", hub: hub.agentURL, handler: handler)
        let task = Task { try await agent.run() }
        defer { task.cancel() }
        #expect(try await eventually { await agent.status.connected })

        let (_, created) = try await api("POST", port: hub.port, path: "/api/bots/dup-bot/emergency-stop", body: #"{"reason": "dup"}"#)
        let id = try #require((jsonObject(created) as? [String: Any])?["id"] as? String)
        let uuid = try #require(UUID(uuidString: id))
        #expect(try await eventually { handler.all.contains("cancel") })
        // The hub dies while the slow step runs; the agent reconnects to the restarted hub, which delivers the
        // unfinished command again: the agent answers with its results and does not start over.
        await hub.kill(SIGKILL)
        try await hub.start()
        _ = try await Self.waitForState(hub.port, id, "completed")
        #expect(try await Self.scalar(db, Int32.self, "SELECT deliveries FROM commands WHERE id = \(uuid)") ?? 0 >= 2)
        // Delivered once more after it finished (as a stale notification would): results only.
        try await db.withClient { client in
            try await client.query("UPDATE commands SET state = 'pending' WHERE id = \(uuid)", logger: Logger(label: "test"))
            try await client.query("SELECT pg_notify('fleetwatch_commands', 'dup-bot')", logger: Logger(label: "test"))
        }
        _ = try await Self.waitForState(hub.port, id, "completed")
        #expect(try await Self.scalar(db, Int32.self, "SELECT deliveries FROM commands WHERE id = \(uuid)") ?? 0 >= 3)
        #expect(handler.all == ["stop", "cancel", "latch"], "executed more than once: \(handler.all)")
        #expect(try await Self.scalar(db, Int64.self, "SELECT count(*) FROM command_steps WHERE command_id = \(uuid) AND status = 'succeeded'") == 3)
    }

    @Test(.timeLimit(.minutes(3)))
    func aMissedNotificationOnlyDelaysTheCommand() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["quiet-bot"], token: "secret", in: db)
        let hub = try HubUnderTest(database: db)
        try await hub.start()
        defer { Task { await hub.kill(SIGTERM) } }
        let handler = RecordingHandler()
        let agent = try await Self.agent("quiet-bot", hub: hub.agentURL, handler: handler)
        let task = Task { try await agent.run() }
        defer { task.cancel() }
        #expect(try await eventually { await agent.status.connected })
        // A row written without its NOTIFY (as if the notification were lost): the replica's poll finds it.
        let id = UUID()
        try await db.withClient { client in
            try await client.query("""
                INSERT INTO commands (id, bot_id, kind, origin, issued_by, reason, actions)
                SELECT \(id), id, 'emergency_stop', 'operator', 'test', 'no notification', 11 FROM bots WHERE name = 'quiet-bot'
                """, logger: Logger(label: "test"))
        }
        let record = try await Self.waitForState(hub.port, id.uuidString, "completed", timeout: .seconds(15))
        #expect(record["deliveredBy"] as? String == "hub-a")
        #expect(handler.all == ["stop", "cancel", "latch"])
    }

    @Test(.timeLimit(.minutes(3)))
    func aBotCanDeclareAnEmergencyItself() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["self-bot"], token: "secret", in: db)
        let hub = try HubUnderTest(database: db)
        try await hub.start()
        defer { Task { await hub.kill(SIGTERM) } }
        let handler = RecordingHandler()
        let agent = try await Self.agent("self-bot", hub: hub.agentURL, handler: handler)
        // Declared before the hub is even connected: it is sent once the connection is up.
        let raw = await agent.declareEmergency(reason: "exchange stopped answering")
        #expect(handler.all == ["stop", "cancel", "latch"])
        let task = Task { try await agent.run() }
        defer { task.cancel() }
        let id = raw.description
        let record = try await Self.waitForState(hub.port, id, "completed")
        #expect(record["origin"] as? String == "bot" && record["issuedBy"] as? String == "self-bot")
        #expect(Self.steps(record).contains("latch_emergency/succeeded"))
        #expect(try await Self.scalar(db, String.self, "SELECT emergency_command_id::text FROM bots WHERE name = 'self-bot'") == id)
        #expect(try await Self.scalar(db, String.self, "SELECT summary FROM alerts WHERE rule_id = 'emergency_mode'")?.contains("the bot itself") == true)
        #expect(handler.all == ["stop", "cancel", "latch"], "the hub's confirmation ran the steps again")
    }

    @Test(.timeLimit(.minutes(3)))
    func automaticShutdownOnlyForProfilesThatEnableIt() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["prod-bot", "dev-bot"], token: "secret", in: db)
        try await db.withClient { client in
            try await client.query("UPDATE bots SET profile = 'production' WHERE name = 'prod-bot'", logger: Logger(label: "test"))
            try await client.query("UPDATE bots SET profile = 'development' WHERE name = 'dev-bot'", logger: Logger(label: "test"))
        }
        let hub = try HubUnderTest(database: db)
        try await hub.start()
        defer { Task { await hub.kill(SIGTERM) } }
        let prodHandler = RecordingHandler(), devHandler = RecordingHandler()
        let prod = try await Self.agent("prod-bot", hub: hub.agentURL, handler: prodHandler)
        let dev = try await Self.agent("dev-bot", hub: hub.agentURL, handler: devHandler)
        let tasks = [Task { try await prod.run() }, Task { try await dev.run() }]
        defer { tasks.forEach { $0.cancel() } }
        // 900 MB: above production's 2 × 400 and the warning limit of development (600), not above 2 × 600.
        for agent in [prod, dev] { try await AlertEndToEndTests.send(agent, memory: 900) }
        #expect(try await eventually { prodHandler.all == ["stop", "cancel", "latch"] })
        let origin = try await Self.scalar(db, String.self, "SELECT origin || ':' || issued_by FROM commands c JOIN bots b ON b.id = c.bot_id WHERE b.name = 'prod-bot'")
        #expect(origin == "rule:emergency_shutdown.memory_usage_mb")
        #expect(try await Self.scalar(db, String.self, """
            SELECT a.level FROM alerts a JOIN bots b ON b.id = a.bot_id
            WHERE b.name = 'prod-bot' AND a.rule_id = 'emergency_shutdown.memory_usage_mb'
            """) == "CRITICAL")
        // Still breached: no second stop. The development bot is never stopped automatically.
        try await AlertEndToEndTests.send(prod, memory: 950)
        try await AlertEndToEndTests.send(dev, memory: 1300)
        try await Task.sleep(for: .seconds(1))
        #expect(try await Self.scalar(db, Int64.self, "SELECT count(*) FROM commands") == 1)
        #expect(devHandler.all.isEmpty)
    }
}
