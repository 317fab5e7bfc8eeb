import FleetwatchAlerting
import FleetwatchProtocol
import Testing

@Suite struct RuleEvaluatorTests {
    static func gauge(_ name: String, _ values: [Double], at t0: Int64 = 1_000_000) -> Series {
        Series(name: name, kind: .gauge, timestamps: values.indices.map { t0 + Int64($0) * 1000 }, values: values)
    }

    static func counter(_ name: String, _ value: Double, at t: Int64) -> Series {
        Series(name: name, kind: .counter, timestamps: [t], values: [value])
    }

    /// Table: metric values → whether the rule is breached under the default profile.
    @Test(arguments: [
        ("memory_usage_mb", "memory_usage_mb", [480.0, 510], true),
        ("memory_usage_mb", "memory_usage_mb", [480.0, 499.9], false),
        ("log_file_size_mb", "log_file_size_mb", [8.5], true),
        ("trading_success_rate_percent", "success_rate", [90, 84.9], true),
        ("trading_success_rate_percent", "success_rate", [85.0], false),
        ("daily_pnl_loss_limit", "daily_pnl", [-10, -50.01], true),
        ("daily_pnl_loss_limit", "daily_pnl", [-49.99], false),
        ("websocket_latency_ms", "websocket_latency_ms", [1000.5], true),
        ("trade_execution_time_ms", "trade_execution_time", [120, 5200, 80], true),
        ("balance_manager_response_ms", "balance_check_time", [1999], false),
    ])
    func thresholdRules(rule: String, metric: String, values: [Double], breached: Bool) throws {
        var e = RuleEvaluator(profile: .standard)
        let o = try #require(e.evaluate([Self.gauge(metric, values)]).first { $0.ruleID == rule })
        let r = try #require(ThresholdProfile.standard.rule(rule))
        #expect(AlertTracker.breached(r, value: o.value, firing: false) == breached)
    }

    /// An above rule sees a batch's greatest value, a below rule its least, each at the first sample holding it;
    /// other metrics in the batch change nothing.
    @Test func extremesAreTakenAtTheirFirstSample() throws {
        var e = RuleEvaluator(profile: .standard)
        let batch = [Self.gauge("unrelated", [1e9]), Self.gauge("memory_usage_mb", [480, 600, 510, 600], at: 5_000),
                     Self.gauge("daily_pnl", [-10, -60, -60, 3], at: 9_000)]
        let out = e.evaluate(batch)
        let memory = try #require(out.first { $0.ruleID == "memory_usage_mb" })
        #expect(memory.value == 600 && memory.atMs == 6_000)
        let loss = try #require(out.first { $0.ruleID == "daily_pnl_loss_limit" })
        #expect(loss.value == -60 && loss.atMs == 10_000)
    }

    @Test func stateRules() throws {
        var e = RuleEvaluator(profile: .standard)
        let s = Series(name: "websocket_status", kind: .state, timestamps: [1, 2], states: ["connected", "reconnecting"])
        let o = try #require(e.evaluate([s]).first { $0.ruleID == "websocket_status" })
        #expect(o.value == 1 && o.state == "reconnecting")
        let ok = Series(name: "balance_manager_health", kind: .state, timestamps: [3], states: ["healthy"])
        #expect(e.evaluate([ok]).first { $0.ruleID == "balance_manager_health" }?.value == 0)
    }

    /// WebSocket reconnects per hour: counts rises within the last hour, across batches and counter restarts.
    @Test func rateOverAWindow() {
        var e = RuleEvaluator(profile: .standard)
        var last: Observation?
        let t0: Int64 = 10_000_000
        // 4 reconnects in the first 10 minutes, then the bot restarts (counter back to 0) and reconnects 3 times.
        for (i, v) in [0.0, 1, 2, 3, 4, 0, 1, 2, 3].enumerated() {
            last = e.evaluate([Self.counter("websocket_reconnects", v, at: t0 + Int64(i) * 60_000)])
                .first { $0.ruleID == "websocket_reconnects_per_hour" }
        }
        #expect(last?.value == 7)
        // 61 minutes later the first minute has left the window.
        last = e.evaluate([Self.counter("websocket_reconnects", 3, at: t0 + 3_700_000)]).first { $0.ruleID == "websocket_reconnects_per_hour" }
        // The baseline is the last reading at or before the window's start (minute 1, value 1): the rises
        // after it are 3 before the restart and 3 after it.
        #expect(last?.value == 6)
    }

