@testable import FleetwatchAlerting
import FleetwatchTestSupport
import Testing

@Suite struct CounterWindowTests {
    /// The rise over a window computed the long way: every step's rise, a drop counting as a restart.
    static func naiveIncrease(_ readings: [(ms: Int64, value: Double)], windowMs: Int64, nowMs: Int64) -> Double? {
        let cutoff = nowMs - windowMs
        let start = readings.lastIndex { $0.ms <= cutoff } ?? 0
        guard start < readings.count - 1 else { return nil }
        var amount = 0.0
        for i in (start + 1)..<readings.count {
            let d = readings[i].value - readings[i - 1].value
            amount += d >= 0 ? d : readings[i].value
        }
        return amount
    }

    @Test func agreesWithTheLongWayOnCountersWithRestarts() throws {
        var rng = SplitMix(seed: 7)
        for _ in 0..<50 {
            var w = CounterWindow(keepMs: 600_000)
            var kept: [(ms: Int64, value: Double)] = []
            var ms: Int64 = 1_000_000, value = 0.0
            for _ in 0..<200 {
                ms += Int64(rng.next() % 5_000) + 1
                value = rng.next() % 20 == 0 ? Double(rng.next() % 10) : value + Double(rng.next() % 50)
                w.add(ms: ms, value: value)
                kept.append((ms, value))
                kept.removeFirst(max(0, (kept.firstIndex { $0.ms >= ms - 600_000 } ?? 0) - 1))
                for window: Int64 in [60_000, 300_000, 600_000] {
                    let expected = Self.naiveIncrease(kept, windowMs: window, nowMs: ms)
                    let got = w.increase(windowMs: window, nowMs: ms)?.amount
                    #expect(got == expected, "window \(window) at \(ms)")
                }
            }
            #expect(w.readings.map(\.ms) == kept.map(\.ms))
        }
    }

    /// A bot that sends its counter again and again at the same millisecond (a hostile or broken one) keeps
    /// two readings, not one per batch, and every rise and restart it sent is still counted.
    @Test func readingsAtTheSameMillisecondReplaceTheLastAndKeepItsRise() throws {
        var w = CounterWindow(keepMs: 3_600_000)
        w.add(ms: 1_000, value: 0)
        for v in 1...100_000 { w.add(ms: 2_000, value: Double(v)) }
        #expect(w.readings.count == 2)
        #expect(w.increase(windowMs: 60_000, nowMs: 2_000)?.amount == 100_000)
        w.add(ms: 2_000, value: 4)   // a restart at the same millisecond counts its new value
        #expect(w.readings.count == 2)
        #expect(w.increase(windowMs: 60_000, nowMs: 2_000)?.amount == 100_004)
    }

    /// Distinct timestamps a millisecond apart, within the window: the window keeps at most `maxReadings` and the
    /// rise over the whole window stays exact.
    @Test func aFloodOfReadingsIsThinnedAndTheRiseStaysExact() throws {
        var w = CounterWindow(keepMs: 3_600_000)
        var expected = 0.0, last = 0.0
        var all: [(ms: Int64, value: Double)] = []
        for i in 0...50_000 {
            let v = i % 10_000 == 9_999 ? 1.0 : last + 2   // a restart every 10,000 readings
            if i > 0 { expected += v >= last ? v - last : v }
            w.add(ms: Int64(1_000 + i), value: v)
            all.append((Int64(1_000 + i), v))
            last = v
        }
        #expect(w.readings.count <= CounterWindow.maxReadings)
        #expect(w.increase(windowMs: 3_600_000, nowMs: 51_000)?.amount == expected)
        // The newest readings are all kept: the last second's rise is exact too.
        let lastSecond = try #require(w.increase(windowMs: 1_000, nowMs: 51_000))
        #expect(lastSecond.amount == Self.naiveIncrease(all, windowMs: 1_000, nowMs: 51_000))
        #expect(lastSecond.spanMs == 1_000)
    }
}
