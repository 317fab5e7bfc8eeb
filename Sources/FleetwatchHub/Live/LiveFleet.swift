import Foundation

/// The newest value of every metric of every bot, on every replica. Fed by `LivePublisher` through
/// PostgreSQL NOTIFY (whichever replica stored the batch), read by `/api/bots`, `/api/status` and the
/// dashboard WebSockets. Each change gets a version, so a viewer asks only for what changed since its
/// last message.
actor LiveFleet {
    /// A metric's newest value: a number, or a string for state metrics.
    enum Value: Sendable, Equatable, Encodable {
        case number(Double)
        case text(String)

        func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case .number(let v): try c.encode(v)
            case .text(let s): try c.encode(s)
            }
        }
    }

    struct Bot: Sendable {
        /// When the newest value was recorded (the bot's clock).
        var at: Date
        var values: [String: (value: Value, version: UInt64)] = [:]
        var version: UInt64 = 0

        var numbers: [String: Double] {
            values.compactMapValues { if case .number(let v) = $0.value { return v } else { return nil } }
        }
        var texts: [String: String] {
            values.compactMapValues { if case .text(let s) = $0.value { return s } else { return nil } }
        }
    }

    private var bots: [String: Bot] = [:]
    private(set) var version: UInt64 = 0

    func apply(_ updates: [LiveUpdate]) {
        for u in updates {
            version += 1
            var bot = bots[u.bot] ?? Bot(at: u.at)
            // Updates can arrive out of order across replicas (a reconnect): keep the newest per metric.
            let newer = u.at >= bot.at
            for (name, v) in u.numbers where newer || bot.values[name] == nil { bot.values[name] = (.number(v), version) }
            for (name, s) in u.states where newer || bot.values[name] == nil { bot.values[name] = (.text(s), version) }
            bot.at = max(bot.at, u.at)
            bot.version = version
            bots[u.bot] = bot
        }
    }

    func bot(_ name: String) -> Bot? { bots[name] }

    func all() -> [String: Bot] { bots }

    /// Metrics changed after `since`, per bot (all bots, or only `bot`), and the version to ask from next.
    func changes(since: UInt64, bot only: String?) -> (version: UInt64, [String: [String: Value]]) {
        var out: [String: [String: Value]] = [:]
        func collect(_ name: String, _ bot: Bot) {
            guard bot.version > since else { return }
            var changed: [String: Value] = [:]
            for (metric, entry) in bot.values where entry.version > since { changed[metric] = entry.value }
            if !changed.isEmpty { out[name] = changed }
        }
        if let only {
            if let b = bots[only] { collect(only, b) }
        } else {
            for (name, b) in bots { collect(name, b) }
        }
        return (version, out)
    }
}

/// The newest values of one stored batch: what travels between replicas.
struct LiveUpdate: Sendable, Equatable, Codable {
    var bot: String
    var at: Date
    var numbers: [String: Double]
    var states: [String: String]

    enum CodingKeys: String, CodingKey {
        case bot = "b", at = "t", numbers = "v", states = "s"
    }
}