    @Test func rateBelowWaitsForAFullWindow() {
        var e = RuleEvaluator(profile: .standard)
        #expect(e.evaluate([Self.counter("nonces_generated", 0, at: 0)]).allSatisfy { $0.ruleID != "nonce_generation_rate_per_sec" })
        #expect(e.evaluate([Self.counter("nonces_generated", 1000, at: 10_000)]).allSatisfy { $0.ruleID != "nonce_generation_rate_per_sec" })
        let o = e.evaluate([Self.counter("nonces_generated", 30_000, at: 60_000)]).first { $0.ruleID == "nonce_generation_rate_per_sec" }
        #expect(o?.value == 500)
    }

    /// API error rate = errors / calls over the window, in percent.
    @Test func ratioOfTwoCounters() {
        var e = RuleEvaluator(profile: .standard)
        _ = e.evaluate([Self.counter("api_calls", 1000, at: 0), Self.counter("api_errors", 5, at: 0)])
        let o = e.evaluate([Self.counter("api_calls", 11_000, at: 60_000), Self.counter("api_errors", 20, at: 60_000)])
            .first { $0.ruleID == "api_error_rate_percent" }
        #expect(o?.value == 0.15)
        #expect(AlertTracker.breached(ThresholdProfile.standard.rule("api_error_rate_percent")!, value: 0.15, firing: false))
    }

    /// Where the rules' series are is worked out once per set of names: batches whose names change order, lose a
    /// metric, repeat one (the last counts) or gain one are read as a fresh evaluator reads them, and counter
    /// readings follow their series wherever it moves. New rules on the same names are seen at the next batch.
    @Test func batchesWhoseNamesChangeAreReadAsIfEachWereTheFirst() throws {
        let memory = "memory_usage_mb", pnl = "daily_pnl", ws = "websocket_status"
        func batch(_ t: Int64, _ names: [String]) -> [Series] {
            names.enumerated().map { k, name in
                name == ws ? Series(name: ws, kind: .state, timestamps: [t], states: [k % 2 == 0 ? "connected" : "reconnecting"])
                           : Self.gauge(name, [Double(t / 1000) + Double(k * 100)], at: t)
            }
        }
        let batches = [batch(1_000, [memory, pnl, ws]), batch(2_000, [memory, pnl, ws]), batch(3_000, [ws, memory, pnl]),
                       batch(4_000, [pnl, ws]), batch(5_000, [memory, pnl, memory, ws]), batch(6_000, [memory, pnl, memory, ws, "extra"]),
                       batch(7_000, []), batch(8_000, [memory, pnl, ws])]
        var kept = RuleEvaluator(profile: .standard)
        for b in batches {
            var fresh = RuleEvaluator(profile: .standard)
            #expect(kept.evaluate(b) == fresh.evaluate(b))
        }
        #expect(kept.evaluate(batches[0]).first { $0.ruleID == "memory_usage_mb" }?.value == 1)
        #expect(kept.evaluate(batches[4]).first { $0.ruleID == "memory_usage_mb" }?.value == 205)   // the last of two

        // A counter's readings are kept wherever its series is in the batch.
        var moving = RuleEvaluator(profile: .standard), still = RuleEvaluator(profile: .standard)
        for k in 0..<6 {
            let t = Int64(10_000_000 + k * 60_000)
            let c = Self.counter("websocket_reconnects", Double(k * 3), at: t)
            let g = Self.gauge(memory, [1], at: t)
            #expect(moving.evaluate(k % 2 == 0 ? [c, g] : [g, c]) == still.evaluate([c, g]))
        }
        #expect(still.evaluate([Self.counter("websocket_reconnects", 30, at: 10_400_000)])
                    .first { $0.ruleID == "websocket_reconnects_per_hour" }?.value == 30)

