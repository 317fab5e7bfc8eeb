import FleetwatchAlerting
import Foundation

/// What the webhook channel posts: fleetwatch's own JSON (signed; docs/alerts.md), or the message an incoming
/// webhook of a chat service expects, so an alert reaches a channel with no relay in between.
public enum WebhookFormat: String, Sendable, CaseIterable {
    /// fleetwatch's JSON body (its `text` field also satisfies Slack, Discord and Mattermost).
    case fleetwatch
    /// Slack incoming webhook: `text` plus an attachment coloured by level with the figures as fields.
    case slack
    /// Discord webhook: `content` plus an embed coloured by level.
    case discord
    /// Telegram Bot API `sendMessage` (the URL is `https://api.telegram.org/bot<TOKEN>/sendMessage`): `chat_id` and
    /// plain `text` (no parse mode, so nothing a bot sends can become markup).
    case telegram

    /// Colour of a level: red for critical, amber for warning, blue for info, green when resolved.
    static func color(_ event: AlertEvent) -> Int {
        if event.kind == .resolved { return 0x2EB886 }
        switch event.level {
        case .critical: return 0xD00000
        case .warning: return 0xF2C744
        default: return 0x439FE0
        }
    }

    /// The figures of the event, for a chat message.
    static func figures(_ event: AlertEvent) -> [(String, String)] {
        var out: [(String, String)] = [("Bot", event.bot), ("Metric", event.metric)]
        if let state = event.state { out.append(("State", state)) } else {
            out.append(("Value", AlertEvent.format(event.value)))
            out.append(("Limit", AlertEvent.format(event.limit)))
        }
        out.append(("Level", event.level.rawValue))
        return out
    }

    /// The body for `event`; `chatID` is Telegram's chat (required for `.telegram`).
    public func body(_ event: AlertEvent, chatID: String? = nil) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        switch self {
        case .fleetwatch:
            return try WebhookNotifier.body(event)
        case .slack:
            struct Field: Encodable { let title: String; let value: String; let short: Bool }
            struct Attachment: Encodable { let color: String; let fallback: String; let text: String; let fields: [Field]; let ts: Int64 }
            struct Body: Encodable { let text: String; let attachments: [Attachment] }
            let fields = Self.figures(event).map { Field(title: $0.0, value: $0.1, short: true) }
            return try encoder.encode(Body(text: event.headline, attachments: [Attachment(
                color: String(format: "#%06X", Self.color(event)), fallback: event.headline, text: event.summary, fields: fields,
                ts: Int64(event.at.timeIntervalSince1970))]))
        case .discord:
            struct Field: Encodable { let name: String; let value: String; let inline: Bool }
            struct Embed: Encodable { let title: String; let description: String; let color: Int; let fields: [Field]; let timestamp: String }
            struct Mentions: Encodable { let parse: [String] }
            struct Body: Encodable { let content: String; let embeds: [Embed]; let allowed_mentions: Mentions }
            let title = "\(event.kind == .resolved ? "RESOLVED" : event.level.rawValue) \(event.bot) \(event.metric)"
            // Discord's limits: content 2000 characters, embed title 256, description 4096, field value 1024.
            return try encoder.encode(Body(
                content: String(event.headline.prefix(2000)),
                embeds: [Embed(title: String(title.prefix(256)), description: String(event.summary.prefix(4096)), color: Self.color(event),
                               fields: Self.figures(event).map { Field(name: $0.0, value: String($0.1.prefix(1024)), inline: true) },
                               timestamp: ISO8601DateFormatter().string(from: event.at))],
                allowed_mentions: Mentions(parse: [])))   // a bot's string never pings @everyone
        case .telegram:
            guard let chatID, !chatID.isEmpty else { throw NotifyError("the telegram format needs alerts.webhook.chat_id", retryable: false) }
            struct Body: Encodable { let chat_id: String; let text: String; let disable_web_page_preview: Bool }
            let lines = [event.headline] + Self.figures(event).map { "\($0.0): \($0.1)" }
            return try encoder.encode(Body(chat_id: chatID, text: String(lines.joined(separator: "\n").prefix(4096)),
                                           disable_web_page_preview: true))
        }
    }
}
