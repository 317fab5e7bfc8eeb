/// The life of one alert (one bot, one rule): quiet → firing → repeated after its level's cooldown →
/// resolved. Pure: observations and time come in, notifications come out. The PostgreSQL-backed alert
/// store applies the same transitions with conditional updates, so replicas never notify twice.
public struct AlertTracker: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        case quiet
        case firing(sinceMs: Int64, lastNotifiedMs: Int64)
    }

    /// What to tell the channels.
    public enum Notification: Sendable, Equatable {
        case fired(value: Double)
        case repeated(value: Double, firingForMs: Int64)
        case resolved(value: Double, firedForMs: Int64)
    }

    public private(set) var state: State = .quiet

    public init() {}

    /// Whether `value` breaches `rule`, given whether the alert is firing (hysteresis applies to clearing).
    public static func breached(_ rule: Rule, value: Double, firing: Bool) -> Bool {
        switch rule.kind {
        case .above, .rateAbove, .ratioAbove:
            return firing ? value > rule.limit - rule.hysteresis : value > rule.limit
        case .below, .rateBelow:
            return firing ? value < rule.limit + rule.hysteresis : value < rule.limit
        case .stateNot, .stateIn:
            return value != 0
        }
    }

    /// Feeds one observation; returns the notification it causes, if any.
    public mutating func observe(_ rule: Rule, value: Double, nowMs: Int64, cooldowns: Cooldowns) -> Notification? {
        switch state {
        case .quiet:
            guard Self.breached(rule, value: value, firing: false) else { return nil }
            state = .firing(sinceMs: nowMs, lastNotifiedMs: nowMs)
            return .fired(value: value)
        case .firing(let since, let last):
            if !Self.breached(rule, value: value, firing: true) {
                state = .quiet
                return .resolved(value: value, firedForMs: nowMs - since)
            }
            guard nowMs - last >= cooldowns.ms(for: rule.level) else { return nil }
            state = .firing(sinceMs: since, lastNotifiedMs: nowMs)
            return .repeated(value: value, firingForMs: nowMs - since)
        }
    }
}