        // Rules changed, same names: the new rule's metric is found.
        let rule = Rule(id: "extra_high", kind: .above(metric: "extra"), limit: 1, level: .warning, summary: "extra")
        var e = RuleEvaluator(profile: .standard)
        #expect(e.evaluate(batches[5]).first { $0.ruleID == "extra_high" } == nil)
        e.update(profile: ThresholdProfile(name: "x", rules: ThresholdProfile.standard.rules + [rule], enableEmergencyShutdown: false))
        #expect(e.evaluate(batches[5]).first { $0.ruleID == "extra_high" }?.value == 406)
    }

    /// The alert engine takes an observation's rule by `ruleIndex`, not by a search for its id: the index must be
    /// the rule's place in the evaluator's profile, also when two rules share an id (a hand-written profile).
    @Test func eachObservationNamesItsRulesPlace() throws {
        let low = Rule(id: "twice", kind: .above(metric: "extra"), limit: 1, level: .warning, summary: "low")
        let high = Rule(id: "twice", kind: .below(metric: "extra"), limit: 1_000, level: .critical, summary: "high")
        let profile = ThresholdProfile(name: "x", rules: ThresholdProfile.standard.rules + [low, high], enableEmergencyShutdown: false)
        var e = RuleEvaluator(profile: profile)
        let batch = [Self.gauge("memory_usage_mb", [510]), Self.gauge("extra", [406, 2]), Self.counter("websocket_reconnects", 3, at: 1_000_000)]
        let observations = e.evaluate(batch)
        #expect(observations.count >= 3)   // memory_usage_mb and the two "twice" rules at least
        for o in observations {
            #expect(profile.rules[o.ruleIndex].id == o.ruleID)
        }
        let twice = observations.filter { $0.ruleID == "twice" }
        #expect(twice.map(\.ruleIndex) == [profile.rules.count - 2, profile.rules.count - 1])
        #expect(twice.map(\.value) == [406, 2])   // the greatest for `above`, the least for `below`
    }

    @Test func profilesCarryTheReferenceValues() {
        #expect(ThresholdProfile.production.rule("memory_usage_mb")?.limit == 400)
        #expect(ThresholdProfile.production.rule("trading_success_rate_percent")?.limit == 90)
        #expect(ThresholdProfile.production.rule("daily_pnl_loss_limit")?.limit == -25)
        #expect(ThresholdProfile.production.rule("api_error_rate_percent")?.limit == 0.05)
        #expect(ThresholdProfile.production.enableEmergencyShutdown)
        #expect(ThresholdProfile.development.rule("memory_usage_mb")?.limit == 600)
        #expect(ThresholdProfile.development.rule("daily_pnl_loss_limit")?.limit == -100)
        #expect(!ThresholdProfile.development.enableEmergencyShutdown)
        let (custom, unknown) = ThresholdProfile.standard.overriding(["memory_usage_mb": 450, "nope": 1,
                                                                      "daily_pnl_loss_limit.hysteresis": 5])
        #expect(custom.rule("memory_usage_mb")?.limit == 450)
        #expect(custom.rule("daily_pnl_loss_limit")?.hysteresis == 5)
        #expect(unknown == ["nope"])
    }
}

@Suite struct AlertTrackerTests {
    static let memory = ThresholdProfile.standard.rule("memory_usage_mb")!   // > 500, WARNING, hysteresis 10

    @Test func firesOnceRepeatsAfterCooldownAndResolvesWithHysteresis() {
        var t = AlertTracker()
        let c = Cooldowns()
        var now: Int64 = 0
        #expect(t.observe(Self.memory, value: 490, nowMs: now, cooldowns: c) == nil)
        #expect(t.observe(Self.memory, value: 520, nowMs: now, cooldowns: c) == .fire)
        #expect(t.observe(Self.memory, value: 520, nowMs: now + 1, cooldowns: c) == nil)        // fired once
        now += 9 * 60_000
        #expect(t.observe(Self.memory, value: 530, nowMs: now, cooldowns: c) == nil)            // within 10 min
        now += 60_000
        #expect(t.observe(Self.memory, value: 530, nowMs: now, cooldowns: c) == .repeatIfDue)
        t.repeated(Self.memory, nowMs: now, cooldowns: c)
        #expect(t.observe(Self.memory, value: 530, nowMs: now + 60_000, cooldowns: c) == nil)   // a whole cooldown again
        #expect(t.observe(Self.memory, value: 495, nowMs: now + 1, cooldowns: c) == nil)        // inside hysteresis band
        #expect(t.observe(Self.memory, value: 489, nowMs: now + 2, cooldowns: c) == .resolve)
        #expect(t.state == .quiet)
        #expect(t.observe(Self.memory, value: 489, nowMs: now + 3, cooldowns: c) == nil)        // resolved once
    }

