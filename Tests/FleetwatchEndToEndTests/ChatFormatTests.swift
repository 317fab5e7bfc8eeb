import FleetwatchTestSupport
import Foundation
import Testing

/// The webhook channel's chat formats, end to end: a real hub fires a memory alert and a real HTTP receiver
/// gets the message in the exact JSON shape Slack's, Discord's and Telegram's APIs expect.
@Suite(.serialized, .enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct ChatFormatTests {
    @Test(.timeLimit(.minutes(3)), arguments: ["slack", "discord", "telegram"])
    func alertsArriveInTheChatServicesShape(format: String) async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["chat-bot"], token: "secret", in: db)
        let receiver = WebhookReceiver(failFirst: 0)
        let (port, server) = try await receiver.start()
        defer { server.cancel() }
        let path = NSTemporaryDirectory() + "fw-chat-\(UUID().uuidString).json"
        try """
            {"alerts": {"console_alerts": false, "webhook_notifications": true, "no_data_seconds": 600,
                        "webhook": {"url": "http://127.0.0.1:\(port)/hook", "min_level": "WARNING", "format": "\(format)",
                                    "chat_id": "-1001234567890"}}}
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let hub = try HubUnderTest(database: db)
        try await hub.start(extra: ["--config", path])
        defer { Task { await hub.kill(SIGTERM) } }
        let agent = try AlertEndToEndTests.agent("chat-bot", hub: hub.agentURL)
        let run = Task { try await agent.run() }
        defer { run.cancel() }
        try await AlertEndToEndTests.send(agent, memory: 650)
        #expect(try await eventually(.seconds(20)) { await !receiver.received.isEmpty })
        let body = try #require(await receiver.received.first).body
        let json = try #require(try JSONSerialization.jsonObject(with: body) as? [String: Any])
        let headline = "[WARNING] chat-bot memory_usage_mb"
        switch format {
        case "slack":
            #expect((json["text"] as? String)?.hasPrefix(headline) == true, "\(json)")
            let attachment = try #require((json["attachments"] as? [[String: Any]])?.first)
            #expect(attachment["color"] as? String == "#F2C744")
            let fields = (attachment["fields"] as? [[String: Any]] ?? []).map { "\($0["title"] ?? "")=\($0["value"] ?? "")" }
            #expect(fields.contains("Bot=chat-bot") && fields.contains("Value=650") && fields.contains("Limit=500"), "\(fields)")
        case "discord":
            #expect((json["content"] as? String)?.hasPrefix(headline) == true, "\(json)")
            let embed = try #require((json["embeds"] as? [[String: Any]])?.first)
            #expect(embed["color"] as? Int == 0xF2C744 && embed["title"] as? String == "WARNING chat-bot memory_usage_mb")
            #expect(((json["allowed_mentions"] as? [String: Any])?["parse"] as? [Any])?.isEmpty == true, "no @everyone from a bot's string")
        default:
            #expect(json["chat_id"] as? String == "-1001234567890")
            let text = json["text"] as? String ?? ""
            #expect(text.hasPrefix(headline) && text.contains("\nBot: chat-bot") && text.contains("\nValue: 650"), "\(text)")
            #expect(json["disable_web_page_preview"] as? Bool == true && json["parse_mode"] == nil)
        }
    }
}
