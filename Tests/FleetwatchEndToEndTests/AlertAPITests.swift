import AsyncHTTPClient
import FleetwatchAgent
import NIOCore
import NIOHTTP1
import FleetwatchTestSupport
import Foundation
import Logging
import Testing

/// The alert API through the real HTTP stack, the no-data rule and the live event feed.
@Suite(.serialized, .enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct AlertAPITests {
    static func http(_ method: String, port: Int, path: String, body: String? = nil) async throws -> (Int, String) {
        try await api(method, port: port, path: path, body: body)
    }

    static func json(_ s: String) -> Any? { jsonObject(s) }

    @Test(.timeLimit(.minutes(3)))
    func thresholdsSilencesAcknowledgementAndFeed() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["api-bot"], token: "secret", in: db)
        let receiver = WebhookReceiver(failFirst: 0)
        let (webhookPort, server) = try await receiver.start()
        defer { server.cancel() }
        let hub = try HubUnderTest(database: db)
        try await hub.start(extra: ["--config", try AlertEndToEndTests.config(webhookPort: webhookPort)])
        let agent = try AlertEndToEndTests.agent("api-bot", hub: hub.agentURL)
        let task = Task { try await agent.run() }
        defer { task.cancel() }

        // 150 MB is fine under the default 500 MB limit …
        try await AlertEndToEndTests.send(agent, memory: 150)
        // … until an operator lowers this bot's limit: the next batch uses it, no restart.
        let (status, body) = try await Self.http("PUT", port: hub.port, path: "/api/bots/api-bot/thresholds",
                                                 body: #"{"memory_usage_mb": 100}"#)
        #expect(status == 200, "\(body)")
        #expect(body.contains(#""limit":100"#))
        let (bad, _) = try await Self.http("PUT", port: hub.port, path: "/api/bots/api-bot/thresholds", body: #"{"no_such_rule": 1}"#)
        #expect(bad == 400)
        // The change reaches the engine through NOTIFY: a batch sent before it arrives still meets the old limit,
        // so batches are sent until one meets the new one (no sleep standing in for the notification).
        #expect(try await eventually(.seconds(20)) {
            try await AlertEndToEndTests.send(agent, memory: 150)
            return await receiver.events("fired").count == 1
        })

        let (_, firing) = try await Self.http("GET", port: hub.port, path: "/api/alerts?bot=api-bot&state=firing&level=WARNING")
        let alerts = try #require(Self.json(firing) as? [[String: Any]])
        #expect(alerts.count == 1)
        let id = try #require(alerts.first?["id"] as? Int)
        let (ackStatus, acked) = try await Self.http("POST", port: hub.port, path: "/api/alerts/\(id)/acknowledge")
        #expect(ackStatus == 200 && acked.contains(#""acknowledgedBy":"test-operator""#))

        // Silence the bot: the resolution is recorded as silenced and not sent.
        let until = ISO8601DateFormatter().string(from: Date().addingTimeInterval(3600))
        let (silenceStatus, _) = try await Self.http("POST", port: hub.port, path: "/api/silences",
                                                     body: #"{"bot": "api-bot", "until": "\#(until)", "reason": "maintenance"}"#)
        #expect(silenceStatus == 201)
        try await AlertEndToEndTests.send(agent, memory: 50)
        #expect(try await eventually {
            let ledger = try await db.withClient { client in
                try await client.query("SELECT outcome FROM notifications WHERE event = 'resolved' AND channel = 'webhook'",
                                       logger: Logger(label: "t")).decode(String.self).all()
            }
            return ledger == ["silenced"]
        })
        #expect(await receiver.events("resolved").isEmpty)

        // The live feed saw both events (through PostgreSQL NOTIFY).
        let (_, feed) = try await Self.http("GET", port: hub.port, path: "/api/events?after=0")
        let entries = try #require(Self.json(feed) as? [[String: Any]])
        let kinds = entries.compactMap { ($0["event"] as? [String: Any])?["kind"] as? String }
        #expect(kinds == ["fired", "resolved"])
        let (_, profiles) = try await Self.http("GET", port: hub.port, path: "/api/thresholds")
        #expect(profiles.contains(#""name":"production""#))
        await hub.kill(SIGTERM)
    }

    /// A bot that stops reporting raises "bot silent" (CRITICAL); its return resolves it.
    @Test(.timeLimit(.minutes(3)))
    func silentBotAlertFiresAndResolves() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["quiet-bot"], token: "secret", in: db)
        let receiver = WebhookReceiver(failFirst: 0)
        let (webhookPort, server) = try await receiver.start()
        defer { server.cancel() }
        let path = NSTemporaryDirectory() + "fw-nodata-\(UUID().uuidString).json"
        try """
            {"alerts": {"console_alerts": false, "webhook_notifications": true, "no_data_seconds": 5,
                        "webhook": {"url": "http://127.0.0.1:\(webhookPort)/hook", "min_level": "CRITICAL"}}}
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let hub = try HubUnderTest(database: db)
        try await hub.start(extra: ["--config", path])
        let first = try AlertEndToEndTests.agent("quiet-bot", hub: hub.agentURL)
        let t1 = Task { try await first.run() }
        try await AlertEndToEndTests.send(first, memory: 100)
        t1.cancel()
        #expect(try await eventually(.seconds(30)) { await receiver.events("fired").contains { $0.json["rule"] == "bot_silent" } })
        // While the bot stays silent the alert is not opened again (the watcher runs every second here). A webhook
        // delivery is at least once (a POST that timed out on a loaded machine is sent again, same
        // X-Fleetwatch-Delivery), so count alerts, not POSTs.
        try await Task.sleep(for: .seconds(3))
        let whileSilent = await receiver.events("fired").filter { $0.json["rule"] == "bot_silent" }
        #expect(Set(whileSilent.compactMap { $0.json["alert_id"] }).count == 1, "\(whileSilent.map(\.json))")
        let second = try AlertEndToEndTests.agent("quiet-bot", hub: hub.agentURL)
        let t2 = Task { try await second.run() }
        defer { t2.cancel() }
        // The bot is back and keeps reporting (a single batch would leave it silent again 5 s later).
        let reporting = Task {
            while !Task.isCancelled {
                try await AlertEndToEndTests.send(second, memory: 100)
                try await Task.sleep(for: .seconds(1))
            }
        }
        defer { reporting.cancel() }
        // The bot's return resolves that alert.
        let silentAlert = whileSilent.first?.json["alert_id"]
        #expect(try await eventually(.seconds(30)) {
            await receiver.events("resolved").contains { $0.json["rule"] == "bot_silent" && $0.json["alert_id"] == silentAlert }
        })
        await hub.kill(SIGTERM)
    }
}
