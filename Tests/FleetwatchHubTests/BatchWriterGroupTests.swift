import FleetwatchIngest
import FleetwatchProtocol
@testable import FleetwatchStorage
import Foundation
import NIOCore
import Testing

/// Which waiting stores one statement takes (`BatchWriter.takeGroup`): the oldest, one per stream, at most
/// `maxGroup` of them and within the group's sample and byte budget, in bot order; the rest keep their order.
@Suite struct BatchWriterGroupTests {
    static func item(bot: Int32, epoch: UInt64 = 1, sequence: UInt64 = 1, samples: Int = 50) -> BatchWriter.Item {
        let nowMs = Int64(Date().timeIntervalSince1970 * 1000)
        let batch = ValidatedBatch(epoch: epoch, sequence: sequence, sentSamples: samples,
                                   series: (0..<samples).map { Series(name: "m\($0)", kind: .gauge, timestamps: [nowMs], values: [1]) },
                                   refusedSamples: 0, firstTimestampMs: nowMs).admittingEvery(ids: (0..<Int32(samples)).map { $0 })
        let session = BotSession(botID: bot, botName: "b\(bot)", connectionID: UUID(), epoch: epoch, storedSequence: 0)
        return BatchWriter.Item(rows: [SampleRows(batch: batch, nowMs: nowMs)], batches: [batch], session: session, outcome: AnswerOnce { _ in })
    }

    static func queue(_ items: [BatchWriter.Item]) -> CircularBuffer<BatchWriter.Item> { CircularBuffer(items) }

    @Test func oneSecondBatchesOfManyBotsFillAGroupOfMaxGroup() {
        var waiting = Self.queue((0..<300).map { Self.item(bot: Int32(299 - $0)) })
        let group = BatchWriter.takeGroup(from: &waiting, maxGroup: 128)
        #expect(group.count == 128)
        // The oldest 128 (bots 299 down to 172), in bot order; the rest wait in their order.
        #expect(group.map(\.session.botID) == Array(172...299))
        #expect(waiting.count == 172 && waiting.first?.session.botID == 171 && waiting.last?.session.botID == 0)
    }

    @Test func aStreamHasOneItemPerGroupAndItsNextKeepsItsPlace() {
        var waiting = Self.queue([Self.item(bot: 1, sequence: 1), Self.item(bot: 1, sequence: 2), Self.item(bot: 2),
                                  Self.item(bot: 1, epoch: 2)])
        let group = BatchWriter.takeGroup(from: &waiting, maxGroup: 128)
        #expect(group.map { [Int($0.session.botID), Int($0.batches[0].epoch), Int($0.batches[0].sequence)] } == [[1, 1, 1], [1, 2, 1], [2, 1, 1]])
        #expect(waiting.map { $0.batches[0].sequence } == [2])
    }

    /// Items just short of bulk: a group stops at its sample budget (what 64 of them came to before groups took
    /// 128), so a statement does not grow with `maxGroup`; the first item is always taken.
    @Test func aGroupStaysWithinItsSampleBudget() {
        var waiting = Self.queue((0..<200).map { Self.item(bot: Int32($0), samples: BatchWriter.bulkSamples) })
        let group = BatchWriter.takeGroup(from: &waiting, maxGroup: 128)
        #expect(group.count == 64)
        #expect(group.reduce(0) { $0 + $1.samples } <= BatchWriter.groupSamples)
        var one = Self.queue([Self.item(bot: 1, samples: 10)])
        #expect(BatchWriter.takeGroup(from: &one, maxGroup: 128, maxSamples: 5).count == 1)
        var bytes = Self.queue((0..<10).map { Self.item(bot: Int32($0)) })
        let perItem = bytes.first!.bytes
        #expect(BatchWriter.takeGroup(from: &bytes, maxGroup: 128, maxBytes: perItem * 3).count == 3)
        #expect(bytes.count == 7)
    }
}

extension BatchWriterGroupTests {
    /// A stream whose statement is running keeps its waiting item for a later group (two statements of one stream at
    /// once could commit out of order); a group of only such items is empty, and the writer then starts none.
    @Test func aStreamWithAStatementRunningWaitsForIt() {
        var waiting = Self.queue([Self.item(bot: 1, sequence: 2), Self.item(bot: 2), Self.item(bot: 3)])
        let busy: Set<BatchWriter.StreamKey> = [.init(bot: 1, epoch: 1), .init(bot: 3, epoch: 1)]
        #expect(BatchWriter.takeGroup(from: &waiting, maxGroup: 128, busy: busy).map(\.session.botID) == [2])
        #expect(waiting.map(\.session.botID) == [1, 3])
        #expect(BatchWriter.takeGroup(from: &waiting, maxGroup: 128, busy: busy).isEmpty)
        #expect(waiting.map(\.session.botID) == [1, 3])
    }

    /// A connection may hand over a bulk run and then a small one behind it: the small one waits for the bulk one (the
    /// writer keeps a stream's runs in the order they came); a small item older than the bulk one does not.
    @Test func aSmallItemBehindABulkItemOfItsStreamWaitsForIt() {
        func item(bot: Int32, sequence: UInt64, arrival: Int) -> BatchWriter.Item {
            var i = Self.item(bot: bot, sequence: sequence)
            i.arrival = arrival
            return i
        }
        let bulk = Self.queue([item(bot: 1, sequence: 3, arrival: 5)])
        var waiting = Self.queue([item(bot: 1, sequence: 2, arrival: 4), item(bot: 2, sequence: 1, arrival: 6),
                                  item(bot: 1, sequence: 4, arrival: 7)])
        let ahead = BatchWriter.firstArrivals(bulk)
        #expect(ahead == [.init(bot: 1, epoch: 1): 5])
        let group = BatchWriter.takeGroup(from: &waiting, maxGroup: 128, bulkAhead: ahead)
        #expect(group.map(\.batches[0].sequence) == [2, 1], "bot 1's run 2 came before its bulk run; bot 2's is not behind it")
        #expect(waiting.map(\.batches[0].sequence) == [4], "bot 1's run 4 waits for its bulk run 3")
        #expect(BatchWriter.takeGroup(from: &waiting, maxGroup: 128, bulkAhead: ahead).isEmpty)
        #expect(BatchWriter.takeGroup(from: &waiting, maxGroup: 128).map(\.batches[0].sequence) == [4])
    }

    /// Only an item the group would take counts against its budget: a later run of a stream already in the group,
    /// however large, does not end the group.
    @Test func anItemLeftForLaterDoesNotEndTheGroup() {
        var waiting = Self.queue([Self.item(bot: 1, samples: 10), Self.item(bot: 1, sequence: 2, samples: 100),
                                  Self.item(bot: 2, samples: 10)])
        let group = BatchWriter.takeGroup(from: &waiting, maxGroup: 128, maxSamples: 50)
        #expect(group.map(\.session.botID) == [1, 2])
        #expect(waiting.map(\.batches[0].sequence) == [2])
    }
}
