import FleetwatchAlerting
import Testing

@Suite struct ThresholdProfileTests {
    /// A rule id names one rule: an alert, its tracker and `rule(_:)` are keyed by it, so no built-in profile (with
    /// its overrides and automatic-shutdown rules) may hold two rules with one id.
    @Test(arguments: ThresholdProfile.builtIn.keys.sorted())
    func everyBuiltInProfileHasOneRulePerID(name: String) throws {
        let base = try #require(ThresholdProfile.builtIn[name])
        for profile in [base, base.withEmergencyRules(), base.overriding(["memory_usage_mb": 1, "memory_usage_mb.hysteresis": 2]).profile.withEmergencyRules()] {
            let ids = profile.rules.map(\.id)
            #expect(Set(ids).count == ids.count, "\(profile.name): \(ids)")
        }
        var production = ThresholdProfile.production
        production.enableEmergencyShutdown = true
        #expect(production.withEmergencyRules().rules.count > production.rules.count)
    }
}
