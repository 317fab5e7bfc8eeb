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
        func accepts(_ s: Series, _ i: Int) -> Bool {
            let t = s.timestamps[i]
            return t >= low && t <= high && (s.kind == .state || s.values[i].isFinite)
        }
        func isClean(_ s: Series) -> Bool { s.timestamps.indices.allSatisfy { accepts(s, $0) } }
        var first = Int64.max
        // The series before the first one with a sample to refuse are kept as they are: in the normal batch,
        // all of them, with no copy. They are read in place, by index (passing a series on would retain each of
        // its arrays and its name, for every series of every batch).
        let all = payload.series
        var firstDirty = all.startIndex
        clean: while firstDirty < all.endIndex {
            let numeric = all[firstDirty].kind != .state
            for i in 0..<all[firstDirty].timestamps.count {
                let t = all[firstDirty].timestamps[i]
                guard t >= low, t <= high, !numeric || all[firstDirty].values[i].isFinite else { break clean }
                first = min(first, t)
            }
            firstDirty += 1
        }
        if firstDirty == payload.series.endIndex {
            return ValidatedBatch(epoch: epoch, sequence: sequence, sentSamples: payload.sampleCount, series: payload.series,
                                  refusedSamples: 0, firstTimestampMs: first == .max ? nil : first)
        }
        var kept = Array(payload.series[..<firstDirty])
        kept.reserveCapacity(payload.series.count)
        var refused = 0
        for (index, s) in payload.series.enumerated().dropFirst(firstDirty) {
            if index > firstDirty, isClean(s) {
                if let m = s.timestamps.min() { first = min(first, m) }
                kept.append(s)
                continue
            }
            var out = Series(name: s.name, kind: s.kind, timestamps: [])
            for i in s.timestamps.indices {
                guard accepts(s, i) else { refused += 1; continue }
                out.timestamps.append(s.timestamps[i])
                if s.kind == .state { out.states.append(s.states[i]) } else { out.values.append(s.values[i]) }
                first = min(first, s.timestamps[i])
            }
            if out.count > 0 { kept.append(out) }
        }
        return ValidatedBatch(epoch: epoch, sequence: sequence, sentSamples: payload.sampleCount,
                              series: kept, refusedSamples: refused, firstTimestampMs: first == .max ? nil : first)
    }
}
