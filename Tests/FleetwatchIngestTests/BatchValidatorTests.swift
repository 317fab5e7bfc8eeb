import FleetwatchIngest
import FleetwatchProtocol
import FleetwatchTestSupport
import Testing

@Suite struct BatchValidatorTests {
    let validator = BatchValidator(maxAgeMs: 10_000, maxFutureMs: 1_000)
    let now: Int64 = 1_000_000

    /// Random batches where some samples are NaN, infinite, too old or too far ahead.
    func randomBatch(_ rng: inout SplitMix, badOneIn: UInt64) -> BatchPayload {
        let kinds: [MetricKind] = [.counter, .gauge, .duration, .state]
        let series = (0..<Int(rng.next() % 6)).map { n -> Series in
            let kind = kinds[Int(rng.next() % 4)]
            var s = Series(name: "m\(n)", kind: kind, timestamps: [])
            for _ in 0..<Int(rng.next() % 5) {
                var t = now - Int64(rng.next() % 5_000)
                var v = Double(rng.next() % 100)
                if rng.next() % badOneIn == 0 {
                    switch rng.next() % 4 {
                    case 0: t = now - 10_001
                    case 1: t = now + 1_001
                    case 2: v = .nan
                    default: v = rng.next() % 2 == 0 ? .infinity : -.infinity
                    }
                }
                s.timestamps.append(t)
                if kind == .state { s.states.append("s\(Int(v.isFinite ? v : 0))") } else { s.values.append(v) }
            }
            return s
        }
        return BatchPayload(series: series)
    }

    /// The validator's answer worked out the long way: every sample checked, empty series left out.
    func longWay(_ payload: BatchPayload) -> (series: [Series], refused: Int, first: Int64?) {
        var kept: [Series] = [], refused = 0
        for s in payload.series {
            var out = Series(name: s.name, kind: s.kind, timestamps: [])
            for i in s.timestamps.indices {
                let t = s.timestamps[i]
                let ok = t >= now - 10_000 && t <= now + 1_000 && (s.kind == .state || s.values[i].isFinite)
                if !ok { refused += 1; continue }
                out.timestamps.append(t)
                if s.kind == .state { out.states.append(s.states[i]) } else { out.values.append(s.values[i]) }
            }
            if out.count > 0 { kept.append(out) }
        }
        return (kept, refused, kept.flatMap(\.timestamps).min())
    }

    @Test(arguments: [1_000_000 as UInt64, 50, 3])
    func keepsExactlyTheAcceptableSamples(badOneIn: UInt64) {
        var rng = SplitMix(seed: badOneIn)
        for _ in 0..<2_000 {
            let payload = randomBatch(&rng, badOneIn: badOneIn)
            let got = validator.validate(epoch: 1, sequence: 2, payload: payload, nowMs: now)
            let want = longWay(payload)
            #expect(got.series.filter { $0.count > 0 } == want.series)
            #expect(got.refusedSamples == want.refused)
            #expect(got.storedSamples == payload.sampleCount - want.refused)
            #expect(got.firstTimestampMs == want.first)
        }
    }

    @Test func aCleanBatchKeepsItsSeriesAsSent() {
        let payload = BatchPayload(series: [
            Series(name: "a", kind: .gauge, timestamps: [now, now - 5], values: [1, 2]),
            Series(name: "b", kind: .state, timestamps: [now - 9], states: ["ok"]),
        ])
        let got = validator.validate(epoch: 1, sequence: 1, payload: payload, nowMs: now)
        #expect(got.series == payload.series && got.refusedSamples == 0 && got.firstTimestampMs == now - 9)
    }

    @Test func aBadSampleInTheLastSeriesKeepsTheRest() {
        let payload = BatchPayload(series: [
            Series(name: "a", kind: .gauge, timestamps: [now], values: [1]),
            Series(name: "b", kind: .counter, timestamps: [now - 1, now - 2], values: [.nan, 4]),
        ])
        let got = validator.validate(epoch: 1, sequence: 1, payload: payload, nowMs: now)
        #expect(got.series == [payload.series[0], Series(name: "b", kind: .counter, timestamps: [now - 2], values: [4])])
        #expect(got.refusedSamples == 1 && got.firstTimestampMs == now - 2)
    }
}
