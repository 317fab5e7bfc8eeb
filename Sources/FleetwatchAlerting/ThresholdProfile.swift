/// A named set of rules: the reference system's default table, `production` and `development`.
public struct ThresholdProfile: Sendable, Equatable, Codable {
    public var name: String
    public var rules: [Rule]
    /// Whether rules may stop a bot automatically (used by the emergency-stop feature).
    public var enableEmergencyShutdown: Bool

    public init(name: String, rules: [Rule], enableEmergencyShutdown: Bool) {
        self.name = name
        self.rules = rules
        self.enableEmergencyShutdown = enableEmergencyShutdown
    }

    /// The rule with `id`, if any.
    public func rule(_ id: String) -> Rule? { rules.first { $0.id == id } }

    /// This profile with `overrides` applied: `rule_id` → limit, `rule_id.hysteresis` → hysteresis.
    /// Unknown keys are returned.
    public func overriding(_ overrides: [String: Double]) -> (profile: ThresholdProfile, unknown: [String]) {
        var copy = self
        var unknown: [String] = []
        for (key, value) in overrides.sorted(by: { $0.key < $1.key }) {
            let isHysteresis = key.hasSuffix(Self.hysteresisSuffix)
            let id = isHysteresis ? String(key.dropLast(Self.hysteresisSuffix.count)) : key
            guard let i = copy.rules.firstIndex(where: { $0.id == id }), !(isHysteresis && value < 0) else {
                unknown.append(key)
                continue
            }
            if isHysteresis { copy.rules[i].hysteresis = value } else { copy.rules[i].limit = value }
        }
        return (copy, unknown)
    }

    /// Suffix of an override key that sets a rule's hysteresis instead of its limit.
    public static let hysteresisSuffix = ".hysteresis"

    /// Whether `key` names a rule limit or a rule's hysteresis.
    public static func isOverrideKey(_ key: String) -> Bool {
        standard.overriding([key: 0]).unknown.isEmpty
    }

    /// The reference system's default thresholds.
    public static let standard = ThresholdProfile(name: "default", rules: [
        Rule(id: "memory_usage_mb", kind: .above(metric: "memory_usage_mb"), limit: 500, level: .warning,
             hysteresis: 10, summary: "Memory usage above the limit"),
        Rule(id: "log_file_size_mb", kind: .above(metric: "log_file_size_mb"), limit: 8, level: .warning,
             summary: "Log file larger than the limit"),
        Rule(id: "nonce_generation_rate_per_sec", kind: .rateBelow(counter: "nonces_generated", windowSeconds: 60, perSeconds: 1),
             limit: 1000, level: .critical, summary: "Nonce generation slower than the limit"),
        Rule(id: "websocket_reconnects_per_hour", kind: .rateAbove(counter: "websocket_reconnects", windowSeconds: 3600, perSeconds: 3600),
             limit: 5, level: .warning, summary: "Exchange WebSocket reconnecting too often"),
        Rule(id: "api_error_rate_percent", kind: .ratioAbove(numerator: "api_errors", denominator: "api_calls", windowSeconds: 300),
             limit: 0.1, level: .critical, summary: "API error rate above the limit"),
        Rule(id: "trading_success_rate_percent", kind: .below(metric: "success_rate"), limit: 85, level: .critical,
             hysteresis: 1, summary: "Trading success rate below the limit"),
        Rule(id: "daily_pnl_loss_limit", kind: .below(metric: "daily_pnl"), limit: -50, level: .critical,
             summary: "Daily loss beyond the limit"),
        Rule(id: "balance_manager_response_ms", kind: .above(metric: "balance_check_time"), limit: 2000, level: .warning,
             summary: "Balance manager slow to respond"),
        Rule(id: "websocket_latency_ms", kind: .above(metric: "websocket_latency_ms"), limit: 1000, level: .warning,
             summary: "Exchange WebSocket latency above the limit"),
        Rule(id: "trade_execution_time_ms", kind: .above(metric: "trade_execution_time"), limit: 5000, level: .warning,
             summary: "Trade execution slower than the limit"),
        Rule(id: "websocket_status", kind: .stateNot(metric: "websocket_status", healthy: ["connected"]), limit: 0,
             level: .warning, summary: "Exchange WebSocket not connected"),
        Rule(id: "balance_manager_health", kind: .stateNot(metric: "balance_manager_health", healthy: ["healthy"]), limit: 0,
             level: .warning, summary: "Balance manager unhealthy"),
    ], enableEmergencyShutdown: false)

    /// The reference system's production profile: aggressive thresholds, automatic shutdown on.
    public static let production: ThresholdProfile = {
        var p = standard.overriding(["memory_usage_mb": 400, "trading_success_rate_percent": 90,
                                     "daily_pnl_loss_limit": -25, "api_error_rate_percent": 0.05]).profile
        p.name = "production"
        p.enableEmergencyShutdown = true
        return p
    }()

    /// The reference system's development profile: relaxed thresholds, no automatic shutdown.
    public static let development: ThresholdProfile = {
        var p = standard.overriding(["memory_usage_mb": 600, "trading_success_rate_percent": 75,
                                     "daily_pnl_loss_limit": -100]).profile
        p.name = "development"
        return p
    }()

    /// This profile with the automatic-shutdown rules of the reference system added when
    /// `enableEmergencyShutdown` is on: memory above 2× its limit, API error rate above 10× its limit, daily
    /// loss beyond 2× its limit, a critical component failure. Limits follow the profile's (overridden) ones.
    public func withEmergencyRules() -> ThresholdProfile {
        guard enableEmergencyShutdown else { return self }
        var copy = self
        func derived(_ id: String, factor: Double, summary: String) -> Rule? {
            guard var r = rule(id) else { return nil }
            r.id = Self.emergencyPrefix + id
            r.limit *= factor
            r.level = .critical
            r.hysteresis = 0
            r.summary = summary
            r.emergencyStop = true
            return r
        }
        copy.rules += [
            derived("memory_usage_mb", factor: 2, summary: "Automatic shutdown: memory above 2× its limit"),
            derived("api_error_rate_percent", factor: 10, summary: "Automatic shutdown: API error rate above 10× its limit"),
            derived("daily_pnl_loss_limit", factor: 2, summary: "Automatic shutdown: daily loss beyond 2× its limit"),
            Rule(id: Self.emergencyPrefix + "balance_manager_failed",
                 kind: .stateIn(metric: "balance_manager_health", values: Self.failedStates), limit: 0, level: .critical,
                 summary: "Automatic shutdown: balance manager failed", emergencyStop: true),
            Rule(id: Self.emergencyPrefix + "component_failed",
                 kind: .stateIn(metric: "critical_component_status", values: Self.failedStates), limit: 0, level: .critical,
                 summary: "Automatic shutdown: a critical component failed", emergencyStop: true),
        ].compactMap { $0 }
        return copy
    }

    /// Prefix of the automatic-shutdown rules' ids.
    public static let emergencyPrefix = "emergency_shutdown."
    /// State values that count as a critical component failure.
    public static let failedStates = ["failed", "critical", "dead"]

    /// The built-in profiles by name.
    public static let builtIn: [String: ThresholdProfile] = [
        standard.name: standard, production.name: production, development.name: development,
    ]
}
