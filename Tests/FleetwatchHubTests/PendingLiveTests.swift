@testable import FleetwatchHub
import FleetwatchProtocol
import Foundation
import Testing

/// The live publisher keeps a bot's batches until its flush and works their newest values out there: the answer
/// must be what merging each batch's values into the last, in arrival order, gave (what it did per batch before).
@Suite struct PendingLiveTests {
    /// Each batch merged into the previous ones, the newer value winning: the publisher's answer before it kept batches.
    static func mergedOneByOne(_ batches: [[Series]]) -> LiveUpdate? {
        var out: LiveUpdate?
        for b in batches {
            guard let u = LivePublisher.update(bot: "b", series: b) else { continue }
            guard var o = out else { out = u; continue }
            o.numbers.merge(u.numbers) { _, new in new }
            o.states.merge(u.states) { _, new in new }
            o.at = max(o.at, u.at)
            out = o
        }
        return out
    }

    /// A small deterministic generator, so a failure can be replayed.
    struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// Batches that repeat their names (the usual case, skipped without lookups), change their order, lose or
    /// repeat a metric, change a metric's kind, or hold series without samples; fewer and more than the batches
    /// folded early (`PendingLive.maxBatches`).
    @Test(arguments: 0..<100)
    func theNewestValuesAreThoseOfMergingEachBatchInTurn(seed: UInt64) {
        var rng = SplitMix(state: seed)
        let names = ["a", "b", "c", "latency", "status", "a_rather_long_metric_name_for_the_heap"]
        let same = (0..<names.count).map { _ in Bool.random(using: &rng) }
        var batches: [[Series]] = []
        var t: Int64 = 1_700_000_000_000
        for _ in 0..<Int.random(in: 1...20, using: &rng) {
            let picked = Bool.random(using: &rng) && !batches.isEmpty
                ? batches.last!.map(\.name)   // the usual case: the names of the batch before
                : names.shuffled(using: &rng).filter { _ in Int.random(in: 0..<6, using: &rng) > 0 } + (Bool.random(using: &rng) ? ["a"] : [])
            t += Int64.random(in: -500...1_000, using: &rng)   // out of order now and then
            batches.append(picked.map { name in
                let n = Int.random(in: 0..<6, using: &rng) == 0 ? 0 : Int.random(in: 1...3, using: &rng)
                let ts = (0..<n).map { t + Int64($0) }
                let kindIndex = (names.firstIndex(of: name)! + (same[names.firstIndex(of: name)!] ? 0 : Int.random(in: 0...1, using: &rng))) % 4
                switch kindIndex {
                case 0: return Series(name: name, kind: .state, timestamps: ts, states: ts.map { "s\($0 % 7)" })
                case 1: return Series(name: name, kind: .duration, timestamps: ts, values: ts.map { Double($0 % 100) })
                case 2: return Series(name: name, kind: .counter, timestamps: ts, values: ts.map { Double($0 % 1000) })
                default: return Series(name: name, kind: .gauge, timestamps: ts, values: ts.map { -Double($0 % 50) })
                }
            })
        }
        var pending = PendingLive()
        for b in batches where !b.isEmpty { pending.add(b, bot: "b") }
        #expect(pending.update(bot: "b") == Self.mergedOneByOne(batches))
    }

    /// A bot sending many batches between two flushes holds a bounded number of them.
    @Test func aBusyBotHoldsAFewBatchesNotAllOfThem() {
        var pending = PendingLive()
        var batches: [[Series]] = []
        for k in 0..<1_000 {
            let b = [Series(name: "x", kind: .gauge, timestamps: [Int64(k)], values: [Double(k)]),
                     Series(name: "y", kind: .state, timestamps: [Int64(k)], states: ["s\(k)"])]
            batches.append(b)
            pending.add(b, bot: "b")
            #expect(pending.batches.count < PendingLive.maxBatches)
        }
        let u = pending.update(bot: "b")
        #expect(u == Self.mergedOneByOne(batches))
        #expect(u?.numbers == ["x": 999] && u?.states == ["y": "s999"])
    }

    /// The usual bot: the same names every batch, a sample in each. Each batch replaces the one before (it would add
    /// nothing but its time), so a flush works out one batch's values; a batch missing a sample is kept.
    @Test func aBatchWithTheNamesOfTheOneBeforeAndEverySampleReplacesIt() {
        var pending = PendingLive()
        func batch(_ k: Int64, y: Bool = true) -> [Series] {
            [Series(name: "x", kind: .gauge, timestamps: [k], values: [Double(k)]),
             Series(name: "y", kind: .counter, timestamps: y ? [k] : [], values: y ? [Double(k)] : [])]
        }
        var batches: [[Series]] = []
        for k in Int64(1)...5 { batches.append(batch(k)); pending.add(batches.last!, bot: "b") }
        #expect(pending.batches.count == 1)
        batches.append(batch(9, y: false)); pending.add(batches.last!, bot: "b")
        #expect(pending.batches.count == 2)
        // Older times than the batch before it, which it replaces: that batch's time stays the newest.
        batches.append(batch(7)); pending.add(batches.last!, bot: "b")
        #expect(pending.batches.count == 2)
        batches.append(batch(8)); pending.add(batches.last!, bot: "b")
        #expect(pending.batches.count == 2)
        let u = pending.update(bot: "b")
        #expect(u == Self.mergedOneByOne(batches))
        #expect(u?.numbers == ["x": 8, "y": 8] && u?.at == Date(timeIntervalSince1970: 0.009))
        // Batches with other names, older times, until the pending ones are folded: the replaced batch's time
        // (9 ms, the newest of all) is still there after the fold.
        for k in Int64(1)...Int64(PendingLive.maxBatches) {
            let other = [Series(name: "z\(k % 2)", kind: .gauge, timestamps: [k], values: [Double(k)])]
            batches.append(other); pending.add(other, bot: "b")
        }
        #expect(pending.folded != nil)
        let folded = pending.update(bot: "b")
        #expect(folded == Self.mergedOneByOne(batches))
        #expect(folded?.at == Date(timeIntervalSince1970: 0.009))
    }
}
