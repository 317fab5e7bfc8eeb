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
    /// The rule's place in the evaluator's profile (`profile.rules`): the rule itself, without a search by id.
    public internal(set) var ruleIndex: Int
}

/// Turns a bot's batches into observations, one per rule that has data. Keeps the counter history the
/// rate and ratio rules need; one evaluator per bot, fed in arrival order. Pure: no clock, no I/O.
public struct RuleEvaluator: Sendable {
    public private(set) var profile: ThresholdProfile
    private var counters: [String: CounterWindow] = [:]
    /// Counters the rate and ratio rules read, and every metric any rule reads (computed once per profile).
    private var counterNames: Set<String> = []
    private var ruleMetrics: Set<String> = []
    /// The last batch's names and where the rules' series were in it (nil: rules changed since).
    private var layout: Layout?

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
        layout = nil
    }

    /// Reads `series` (one batch) and returns an observation for each rule with data in it.
    ///
    /// The series are read in place, never copied: a batch's arrays are shared with the threads that store it
    /// and publish its live values, and copying a series costs an atomic retain of each of its arrays.
    public mutating func evaluate(_ series: [Series]) -> [Observation] {
        // A bot sends the same names in the same order batch after batch: where the rules' metrics are is worked
        // out when the names change, not looked up by name in every batch.
        if layout.map({ series.hasNames($0.names) }) != true { layout = Layout(series, rules: profile.rules, metrics: ruleMetrics, counters: counterNames) }
        let known = layout!
        let rules = profile.rules
        for i in known.counterCandidates where series[i].kind == .counter {
            let name = series[i].name
            // One lookup: the window is made (its length worked out) only for a counter seen the first time.
            counters[name, default: CounterWindow(keepMs: Self.longestWindowMs(for: name, rules: rules))].add(series[i])
        }
        var out: [Observation] = []
        out.reserveCapacity(profile.rules.count)   // one allocation, not one per doubling
        for (r, rule) in profile.rules.enumerated() {
            if let o = observe(rule, at: r, series, known.slots[r]) { out.append(o) }
        }
        return out
    }

    /// Where a batch's series are for the rules, for batches with the same names in the same order.
    struct Layout {
        /// Each rule's series: its metric (or the ratio's numerator) and the ratio's denominator, the last series
        /// of the name when a batch repeats one (as a lookup by name gave).
        struct Slot {
            var first: Int?
            var second: Int?
        }

        var names: [String]
        var slots: [Slot]
        /// Series whose name a rate or ratio rule reads: their counter readings are kept.
        var counterCandidates: [Int]

        init(_ series: [Series], rules: [Rule], metrics: Set<String>, counters: Set<String>) {
            names = series.map(\.name)
            var byName: [String: Int] = [:]
            counterCandidates = []
            for i in series.indices where metrics.contains(series[i].name) {
                byName[series[i].name] = i
                if counters.contains(series[i].name) { counterCandidates.append(i) }
            }
            slots = rules.map { rule in
                switch rule.kind {
                case .above(let m), .below(let m), .stateNot(let m, _), .stateIn(let m, _): Slot(first: byName[m])
                case .rateAbove(let c, _, _), .rateBelow(let c, _, _): Slot(first: byName[c])
                case .ratioAbove(let n, let d, _): Slot(first: byName[n], second: byName[d])
                }
            }
        }
    }

    private func observe(_ rule: Rule, at r: Int, _ series: [Series], _ slot: Layout.Slot) -> Observation? {
        switch rule.kind {
        case .above:
            guard let i = slot.first else { return nil }
            return Self.extreme(rule.id, r, series[i], greatest: true)
        case .below:
            guard let i = slot.first else { return nil }
            return Self.extreme(rule.id, r, series[i], greatest: false)
        case .stateNot(_, let healthy):
            guard let i = slot.first, let last = series[i].states.last, let t = series[i].timestamps.last else { return nil }
            return Observation(ruleID: rule.id, value: healthy.contains(last) ? 0 : 1, state: last, atMs: t, ruleIndex: r)
        case .stateIn(_, let values):
            guard let i = slot.first, let last = series[i].states.last, let t = series[i].timestamps.last else { return nil }
            return Observation(ruleID: rule.id, value: values.contains(last) ? 1 : 0, state: last, atMs: t, ruleIndex: r)
        case .rateAbove(let c, let window, let per):
            guard let i = slot.first, let t = series[i].timestamps.max(),
                  let inc = counters[c]?.increase(windowMs: Int64(window) * 1000, nowMs: t) else { return nil }
            return Observation(ruleID: rule.id, value: inc.amount * Double(per) / Double(window), atMs: t, ruleIndex: r)
        case .rateBelow(let c, let window, let per):
            guard let i = slot.first, let t = series[i].timestamps.max(),
                  let inc = counters[c]?.increase(windowMs: Int64(window) * 1000, nowMs: t),
                  inc.spanMs >= Int64(window) * 900 else { return nil }   // judge a full window only
            return Observation(ruleID: rule.id, value: inc.amount * Double(per) * 1000 / Double(inc.spanMs), atMs: t, ruleIndex: r)
        case .ratioAbove(let n, let d, let window):
            guard let t = slot.second.flatMap({ series[$0].timestamps.max() }) ?? slot.first.flatMap({ series[$0].timestamps.max() }),
                  let den = counters[d]?.increase(windowMs: Int64(window) * 1000, nowMs: t), den.amount > 0 else { return nil }
            let num = counters[n]?.increase(windowMs: Int64(window) * 1000, nowMs: t)?.amount ?? 0
            return Observation(ruleID: rule.id, value: num / den.amount * 100, atMs: t, ruleIndex: r)
        }
    }

    /// The observation of the greatest (or least) value of `s`, at the first sample holding it.
    private static func extreme(_ id: String, _ r: Int, _ s: Series, greatest: Bool) -> Observation? {
        guard !s.values.isEmpty else { return nil }
        var best = 0
        for j in 1..<s.values.count where greatest ? s.values[best] < s.values[j] : s.values[j] < s.values[best] { best = j }
        return Observation(ruleID: id, value: s.values[best], atMs: s.timestamps[best], ruleIndex: r)
    }

    private static func longestWindowMs(for counter: String, rules: [Rule]) -> Int64 {
        var longest = 60
        for r in rules {
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
