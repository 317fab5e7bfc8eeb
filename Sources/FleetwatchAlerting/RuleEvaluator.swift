import FleetwatchProtocol

/// What one rule saw in one batch.
public struct Observation: Sendable, Equatable {
    public var ruleID: String
    /// The measured value (for states: 0 healthy, 1 not).
    public var value: Double
    /// The state string, for state rules.
    public var state: String?
    /// When the observation was made (the newest sample it used), unix ms.
    public var atMs: Int64
}

/// Turns a bot's batches into observations, one per rule that has data. Keeps the counter history the
/// rate and ratio rules need; one evaluator per bot, fed in arrival order. Pure: no clock, no I/O.
public struct RuleEvaluator: Sendable {
    public private(set) var profile: ThresholdProfile
    private var counters: [String: CounterWindow] = [:]
    /// Counters the rate and ratio rules read, and every metric any rule reads (computed once per profile).
    private var counterNames: Set<String> = []
    private var ruleMetrics: Set<String> = []

    public init(profile: ThresholdProfile) {
        self.profile = profile
        index()
    }

    /// Switches to new thresholds (counter history is kept).
    public mutating func update(profile: ThresholdProfile) {
        self.profile = profile
        index()
    }

    private mutating func index() {
        var counters = Set<String>(), metrics = Set<String>()
        for r in profile.rules {
            switch r.kind {
            case .rateAbove(let c, _, _), .rateBelow(let c, _, _): counters.insert(c)
            case .ratioAbove(let n, let d, _): counters.insert(n); counters.insert(d)
            case .above(let m), .below(let m), .stateNot(let m, _), .stateIn(let m, _): metrics.insert(m)
            }
        }
        counterNames = counters
        ruleMetrics = metrics.union(counters)
    }

    /// Reads `series` (one batch) and returns an observation for each rule with data in it.
    public mutating func evaluate(_ series: [Series]) -> [Observation] {
        var byName: [String: Series] = [:]
        for s in series where ruleMetrics.contains(s.name) { byName[s.name] = s }
        for s in series where s.kind == .counter && counterNames.contains(s.name) {
            var w = counters[s.name] ?? CounterWindow(keepMs: longestWindowMs(for: s.name))
            for (t, v) in zip(s.timestamps, s.values) { w.add(ms: t, value: v) }
            counters[s.name] = w
        }
        var out: [Observation] = []
        for rule in profile.rules {
            if let o = observe(rule, byName) { out.append(o) }
        }
        return out
    }

    private func observe(_ rule: Rule, _ byName: [String: Series]) -> Observation? {
        switch rule.kind {
        case .above(let m):
            guard let s = byName[m], let i = s.values.indices.max(by: { s.values[$0] < s.values[$1] }) else { return nil }
            return Observation(ruleID: rule.id, value: s.values[i], atMs: s.timestamps[i])
        case .below(let m):
            guard let s = byName[m], let i = s.values.indices.min(by: { s.values[$0] < s.values[$1] }) else { return nil }
            return Observation(ruleID: rule.id, value: s.values[i], atMs: s.timestamps[i])
        case .stateNot(let m, let healthy):
            guard let s = byName[m], let last = s.states.last, let t = s.timestamps.last else { return nil }
            return Observation(ruleID: rule.id, value: healthy.contains(last) ? 0 : 1, state: last, atMs: t)
        case .stateIn(let m, let values):
            guard let s = byName[m], let last = s.states.last, let t = s.timestamps.last else { return nil }
            return Observation(ruleID: rule.id, value: values.contains(last) ? 1 : 0, state: last, atMs: t)
        case .rateAbove(let c, let window, let per):
            guard let t = byName[c]?.timestamps.max(),
                  let inc = counters[c]?.increase(windowMs: Int64(window) * 1000, nowMs: t) else { return nil }
            return Observation(ruleID: rule.id, value: inc.amount * Double(per) / Double(window), atMs: t)
        case .rateBelow(let c, let window, let per):
            guard let t = byName[c]?.timestamps.max(),
                  let inc = counters[c]?.increase(windowMs: Int64(window) * 1000, nowMs: t),
                  inc.spanMs >= Int64(window) * 900 else { return nil }   // judge a full window only
            return Observation(ruleID: rule.id, value: inc.amount * Double(per) * 1000 / Double(inc.spanMs), atMs: t)
        case .ratioAbove(let n, let d, let window):
            guard let t = byName[d]?.timestamps.max() ?? byName[n]?.timestamps.max(),
                  let den = counters[d]?.increase(windowMs: Int64(window) * 1000, nowMs: t), den.amount > 0 else { return nil }
            let num = counters[n]?.increase(windowMs: Int64(window) * 1000, nowMs: t)?.amount ?? 0
            return Observation(ruleID: rule.id, value: num / den.amount * 100, atMs: t)
        }
    }

    private func longestWindowMs(for counter: String) -> Int64 {
        var longest = 60
        for r in profile.rules {
            switch r.kind {
            case .rateAbove(let c, let w, _) where c == counter, .rateBelow(let c, let w, _) where c == counter:
                longest = max(longest, w)
            case .ratioAbove(let n, let d, let w) where n == counter || d == counter:
                longest = max(longest, w)
            default: break
            }
        }
        return Int64(longest) * 1000
    }
}
