import FleetwatchAlerting
import Testing

@Suite struct ThresholdProfileTests {
    /// The alert engine finds an observation's rule by its place among the rules, not by a search from the start
    /// (`AlertEngine.prepare`): that finds the rule a lookup by id finds only while no two rules share an id.
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
