import FleetwatchProtocol
import Testing

@Suite struct SeriesNamesTests {
    private func batch(_ names: [String], kinds: [MetricKind]? = nil) -> [Series] {
        names.indices.map { i in Series(name: names[i], kind: kinds?[i] ?? .gauge, timestamps: [1], values: [1]) }
    }

    @Test func namesMatchOnlyInTheSameOrderAndCount() {
        let series = batch(["a", "b", "c"])
        #expect(series.hasNames(["a", "b", "c"]))
        #expect(!series.hasNames(["a", "c", "b"]))
        #expect(!series.hasNames(["a", "b"]))
        #expect(!series.hasNames(["a", "b", "c", "d"]))
        #expect(!series.hasNames(["a", "b", "x"]))
        #expect(batch([]).hasNames([]))
        #expect(!batch([]).hasNames(["a"]))
    }

    @Test func namesAndKindsMatchOnlyWhenBothDo() {
        let series = batch(["a", "b"], kinds: [.counter, .gauge])
        #expect(series.hasSameNamesAndKinds(as: batch(["a", "b"], kinds: [.counter, .gauge])))
        #expect(!series.hasSameNamesAndKinds(as: batch(["a", "b"], kinds: [.counter, .counter])))
        #expect(!series.hasSameNamesAndKinds(as: batch(["b", "a"], kinds: [.gauge, .counter])))
        #expect(!series.hasSameNamesAndKinds(as: batch(["a"], kinds: [.counter])))
    }
}