    /// Another replica notified lately: the store answers "not due", and the tracker asks again a tenth of the
    /// cooldown later (not at every batch, not a whole cooldown later).
    @Test func aRepeatTheStoreFoundNotDueIsAskedAgainATenthOfTheCooldownLater() {
        var t = AlertTracker()
        let c = Cooldowns()
        #expect(t.observe(Self.memory, value: 600, nowMs: 0, cooldowns: c) == .fire)
        #expect(t.observe(Self.memory, value: 600, nowMs: 600_000, cooldowns: c) == .repeatIfDue)
        #expect(t.observe(Self.memory, value: 600, nowMs: 600_000 + 59_999, cooldowns: c) == nil)
        #expect(t.observe(Self.memory, value: 600, nowMs: 600_000 + 60_000, cooldowns: c) == .repeatIfDue)
    }

    /// An alert the store says is firing (loaded after a restart or by another replica) checks its repeat at
    /// the first breach, and resolves at the first clear value.
    @Test func aTrackerForAnAlertAlreadyFiring() {
        var firing = AlertTracker(firing: true)
        #expect(firing.observe(Self.memory, value: 600, nowMs: 5, cooldowns: Cooldowns()) == .repeatIfDue)
        var clearing = AlertTracker(firing: true)
        #expect(clearing.observe(Self.memory, value: 100, nowMs: 5, cooldowns: Cooldowns()) == .resolve)
    }

    @Test(arguments: [(AlertLevel.info, Int64(5 * 60_000)), (.warning, 10 * 60_000), (.critical, 30 * 60_000)])
    func cooldownPerLevel(level: AlertLevel, cooldown: Int64) {
        var rule = Self.memory
        rule.level = level
        var t = AlertTracker()
        _ = t.observe(rule, value: 999, nowMs: 0, cooldowns: Cooldowns())
        #expect(t.observe(rule, value: 999, nowMs: cooldown - 1, cooldowns: Cooldowns()) == nil)
        #expect(t.observe(rule, value: 999, nowMs: cooldown, cooldowns: Cooldowns()) == .repeatIfDue)
    }
}

@Suite struct EmergencyRuleTests {
    @Test func shutdownRulesFollowTheEffectiveLimitsOnlyWhenEnabled() throws {
        #expect(ThresholdProfile.development.withEmergencyRules() == .development, "development must not stop bots")
        let custom = ThresholdProfile.production.overriding(["memory_usage_mb": 300, "daily_pnl_loss_limit": -10]).profile
        let p = custom.withEmergencyRules()
        func limit(_ id: String) -> Double? { p.rule(ThresholdProfile.emergencyPrefix + id)?.limit }
        #expect(limit("memory_usage_mb") == 600)
        #expect(limit("daily_pnl_loss_limit") == -20)
        #expect(limit("api_error_rate_percent") == 0.5)
        #expect(p.rules.filter(\.emergencyStop).allSatisfy { $0.level == .critical })
        #expect(p.rules.filter(\.emergencyStop).count == 5)
    }

    @Test func aFailedComponentStateIsObserved() throws {
        let p = ThresholdProfile.production.withEmergencyRules()
        var evaluator = RuleEvaluator(profile: p)
        let failed = Series(name: "balance_manager_health", kind: .state, timestamps: [1], values: [], states: ["failed"])
        let healthy = Series(name: "balance_manager_health", kind: .state, timestamps: [2], values: [], states: ["healthy"])
        let id = ThresholdProfile.emergencyPrefix + "balance_manager_failed"
        let rule = try #require(p.rule(id))
        let first = try #require(evaluator.evaluate([failed]).first { $0.ruleID == id })
        #expect(AlertTracker.breached(rule, value: first.value, firing: false))
        let second = try #require(evaluator.evaluate([healthy]).first { $0.ruleID == id })
        #expect(!AlertTracker.breached(rule, value: second.value, firing: true))
    }
}
