import FleetwatchProtocol
import FleetwatchTestSupport
import NIOCore
import Testing

/// A series' samples may be parts of buffers its batch shares: they read as arrays of their own, from index 0, and
/// changing one never changes another.
@Suite struct SamplesTests {
    @Test func aPartReadsFromZeroAndChangesOnlyItself() {
        let buffer: [Double] = [1, 2, 3, 4, 5]
        let a = Samples(shared: buffer, range: 0..<2)
        var b = Samples(shared: buffer, range: 2..<5)
        #expect(a == [1, 2] && b == [3, 4, 5])
        #expect(b.indices == 0..<3 && b[0] == 3 && b.last == 5 && b.first == 3 && b.max() == 5)
        #expect(Array(b) == [3, 4, 5] && b.array == [3, 4, 5])
        b[0] = 30
        b.append(6)
        b += [7]
        #expect(b == [30, 4, 5, 6, 7] && b.count == 5)
        #expect(a == [1, 2] && buffer == [1, 2, 3, 4, 5])
        #expect(Samples(shared: buffer, range: 1..<1).isEmpty)

        // Appending, as the agent does to a pending series: its own samples grow, a shared part is copied first.
        var own: Samples<Double> = []
        for i in 0..<1_000 { own += [Double(i)] }
        own.append(1_000)
        #expect(own.count == 1_001 && own.elementsEqual((0...1_000).map(Double.init)))
        var part = Samples(shared: buffer, range: 1..<3)
        part.append(contentsOf: [9, 9])
        #expect(part == [2, 3, 9, 9] && buffer == [1, 2, 3, 4, 5] && a == [1, 2])
    }

    @Test func equalityAndHashingFollowTheSamplesNotTheBuffer() {
        let shared = Samples(shared: [9, 1, 2, 9] as [Int64], range: 1..<3)
        let own: Samples<Int64> = [1, 2]
        #expect(shared == own && shared.hashValue == own.hashValue)
        #expect(shared != [1, 2, 3] && shared.description == "[1, 2]")
    }

    /// Six numeric series of two samples each, and a state series among them.
    static func mixedBatch() -> BatchPayload {
        let payload = RealisticBatches.stream(metrics: 6, seconds: 2, ticksPerBatch: 2, startMs: 1_700_000_000_000)[0]
        var series = payload.series
        series.insert(Series(name: "ws", kind: .state, timestamps: [1_700_000_000_000, 1_700_000_000_500], states: ["up", "down"]), at: 2)
        return BatchPayload(series: series)
    }

    @Test func aDecodedDeltaBatchSharesOneBufferOfTimestampsAndOneOfValues() throws {
        let sent = Self.mixedBatch()
        var encoder = DeltaEncoder()
        var decoder = DeltaDecoder()
        let encoded = encoder.encode(epoch: 1, sequence: 1, payload: sent)
        let bytes = try #require(encoded)
        guard case .deltaBatch(let frame) = try Frame.decode(bytes) else { Issue.record("not a delta batch frame"); return }
        let back = try decoder.decode(frame, limits: BatchLimits()).payload
        #expect(back == sent)
        Self.expectOneBufferEach(back)
    }

    /// Protocols 1 and 2 send self-contained batches: decoded the same way.
    @Test func aDecodedSelfContainedBatchSharesOneBufferOfTimestampsAndOneOfValues() throws {
        let sent = Self.mixedBatch()
        var bytes = ByteBuffer()
        sent.encode(into: &bytes)
        let back = try BatchPayload.decode(bytes, limits: BatchLimits())
        #expect(back == sent)
        Self.expectOneBufferEach(back)
    }

    /// Each series' timestamps follow the previous series' in one buffer, and each numeric series' values the
    /// previous numeric series' in another.
    static func expectOneBufferEach(_ back: BatchPayload) {
        func base<T>(_ s: Samples<T>) -> UnsafeRawPointer? { s.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress) } }
        let numeric = back.series.filter { $0.kind != .state }
        #expect(numeric.count == 6 && back.series.count == 7)
        for (earlier, later) in zip(back.series, back.series.dropFirst()) {
            #expect(base(later.timestamps) == base(earlier.timestamps)! + earlier.count * MemoryLayout<Int64>.stride)
        }
        for (earlier, later) in zip(numeric, numeric.dropFirst()) {
            #expect(base(later.values) == base(earlier.values)! + earlier.count * MemoryLayout<Double>.stride)
        }
    }
}
