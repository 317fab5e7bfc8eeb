/// How serious an alert is. Each level has its own repeat cooldown.
public enum AlertLevel: String, Sendable, Codable, CaseIterable, Comparable {
    case info = "INFO"
    case warning = "WARNING"
    case critical = "CRITICAL"

    var rank: Int {
        switch self {
        case .info: return 0
        case .warning: return 1
        case .critical: return 2
        }
    }

    public static func < (a: AlertLevel, b: AlertLevel) -> Bool { a.rank < b.rank }
}

/// Repeat intervals per level (the reference system's defaults: 5, 10 and 30 minutes).
public struct Cooldowns: Sendable, Equatable, Codable {
    public var infoMs: Int64 = 5 * 60_000
    public var warningMs: Int64 = 10 * 60_000
    public var criticalMs: Int64 = 30 * 60_000

    public init() {}

    public func ms(for level: AlertLevel) -> Int64 {
        switch level {
        case .info: return infoMs
        case .warning: return warningMs
        case .critical: return criticalMs
        }
    }
}
