@testable import FleetwatchAgent
import FleetwatchProtocol
import NIOCore
import Testing

@Suite struct BatchBufferTests {
    static func series(_ name: String, count: Int, at t0: Int64 = 1_000) -> Series {
        Series(name: name, kind: .gauge, timestamps: (0..<count).map { t0 + Int64($0) }, values: (0..<count).map(Double.init))
    }

    static func decode(_ b: SealedBatch) throws -> BatchPayload {
        guard case .batch(let f) = try Frame.decode(b.frame) else { throw WireError(.invalidField, "not a batch") }
        return try f.inflate(limits: BatchLimits())
    }

    @Test func sealsWhenFullAndSplitsLongSeries() throws {
        var buffer = BatchBuffer(epoch: 7, configuration: .init(capacity: 10_000, maxBatchSamples: 100))
        let (sealed, dropped) = buffer.append([Self.series("a", count: 250)])
        #expect(dropped.isEmpty)
        #expect(sealed.map(\.sequence) == [1, 2])
        #expect(sealed.map(\.sampleCount) == [100, 100])
        #expect(buffer.pendingCount == 50)
        let sealedLast = buffer.seal()
        let last = try #require(sealedLast)
        #expect(last.sequence == 3 && last.sampleCount == 50)
        let all = try (sealed + [last]).flatMap { try Self.decode($0).series[0].values }
        #expect(all == (0..<250).map(Double.init))
    }

    /// Only the newest batches keep their samples for protocol 3's delta coding; older ones keep their frame only,
    /// so a long outage costs what it cost before.
    @Test func onlyTheNewestBatchesKeepTheirSamples() throws {
        var buffer = BatchBuffer(epoch: 7, configuration: .init(capacity: 100_000, maxBatchSamples: 10))
        for i in 0..<(BatchBuffer.payloadsKept + 6) {
            _ = buffer.append([Self.series("a", count: 10, at: Int64(i) * 100)])
        }
        let kept = buffer.unackedBatches.map { $0.payload != nil }
        #expect(kept == Array(repeating: false, count: 6) + Array(repeating: true, count: BatchBuffer.payloadsKept))
        let newest = try #require(buffer.unackedBatches.last)
        #expect(newest.payload == (try Self.decode(newest)))
    }

    @Test func mergesSnapshotsOfTheSameMetric() throws {
        var buffer = BatchBuffer(epoch: 1, configuration: .init(maxBatchSamples: 1000))
        _ = buffer.append([Self.series("a", count: 1, at: 1), Self.series("b", count: 1, at: 1)])
        _ = buffer.append([Self.series("a", count: 1, at: 2), Self.series("b", count: 1, at: 2)])
        let sealed = buffer.seal()
        let batch = try #require(sealed)
        let payload = try Self.decode(batch)
        #expect(payload.series.count == 2)
        #expect(payload.series[0].timestamps == [1, 2])
    }

    /// Drop-oldest: with the hub away, the dropped count equals the overflow exactly.
    @Test func dropsOldestAndCountsExactly() throws {
        var buffer = BatchBuffer(epoch: 1, configuration: .init(capacity: 1_000, maxBatchSamples: 100))
        var droppedBatches: [SealedBatch] = []
        for i in 0..<25 {   // 2,500 samples into room for 1,000
            droppedBatches += buffer.append([Self.series("m", count: 100, at: Int64(i) * 100)]).dropped
        }
        #expect(buffer.bufferedSamples == 1_000)
        #expect(buffer.droppedSamples == 1_500)
        #expect(droppedBatches.map(\.sequence) == Array(1...15))
        #expect(buffer.unackedBatches.map(\.sequence) == Array(16...25))
    }

    /// A batch sent on a connection that was cut before its ack may be stored already: room is made by
    /// dropping batches never sent first, so the dropped count does not include samples the hub has.
    @Test func batchesSentBeforeACutAreDroppedLast() throws {
        var buffer = BatchBuffer(epoch: 1, configuration: .init(capacity: 500, maxBatchSamples: 100))
        _ = buffer.append([Self.series("m", count: 200)])
        #expect(buffer.nextToSend(limit: 10).map(\.sequence) == [1, 2])
        buffer.connectionLost()   // no ack: 1 and 2 may or may not be stored
        var dropped: [UInt64] = []
        for i in 1...5 { dropped += buffer.append([Self.series("m", count: 100, at: Int64(i) * 1_000)]).dropped.map(\.sequence) }
        #expect(dropped == [3, 4])
        #expect(buffer.unackedBatches.map(\.sequence) == [1, 2, 5, 6, 7])
        #expect(buffer.droppedSamples == 200)
        // Only batches ever sent left: the oldest goes.
        #expect(buffer.nextToSend(limit: 10).map(\.sequence) == [1, 2, 5, 6, 7])
        dropped = buffer.append([Self.series("m", count: 100, at: 9_000)]).dropped.map(\.sequence)
        #expect(dropped == [8])   // 8 was never sent
        buffer.connectionLost()
        #expect(buffer.acknowledge(epoch: 1, sequence: 2).map(\.sequence) == [1, 2])
        #expect(buffer.everSentCount == 3)
    }

    @Test func capacityAlsoBoundsPendingSamples() {
        var buffer = BatchBuffer(epoch: 1, configuration: .init(capacity: 10, maxBatchSamples: 1_000))
        _ = buffer.append([Self.series("m", count: 25)])
        #expect(buffer.bufferedSamples == 10)
        #expect(buffer.droppedSamples == 15)
    }

    @Test func windowAckAndResendAfterReconnect() {
        var buffer = BatchBuffer(epoch: 3, configuration: .init(maxBatchSamples: 10))
        _ = buffer.append([Self.series("m", count: 50)])
        #expect(buffer.nextToSend(limit: 2).map(\.sequence) == [1, 2])
        #expect(buffer.nextToSend(limit: 2).isEmpty)
        #expect(buffer.acknowledge(epoch: 3, sequence: 1).map(\.sequence) == [1])
        #expect(buffer.nextToSend(limit: 2).map(\.sequence) == [3])
        buffer.connectionLost()
        #expect(buffer.nextToSend(limit: 10).map(\.sequence) == [2, 3, 4, 5])
        #expect(buffer.acknowledge(epoch: 3, sequence: 5).count == 4)
        #expect(buffer.unackedBatches.isEmpty)
        #expect(buffer.lastAckedSequence == 5)
    }

    @Test func ackOfAnotherEpochDoesNotRemoveThisEpoch() {
        var buffer = BatchBuffer(epoch: 2, configuration: .init(maxBatchSamples: 10))
        _ = buffer.append([Self.series("m", count: 10)])
        #expect(buffer.acknowledge(epoch: 1, sequence: 99).isEmpty)
        #expect(buffer.unackedBatches.count == 1)
    }

    @Test func refusedBatchIsDroppedAndCounted() {
        var buffer = BatchBuffer(epoch: 2, configuration: .init(maxBatchSamples: 10))
        _ = buffer.append([Self.series("m", count: 20)])
        let dropped = buffer.dropOldest()
        #expect(dropped?.sequence == 1)
        #expect(buffer.droppedSamples == 10)
        #expect(buffer.unackedBatches.map(\.sequence) == [2])
    }
}
