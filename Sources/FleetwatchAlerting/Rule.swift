/// One condition checked on a bot's data as it arrives.
public struct Rule: Sendable, Equatable, Codable, Identifiable {
    /// What is compared with the limit.
    public enum Kind: Sendable, Equatable, Codable {
        /// The metric's value is above the limit (gauges, durations).
        case above(metric: String)
        /// The metric's value is below the limit.
        case below(metric: String)
        /// A counter's increase over `windowSeconds`, scaled to `perSeconds`, is above the limit.
        case rateAbove(counter: String, windowSeconds: Int, perSeconds: Int)
        /// A counter's increase over `windowSeconds`, scaled to `perSeconds`, is below the limit
        /// (only once the window holds data).
        case rateBelow(counter: String, windowSeconds: Int, perSeconds: Int)
        /// 100 × increase(numerator) / increase(denominator) over `windowSeconds` is above the limit (percent).
        case ratioAbove(numerator: String, denominator: String, windowSeconds: Int)
        /// A string state differs from every healthy value; the limit is unused.
        case stateNot(metric: String, healthy: [String])
        /// A string state is one of `values` (a failure); the limit is unused.
        case stateIn(metric: String, values: [String])
    }

    /// Stable identifier: the threshold key an operator overrides (`memory_usage_mb`, `api_error_rate_percent`).
    public var id: String
    public var kind: Kind
    public var limit: Double
    public var level: AlertLevel
    /// The condition clears only when the value is back past the limit by this much (0: no hysteresis).
    public var hysteresis: Double
    /// Shown in notifications.
    public var summary: String
    /// Firing this rule stops the bot (automatic emergency shutdown).
    public var emergencyStop: Bool

    public init(id: String, kind: Kind, limit: Double, level: AlertLevel, hysteresis: Double = 0, summary: String,
                emergencyStop: Bool = false) {
        self.emergencyStop = emergencyStop
        self.id = id
        self.kind = kind
        self.limit = limit
        self.level = level
        self.hysteresis = hysteresis
        self.summary = summary
    }

    /// Every metric the rule reads: a ratio needs both counters; without one of them it can never fire.
    public var metrics: [String] {
        switch kind {
        case .above(let m), .below(let m), .stateNot(let m, _), .stateIn(let m, _): return [m]
        case .rateAbove(let c, _, _), .rateBelow(let c, _, _): return [c]
        case .ratioAbove(let n, let d, _): return [n, d]
        }
    }

    /// The metric the rule reads first (for silences by metric and for display).
    public var metric: String {
        switch kind {
        case .above(let m), .below(let m), .stateNot(let m, _), .stateIn(let m, _): return m
        case .rateAbove(let c, _, _), .rateBelow(let c, _, _): return c
        case .ratioAbove(let n, _, _): return n
        }
    }
}
