import Foundation

/// One alert notification: an alert fired, repeated while still breached, or resolved.
public struct AlertEvent: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable {
        case fired, repeated, resolved
    }
    /// The alert's id in PostgreSQL (stable across its fired/repeated/resolved events).
    public var alertID: Int64
    public var kind: Kind
    public var bot: String
    public var ruleID: String
    public var metric: String
    public var level: AlertLevel
    public var value: Double
    public var limit: Double
    public var summary: String
    /// When the alert first fired.
    public var firedAt: Date
    /// When this event happened.
    public var at: Date
    /// The string state, for state rules.
    public var state: String?
    /// Whether a silence covers this bot/metric: the event is recorded but channels are not notified.
    public var silenced: Bool

    public init(alertID: Int64, kind: Kind, bot: String, ruleID: String, metric: String, level: AlertLevel, value: Double,
                limit: Double, summary: String, firedAt: Date, at: Date, state: String? = nil, silenced: Bool = false) {
        self.alertID = alertID
        self.kind = kind
        self.bot = bot
        self.ruleID = ruleID
        self.metric = metric
        self.level = level
        self.value = value
        self.limit = limit
        self.summary = summary
        self.firedAt = firedAt
        self.at = at
        self.state = state
        self.silenced = silenced
    }

    /// One line for humans: `[CRITICAL] kraken-1 daily_pnl: Daily loss beyond the limit (value -62.5, limit -50)`.
    public var headline: String {
        let what = kind == .resolved ? "RESOLVED" : level.rawValue
        let shown = state.map { "state \($0)" } ?? "value \(Self.format(value)), limit \(Self.format(limit))"
        return "[\(what)] \(bot) \(metric): \(summary) (\(shown))"
    }

    public static func format(_ v: Double) -> String {
        v.rounded() == v && abs(v) < 1e15 ? String(Int64(v)) : String(format: "%.4g", v)
    }
}
