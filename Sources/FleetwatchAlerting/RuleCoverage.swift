/// Which rules of a profile can fire for a bot, given the metric names the bot has ever sent: a rule whose
/// metric (or either counter of a ratio) never arrived cannot fire, and the operator should hear of it.
public struct RuleCoverage: Sendable, Equatable {
    /// The rule.
    public var ruleID: String
    /// What it reads.
    public var needs: [String]
    /// Of those, what the bot has never sent.
    public var missing: [String]

    /// Whether the rule can fire at all.
    public var canFire: Bool { missing.isEmpty }

    /// "api_error_rate_percent needs api_calls; this bot has never sent it".
    public var explanation: String? {
        guard !missing.isEmpty else { return nil }
        let what = missing.joined(separator: " and ")
        return "\(ruleID) needs \(what); this bot has never sent \(missing.count == 1 ? "it" : "them")"
    }

    /// Every rule of `profile` against the names in `sent`.
    public static func of(_ profile: ThresholdProfile, sent: Set<String>) -> [RuleCoverage] {
        profile.rules.map { rule in
            RuleCoverage(ruleID: rule.id, needs: rule.metrics, missing: rule.metrics.filter { !sent.contains($0) })
        }
    }
}
