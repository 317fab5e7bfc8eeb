import FleetwatchProtocol

/// Refuses single samples the hub will not store, keeping the rest of the batch.
///
/// Refused: NaN and infinite values (PostgreSQL could hold them, but no threshold or average can use them),
/// and timestamps outside [now − maxAge, now + maxFuture]. A refused sample is counted, logged and dropped;
/// the batch is still acknowledged, so one bad value never blocks a bot's stream.
public struct BatchValidator: Sendable {
    /// How old a sample may be, in milliseconds (default 7 days: a spool can hold a long outage).
    public var maxAgeMs: Int64
    /// How far ahead of the hub's clock a sample may be, in milliseconds (default 5 minutes).
    public var maxFutureMs: Int64

    public init(maxAgeMs: Int64 = 7 * 86_400_000, maxFutureMs: Int64 = 300_000) {
        self.maxAgeMs = maxAgeMs
        self.maxFutureMs = maxFutureMs
    }

    public func validate(_ frame: BatchFrame, payload: BatchPayload, nowMs: Int64) -> ValidatedBatch {
        validate(epoch: frame.bootEpoch, sequence: frame.sequence, payload: payload, nowMs: nowMs)
    }

    public func validate(epoch: UInt64, sequence: UInt64, payload: BatchPayload, nowMs: Int64) -> ValidatedBatch {
        let low = nowMs - maxAgeMs, high = nowMs + maxFutureMs
        // Series are read in place, by index: passing a series on would retain each of its arrays and its name, for
        // every series of every batch.
        let all = payload.series
        /// Whether sample `i` of series `s` is kept.
        func accepts(_ s: Int, _ i: Int) -> Bool {
            let t = all[s].timestamps[i]
            return t >= low && t <= high && (all[s].kind == .state || all[s].values[i].isFinite)
        }
        /// Whether every sample of series `s` is kept; if so, `first` is lowered to its earliest timestamp.
        func isClean(_ s: Int, first: inout Int64) -> Bool {
            var earliest = first
            for i in 0..<all[s].timestamps.count {
                guard accepts(s, i) else { return false }
                earliest = min(earliest, all[s].timestamps[i])
            }
            first = earliest
            return true
        }
        var first = Int64.max
        // The series before the first one with a sample to refuse are kept as they are: in the normal batch, all of
        // them, with no copy.
        var firstDirty = 0
        while firstDirty < all.count, isClean(firstDirty, first: &first) { firstDirty += 1 }
        if firstDirty == all.count {
            return ValidatedBatch(epoch: epoch, sequence: sequence, sentSamples: payload.sampleCount, series: all,
                                  refusedSamples: 0, firstTimestampMs: first == .max ? nil : first)
        }
        var kept = Array(all[..<firstDirty])
        kept.reserveCapacity(all.count)
        var refused = 0
        for s in firstDirty..<all.count {
            if s > firstDirty, isClean(s, first: &first) {
                kept.append(all[s])
                continue
            }
            var out = Series(name: all[s].name, kind: all[s].kind, timestamps: [])
            for i in 0..<all[s].timestamps.count {
                guard accepts(s, i) else { refused += 1; continue }
                out.timestamps.append(all[s].timestamps[i])
                if all[s].kind == .state { out.states.append(all[s].states[i]) } else { out.values.append(all[s].values[i]) }
                first = min(first, all[s].timestamps[i])
            }
            if out.count > 0 { kept.append(out) }
        }
        return ValidatedBatch(epoch: epoch, sequence: sequence, sentSamples: payload.sampleCount,
                              series: kept, refusedSamples: refused, firstTimestampMs: first == .max ? nil : first)
    }
}
