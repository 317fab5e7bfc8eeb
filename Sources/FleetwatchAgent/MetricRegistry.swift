import FleetwatchProtocol
import Synchronization

/// Every metric handle of one agent, by name. Creating or looking up a handle takes a lock;
/// recording on a handle does not touch the registry.
public final class MetricRegistry: Sendable {
    struct Handles {
        var counters: [String: CounterHandle] = [:]
        var gauges: [String: GaugeHandle] = [:]
        var durations: [String: DurationHandle] = [:]
        var states: [String: StateHandle] = [:]
    }
    let handles = Mutex(Handles())
    let durationCapacity: Int
    let stateRepeatMs: Int64

    init(durationCapacity: Int, stateRepeatMs: Int64) {
        self.durationCapacity = durationCapacity
        self.stateRepeatMs = stateRepeatMs
    }

    /// A metric name made valid for the wire: other characters become `_`, cut to 128 bytes.
    public static func sanitize(_ name: String) -> String {
        var out = String.UnicodeScalarView()
        for scalar in name.unicodeScalars.prefix(WireProtocol.maxMetricNameBytes) {
            out.append(WireProtocol.isValidName(String(scalar), maxBytes: 1) ? scalar : "_")
        }
        return out.isEmpty ? "_" : String(out)
    }

    func counter(_ name: String) -> CounterHandle {
        handle(name, \.counters) { CounterHandle(name: $0) }
    }

    func gauge(_ name: String) -> GaugeHandle {
        handle(name, \.gauges) { GaugeHandle(name: $0) }
    }

    func duration(_ name: String) -> DurationHandle {
        handle(name, \.durations) { [durationCapacity] in DurationHandle(name: $0, capacity: durationCapacity) }
    }

    func state(_ name: String) -> StateHandle {
        handle(name, \.states) { StateHandle(name: $0) }
    }

    /// The handle named `name` in `table`, created with `make` on first use.
    private func handle<H: Sendable>(_ name: String, _ table: WritableKeyPath<Handles, [String: H]>,
                           make: (String) -> H) -> H {
        let name = Self.sanitize(name)
        return handles.withLock { h in
            if let existing = h[keyPath: table][name] { return existing }
            let created = make(name)
            h[keyPath: table][name] = created
            return created
        }
    }

    /// Reads every handle once at `nowMs`: counters and set gauges as one sample each, durations as
    /// the observations since the last snapshot, states when changed or due for repetition.
    /// Also returns how many values were refused (non-finite gauges, overflowing duration rings).
    func snapshot(nowMs: Int64) -> (series: [Series], refused: Int64) {
        let (counters, gauges, durations, states) = handles.withLock { h in
            (Array(h.counters.values), Array(h.gauges.values), Array(h.durations.values), Array(h.states.values))
        }
        var series: [Series] = []
        series.reserveCapacity(counters.count + gauges.count + durations.count + states.count)
        var refused: Int64 = 0
        for c in counters {
            series.append(Series(name: c.name, kind: .counter, timestamps: [nowMs], values: [Double(c.value)]))
        }
        for g in gauges {
            refused += g.invalid.exchange(0, ordering: .relaxed)
            if let v = g.value {
                series.append(Series(name: g.name, kind: .gauge, timestamps: [nowMs], values: [v]))
            }
        }
        for d in durations {
            let (ts, vs, dropped) = d.drain()
            refused += dropped
            if !ts.isEmpty { series.append(Series(name: d.name, kind: .duration, timestamps: ts, values: vs)) }
        }
        for s in states {
            if let v = s.take(nowMs: nowMs, repeatMs: stateRepeatMs) {
                series.append(Series(name: s.name, kind: .state, timestamps: [nowMs], states: [v]))
            }
        }
        return (series, refused)
    }
}
