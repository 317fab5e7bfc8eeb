import FleetwatchProtocol
import FleetwatchTestSupport
import Foundation
import Logging
import PostgresNIO
import Testing

/// The reference system's configuration as its users run it (issue 14): `--config production|development|FILE`
/// sets the profile every bot without its own follows, with the reference's thresholds and automatic shutdown;
/// every shipped file starts; the reference's status, history, levels, log file and health check.
@Suite(.serialized, .enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct ReferenceConfigTests {
    static var repo: String { URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path }

    static func count(_ db: TestDatabase, _ query: PostgresQuery) async throws -> Int64 {
        try await EmergencyStopTests.scalar(db, Int64.self, query) ?? -1
    }

    /// One batch of gauges from `bot` through the real protocol; waits for its ack.
    static func send(_ port: Int, _ bot: String, _ gauges: [String: Double]) async throws {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let client = try await ProtocolClient.connect(port: port, bot: bot, token: "secret")
        defer { client.close() }
        let seq = try await client.sendBatch(BatchPayload(series: gauges.sorted { $0.key < $1.key }.map {
            Series(name: $0.key, kind: .gauge, timestamps: [now], values: [$0.value])
        }))
        var others: [Frame] = []
        guard await client.ack(of: seq, until: .now + .seconds(20), others: &others) != nil else { throw TestSupportError("no ack") }
    }

    static func alerts(_ db: TestDatabase, _ bot: String, _ rule: String) async throws -> [String] {
        try await db.withClient { client in
            var levels: [String] = []
            for try await level in try await client.query("""
                SELECT a.level FROM alerts a JOIN bots b ON b.id = a.bot_id WHERE b.name = \(bot) AND a.rule_id = \(rule) ORDER BY a.id
                """, logger: Logger(label: "test")).decode(String.self) { levels.append(level) }
            return levels
        }
    }

    static func ruleStops(_ db: TestDatabase, _ bot: String) async throws -> Int64 {
        try await count(db, "SELECT count(*) FROM commands c JOIN bots b ON b.id = c.bot_id WHERE b.name = \(bot) AND c.origin = 'rule'")
    }

    struct Case: Sendable, CustomStringConvertible {
        let config: String
        let memory: Double
        let warns: Bool
        let pnl: Double
        let stops: Bool
        var description: String { config }
    }

    /// The issue's check: a bot with no profile follows what `--config` chose.
    @Test(.timeLimit(.minutes(4)), arguments: [
        // production: memory limit 400, loss limit −25, automatic shutdown at 2× (−50).
        Case(config: "production", memory: 450, warns: true, pnl: -60, stops: true),
        // development: memory limit 600, loss limit −100, no automatic shutdown.
        Case(config: "development", memory: 450, warns: false, pnl: -250, stops: false),
        // the reference's monitoring_config.json: memory 450, loss −40, shutdown on (at −80).
        Case(config: "Hub/config/custom-example.json", memory: 460, warns: true, pnl: -90, stops: true),
    ])
    func theConfigurationsProfileReachesEveryBotWithoutOne(c: Case) async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["ref-bot"], token: "secret", in: db)
        let hub = try HubUnderTest(database: db)
        let config = c.config.hasPrefix("Hub/") ? "\(Self.repo)/\(c.config)" : c.config
        try await hub.start(extra: ["--config", config])
        defer { Task { await hub.kill(SIGTERM) } }

        let (_, body) = try await api("GET", port: hub.port, path: "/api/bots/ref-bot/thresholds")
        let record = try #require(jsonObject(body) as? [String: Any])
        #expect(record["followsFleetDefault"] as? Bool == true, "\(body)")
        let memoryRule = (record["rules"] as? [[String: Any]])?.first { $0["id"] as? String == "memory_usage_mb" }
        #expect(memoryRule?["source"] as? String == "fleet default")

        try await Self.send(hub.port, "ref-bot", ["memory_usage_mb": c.memory, "daily_pnl": 0])
        if c.warns {
            #expect(try await eventually(.seconds(20)) { try await Self.alerts(db, "ref-bot", "memory_usage_mb") == ["WARNING"] })
        } else {
            try await Task.sleep(for: .seconds(2))
            #expect(try await Self.alerts(db, "ref-bot", "memory_usage_mb").isEmpty)
        }
        try await Self.send(hub.port, "ref-bot", ["memory_usage_mb": 100, "daily_pnl": c.pnl])
        #expect(try await eventually(.seconds(20)) { try await Self.alerts(db, "ref-bot", "daily_pnl_loss_limit") == ["CRITICAL"] })
        if c.stops {
            #expect(try await eventually(.seconds(20)) { try await Self.ruleStops(db, "ref-bot") == 1 }, "no automatic stop under \(c.config)")
        } else {
            try await Task.sleep(for: .seconds(2))
            #expect(try await Self.ruleStops(db, "ref-bot") == 0)
        }
    }

    /// A bot's own profile and overrides win over the fleet's default; the default changes at run time on every
    /// replica (no restart); levels change per bot and the cooldown follows the level.
    @Test(.timeLimit(.minutes(4)))
    func ownProfilesOverridesAndRuntimeDefault() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["own-bot", "default-bot", "level-bot"], token: "secret", in: db)
        let hubA = try HubUnderTest(database: db, name: "hub-a")
        let hubB = try HubUnderTest(database: db, name: "hub-b")
        try await hubA.start(extra: ["--config", "production"])
        try await hubB.start(extra: ["--config", "production"])
        defer {
            Task { await hubA.kill(SIGTERM) }
            Task { await hubB.kill(SIGTERM) }
        }
        #expect(try await api("PUT", port: hubA.port, path: "/api/bots/own-bot/profile", body: #"{"profile": "development"}"#).0 == 204)
        let (_, own) = try await api("GET", port: hubA.port, path: "/api/bots/own-bot/thresholds")
        #expect((jsonObject(own) as? [String: Any])?["name"] as? String == "development")
        #expect((jsonObject(own) as? [String: Any])?["followsFleetDefault"] as? Bool == false)
        // An override: its source says so.
        let (put, overridden) = try await api("PUT", port: hubA.port, path: "/api/bots/default-bot/thresholds",
                                              body: #"{"daily_pnl_loss_limit": -500}"#)
        #expect(put == 200)
        let pnlRule = ((jsonObject(overridden) as? [String: Any])?["rules"] as? [[String: Any]])?.first { $0["id"] as? String == "daily_pnl_loss_limit" }
        #expect(pnlRule?["source"] as? String == "bot override" && pnlRule?["limit"] as? Double == -500)

        // memory 450 through replica B: own-bot (development, 600) quiet, default-bot (production, 400) warned.
        try await Self.send(hubB.port, "own-bot", ["memory_usage_mb": 450])
        try await Self.send(hubB.port, "default-bot", ["memory_usage_mb": 450])
        #expect(try await eventually(.seconds(20)) { try await Self.alerts(db, "default-bot", "memory_usage_mb") == ["WARNING"] })
        #expect(try await Self.alerts(db, "own-bot", "memory_usage_mb").isEmpty)

        // The default becomes development through replica A: replica B's engine follows at once, so the breach
        // resolves on default-bot's next batch (450 is under development's 600).
        let (changed, _) = try await api("PUT", port: hubA.port, path: "/api/fleet/default-profile", body: #"{"profile": "development"}"#)
        #expect(changed == 200)
        try await Task.sleep(for: .milliseconds(500))
        try await Self.send(hubB.port, "default-bot", ["memory_usage_mb": 450])
        #expect(try await eventually(.seconds(10)) {
            try await Self.count(db, """
                SELECT count(*) FROM alerts a JOIN bots b ON b.id = a.bot_id
                WHERE b.name = 'default-bot' AND a.rule_id = 'memory_usage_mb' AND a.state = 'resolved'
                """) == 1
        })

        // A rule's level per bot: INFO instead of WARNING.
        #expect(try await api("PUT", port: hubA.port, path: "/api/bots/level-bot/thresholds",
                              body: #"{"memory_usage_mb.level": "INFO", "memory_usage_mb": 100}"#).0 == 200)
        try await Self.send(hubB.port, "level-bot", ["memory_usage_mb": 150])
        #expect(try await eventually(.seconds(20)) { try await Self.alerts(db, "level-bot", "memory_usage_mb") == ["INFO"] })
        let (_, levelRecord) = try await api("GET", port: hubA.port, path: "/api/bots/level-bot/thresholds")
        let levelRule = ((jsonObject(levelRecord) as? [String: Any])?["rules"] as? [[String: Any]])?.first { $0["id"] as? String == "memory_usage_mb" }
        #expect(levelRule?["level"] as? String == "INFO" && levelRule?["levelSource"] as? String == "bot override")
        #expect(try await api("PUT", port: hubA.port, path: "/api/bots/level-bot/thresholds", body: #"{"memory_usage_mb.level": "LOUD"}"#).0 == 400)
    }

    /// Every file under Hub/config/ and the documented JSON examples start the hub, and a bot gets the thresholds
    /// the file names; a channel switched on without its settings is off with a warning in the log.
    @Test(.timeLimit(.minutes(6)))
    func everyShippedConfigurationStarts() async throws {
        let configDir = "\(Self.repo)/Hub/config"
        var files = try FileManager.default.contentsOfDirectory(atPath: configDir).filter { $0.hasSuffix(".json") }.sorted()
            .map { "\(configDir)/\($0)" }
        #expect(files.count >= 3)
        // The JSON examples in docs/configuration.md that are whole configuration files.
        let doc = try String(contentsOfFile: "\(Self.repo)/docs/configuration.md", encoding: .utf8)
        for (n, block) in doc.components(separatedBy: "```json\n").dropFirst().enumerated() {
            let json = block.components(separatedBy: "```").first ?? ""
            guard let object = jsonObject(json) as? [String: Any], object["monitoring"] != nil || object["thresholds"] != nil else { continue }
            let path = NSTemporaryDirectory() + "fw-doc-example-\(n).json"
            try json.write(toFile: path, atomically: true, encoding: .utf8)
            files.append(path)
        }
        for file in files {
            let db = try await TestDatabase.create()
            try await registerBots(["shipped-bot"], token: "secret", in: db)
            let hub = try HubUnderTest(database: db)
            try await hub.start(extra: ["--config", file, "--host", "127.0.0.1"])
            let (status, body) = try await api("GET", port: hub.port, path: "/api/bots/shipped-bot/thresholds")
            #expect(status == 200, "\(file): \(body)")
            let json = try #require(jsonObject(try String(contentsOfFile: file, encoding: .utf8)) as? [String: Any])
            let rules = (jsonObject(body) as? [String: Any])?["rules"] as? [[String: Any]] ?? []
            for (key, value) in json["thresholds"] as? [String: Any] ?? [:] {
                guard let limit = value as? Double else { continue }
                #expect(rules.first { $0["id"] as? String == key }?["limit"] as? Double == limit, "\(file): \(key)")
            }
            let shutdown = (json["monitoring"] as? [String: Any])?["enable_emergency_shutdown"] as? Bool
            if let shutdown {
                #expect((jsonObject(body) as? [String: Any])?["enableEmergencyShutdown"] as? Bool == shutdown, "\(file)")
            }
            let alerts = json["alerts"] as? [String: Any] ?? [:]
            if alerts["email_notifications"] as? Bool == true, alerts["email"] == nil {
                #expect(hub.log.contains("alerts.email.host") && hub.log.contains("email alerts are OFF"), "\(file)")
            }
            await hub.kill(SIGTERM)
        }
    }

    /// `/api/status` in the reference's shape (a `status` word and a `message`), for the fleet and one bot; the
    /// history of every metric of a bot; the periodic health check and its INFO alert for a late bot; the
    /// log file of alerts with rotation; rules that cannot fire, in the API and the CLI.
    @Test(.timeLimit(.minutes(4)))
    func statusHistoryHealthCheckLogFileAndBlindRules() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["ok-bot", "hot-bot", "late-bot"], token: "secret", in: db)
        let logFile = NSTemporaryDirectory() + "/\(db.url.database)-alerts.jsonl"
        let hub = try HubUnderTest(database: db)
        try await hub.start(config: #"""
            {"monitoring": {"health_check_interval": 1}, "hub": {"heartbeat_interval": 3},
             "alerts": {"log_file": "\#(logFile)", "log_file_max_bytes": 4096, "log_file_keep": 2}}
            """#)
        defer { Task { await hub.kill(SIGTERM) } }

        try await Self.send(hub.port, "ok-bot", ["memory_usage_mb": 100, "api_errors": 0, "total_pnl": 12.5])
        try await Self.send(hub.port, "hot-bot", ["memory_usage_mb": 100, "daily_pnl": -80])
        #expect(try await eventually(.seconds(20)) { try await Self.alerts(db, "hot-bot", "daily_pnl_loss_limit") == ["CRITICAL"] })

        // The reference's status: a word and a message, fleet-wide and per bot.
        let (_, fleetBody) = try await api("GET", port: hub.port, path: "/api/status")
        let fleet = try #require(jsonObject(fleetBody) as? [String: Any])
        #expect(fleet["status"] as? String == "critical", "\(fleetBody.prefix(400))")
        #expect((fleet["message"] as? String)?.contains("hot-bot critical (CRITICAL: daily_pnl_loss_limit)") == true, "\(fleet["message"] ?? "")")
        let (_, botBody) = try await api("GET", port: hub.port, path: "/api/status?bot=ok-bot")
        let bot = try #require(jsonObject(botBody) as? [String: Any])
        #expect(["healthy", "warning"].contains(bot["status"] as? String ?? ""), "\(botBody.prefix(300))")
        #expect(bot["message"] is String && (bot["botStatuses"] as? [[String: Any]])?.count == 1)

        // History without a metric: every metric of the bot, one entry per point in time.
        let (h, historyBody) = try await api("GET", port: hub.port, path: "/api/metrics/history?bot=ok-bot&range=1h")
        #expect(h == 200)
        let history = try #require(jsonObject(historyBody) as? [String: Any])
        #expect(history["bot"] as? String == "ok-bot" && history["resolution"] as? String == "raw" && history["range"] as? String == "1h")
        let entry = (history["history"] as? [[String: Any]])?.first
        #expect(entry?["timestamp"] is Double && (entry?["metrics"] as? [String: Double])?["total_pnl"] == 12.5, "\(historyBody.prefix(300))")
        #expect(try await api("GET", port: hub.port, path: "/api/metrics/history?range=1h").0 == 400)

        // A bot connected but sending only heartbeats is late (no data for three heartbeat intervals and a second,
        // 10 s here; the interval is not shorter because a client silent for two intervals is closed, and this busy
        // test process can pause that long): the health check (every second here) records it and raises the INFO
        // alert bot_stale.
        let late = try await ProtocolClient.connect(port: hub.port, bot: "late-bot", token: "secret")
        defer { late.close() }
        let heartbeats = Task {
            while !Task.isCancelled {
                await late.send(.heartbeat(Heartbeat(sentAtMs: 1)))
                try? await Task.sleep(for: .milliseconds(300))
            }
        }
        defer { heartbeats.cancel() }
        #expect(try await eventually(.seconds(40)) { try await Self.alerts(db, "late-bot", "bot_stale") == ["INFO"] })
        #expect(try await Self.count(db, "SELECT count(*) FROM bots WHERE health_checked_at IS NOT NULL AND health_status IS NOT NULL") == 3)
        let (_, checked) = try await api("GET", port: hub.port, path: "/api/status")
        let statuses = (jsonObject(checked) as? [String: Any])?["botStatuses"] as? [[String: Any]] ?? []
        #expect(statuses.allSatisfy { ($0["lastCheck"] as? [String: Any])?["status"] is String })
        #expect((jsonObject(checked) as? [String: Any])?["lastHealthCheck"] is String)

        // The alert log file: one JSON line per event, rotated past 4 KiB.
        #expect(try await eventually(.seconds(10)) { FileManager.default.fileExists(atPath: logFile) })
        let line = try #require((try String(contentsOfFile: logFile, encoding: .utf8)).split(separator: "\n").first)
        let event = try #require(jsonObject(String(line)) as? [String: Any])
        for key in ["at", "event", "alertID", "bot", "rule", "metric", "level", "value", "limit", "summary", "headline", "firedAt"] {
            #expect(event[key] != nil, "missing \(key) in \(line)")
        }
        for i in 0..<40 { try await Self.send(hub.port, "hot-bot", ["daily_pnl": i % 2 == 0 ? -80 : 0]) }
        #expect(try await eventually(.seconds(20)) { FileManager.default.fileExists(atPath: logFile + ".1") })
        #expect(!FileManager.default.fileExists(atPath: logFile + ".3"))

        // ok-bot sent api_errors but never api_calls: the error-rate rule cannot fire, and the operator is told.
        let (_, thresholds) = try await api("GET", port: hub.port, path: "/api/bots/ok-bot/thresholds")
        let blind = (jsonObject(thresholds) as? [String: Any])?["cannotFire"] as? [String] ?? []
        #expect(blind.contains("api_error_rate_percent needs api_calls; this bot has never sent it"), "\(blind)")
        let cli = try await HostileBotTests.cli(["bots", "check", "ok-bot"], db)
        #expect(cli.contains("api_error_rate_percent needs api_calls; this bot has never sent it"), "\(cli)")
    }
}
