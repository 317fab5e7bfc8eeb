/// The life of one alert (one bot, one rule) as this replica sees it: quiet → firing → (a repeat due after
/// its level's cooldown) → resolved. Pure: observations and time come in, actions for the alert store come out.
/// The PostgreSQL-backed store carries them out with conditional updates, so replicas never notify twice: a
/// `repeatIfDue` may find that another replica notified lately, and the tracker then looks again a little later.
/// `AlertEngine` drives one tracker per firing rule of each bot.
public struct AlertTracker: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        case quiet
        /// Firing; a breach is checked for a repeat no earlier than `nextRepeatCheckMs`.
        case firing(nextRepeatCheckMs: Int64)
    }

    /// What to ask the alert store.
    public enum Action: Sendable, Equatable {
        /// Open the alert (and notify).
        case fire
        /// Notify again if the level's cooldown has passed since the last notification on any replica.
        case repeatIfDue
        /// Close the alert (and notify).
        case resolve
    }

    public private(set) var state: State

    /// A quiet tracker, or one for an alert the store says is firing (its repeat is checked at the next breach).
    public init(firing: Bool = false) {
        state = firing ? .firing(nextRepeatCheckMs: 0) : .quiet
    }

    public var isFiring: Bool { state != .quiet }

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

    /// Feeds one observation; returns what to ask the store, if anything. A `repeatIfDue` assumes the store
    /// will find it not yet due (the next check a tenth of the cooldown later, at least a second); call
    /// `repeated` when it did notify.
    public mutating func observe(_ rule: Rule, value: Double, nowMs: Int64, cooldowns: Cooldowns) -> Action? {
        let cooldown = cooldowns.ms(for: rule.level)
        switch state {
        case .quiet:
            guard Self.breached(rule, value: value, firing: false) else { return nil }
            state = .firing(nextRepeatCheckMs: nowMs + cooldown)
            return .fire
        case .firing(let next):
            if !Self.breached(rule, value: value, firing: true) {
                state = .quiet
                return .resolve
            }
            guard nowMs >= next else { return nil }
            state = .firing(nextRepeatCheckMs: nowMs + max(cooldown / 10, 1000))
            return .repeatIfDue
        }
    }

    /// The store notified the repeat: the next check is a whole cooldown away.
    public mutating func repeated(_ rule: Rule, nowMs: Int64, cooldowns: Cooldowns) {
        guard isFiring else { return }
        state = .firing(nextRepeatCheckMs: nowMs + cooldowns.ms(for: rule.level))
    }
}
