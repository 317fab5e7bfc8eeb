import FleetwatchIngest
import FleetwatchProtocol
import FleetwatchTestSupport
import Foundation
import Logging
import NIOCore
import Testing

/// Batches that waited on a connection together are stored as one run and acknowledged with one cumulative ack;
/// what the agent must hear about (refusals, duplicates, a bad batch) still reaches it, in order.
@Suite struct BatchRunTests {
    typealias T = IngestSessionTests
    static let epoch = IngestSessionTests.epoch

    static func connected(_ store: InMemoryIngestStore, version: UInt16 = WireProtocol.version) async -> IngestSession {
        let s = T.session(store)
        _ = await s.handle(T.hello(version: version))
        return s
    }

    static func ack(_ seq: UInt64, _ outcome: Ack.Outcome = .stored, refused: UInt32 = 0, _ refusals: Ack.Refusals = []) -> IngestOutput {
        .send(.ack(Ack(bootEpoch: epoch, sequence: seq, outcome: outcome, refusedSamples: refused, refusals: refusals)))
    }

    @Test func consecutiveBatchesAreOneRunWithOneAck() async throws {
        let store = InMemoryIngestStore(tokens: ["bot-1": "secret"])
        let s = await Self.connected(store)
        let out = await s.handle(try (1...5).map { try T.batch($0) })
        #expect(out == [Self.ack(5)])
        #expect(await store.runs == [[1, 2, 3, 4, 5]])
        #expect(await store.stored.map(\.batch.sequence) == [1, 2, 3, 4, 5])
    }

    /// Runs are for small batches: decoded samples waiting for a store stay bounded (a hostile bot's 64 large
    /// batches are not all held at once).
    @Test func aRunHoldsAtMostMaxRunSamples() async throws {
        let store = InMemoryIngestStore(tokens: ["bot-1": "secret"])
        let s = await Self.connected(store)
        let big = [Double](repeating: 1, count: IngestSession.maxRunSamples / 2)
        let out = await s.handle(try (1...5).map { try T.batch($0, values: big) })
        #expect(out == [Self.ack(2), Self.ack(4), Self.ack(5)])
        #expect(await store.runs == [[1, 2], [3, 4]])
        #expect(await store.stored.count == 5)
    }

    @Test func aDuplicateAndARefusalEachGetTheirOwnAck() async throws {
        let store = InMemoryIngestStore(tokens: ["bot-1": "secret"])
        let s = await Self.connected(store)
        #expect(await s.handle(try T.batch(1)) == [Self.ack(1)])
        let out = await s.handle([try T.batch(1), try T.batch(2, values: [.nan, 2]), try T.batch(3), try T.batch(4)])
        // 1 again is a duplicate; 2 had a sample refused; 3 is covered by the ack of 4.
        #expect(out == [Self.ack(1, .duplicate), Self.ack(2, refused: 1, .invalidValue), Self.ack(4)])
        #expect(await store.stored.map(\.batch.sequence) == [1, 2, 3, 4])
    }

    @Test func aV1ConnectionGetsV1AcksForARun() async throws {
        let store = InMemoryIngestStore(tokens: ["bot-1": "secret"])
        let s = await Self.connected(store, version: 1)
        #expect(await s.handle(try (1...3).map { try T.batch($0) }) == [.send(.ack(Ack(bootEpoch: Self.epoch, sequence: 3, outcome: .stored)))])
    }

    @Test func aBatchOutOfOrderStartsANewRun() async throws {
        let store = InMemoryIngestStore(tokens: ["bot-1": "secret"])
        let s = await Self.connected(store)
        let out = await s.handle([try T.batch(4), try T.batch(5), try T.batch(2), try T.batch(3)])
        #expect(out == [Self.ack(5), Self.ack(3)])
        #expect(await store.runs == [[4, 5], [2, 3]])
    }

    /// A corrupt batch in the middle: the batches before it are stored and acknowledged, then the connection is
    /// closed (4005, the agent drops that batch), and nothing after it is stored.
    @Test func theBatchesBeforeABadOneAreStoredAndAcked() async throws {
        let store = InMemoryIngestStore(tokens: ["bot-1": "secret"])
        let s = await Self.connected(store)
        let bad = Frame.batch(BatchFrame(bootEpoch: Self.epoch, sequence: 3, sampleCount: 1, rawLength: 10,
                                         compressed: ByteBuffer(bytes: [1, 2, 3, 4]))).encoded()
        let out = await s.handle([try T.batch(1), try T.batch(2), bad, try T.batch(4)])
        #expect(out.first == Self.ack(2))
        #expect(T.closeCode(out) == .badBatch)
        #expect(await store.stored.map(\.batch.sequence) == [1, 2])
    }

    /// Deferred while the database is down: nothing of the run is acknowledged, every batch is evaluated.
    @Test func aDeferredRunIsNotAcknowledged() async throws {
        let store = InMemoryIngestStore(tokens: ["bot-1": "secret"])
        await store.setDeferring(true)
        let s = await Self.connected(store)
        #expect(await s.handle(try (1...3).map { try T.batch($0) }) == [])
        #expect(s.deferredBatches == 3)
    }

    /// The store fails mid-run: the connection closes without an ack, the agent keeps the whole run.
    @Test func aFailingStoreAcknowledgesNothing() async throws {
        let store = InMemoryIngestStore(tokens: ["bot-1": "secret"])
        let s = await Self.connected(store)
        await store.setFailing(true)
        let out = await s.handle(try (1...3).map { try T.batch($0) })
        #expect(out.count == 1 && T.closeCode(out) == .storageUnavailable)
    }
}
