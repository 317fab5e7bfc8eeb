import FleetwatchIngest
import FleetwatchProtocol
import FleetwatchTestSupport
import Foundation
import Logging
import NIOCore
import Synchronization
import Testing

/// A connection hands its next run to the store while the last one is written (up to `IngestSession.maxRunsInFlight`),
/// and still acknowledges in order, never past a run that was not stored, and closes only after the acks before it.
@Suite(.timeLimit(.minutes(1)))
struct RunsInFlightTests {
    typealias T = IngestSessionTests
    static let epoch = IngestSessionTests.epoch

    static func connected(_ store: HeldStore, _ wakes: Wakes) async -> IngestSession {
        let s = IngestSession(configuration: IngestConfiguration(), store: store, remote: "test", logger: Logger(label: "test"),
                              onAnswer: { wakes.add() })
        _ = await s.handle(T.hello())
        return s
    }

    static func ack(_ seq: UInt64) -> IngestOutput { BatchRunTests.ack(seq) }

    /// A connected session with batches 1...`runs` handed over, one run each (none answered).
    static func inFlight(_ runs: UInt64) async throws -> (HeldStore, Wakes, IngestSession) {
        let (store, wakes) = (HeldStore(), Wakes())
        let s = await connected(store, wakes)
        for seq in 1...runs { _ = await s.handle(try T.batch(seq)) }
        return (store, wakes, s)
    }

    /// After 200 ms: how many runs were handed over by then, and then run 0 answered `.stored`.
    static func answerTheFirstLater(_ store: HeldStore) -> Task<Int, any Error> {
        Task {
            try await Task.sleep(for: .milliseconds(200))
            let handedOver = await store.count
            await store.answer(0, .stored)
            return handedOver
        }
    }

    /// After 100 ms, runs 0 and 1 answered `.stored`: a close that returns their acks waited for them.
    static func answerBothAfterTheCloseBegan(_ store: HeldStore) -> Task<Void, any Error> {
        Task {
            try await Task.sleep(for: .milliseconds(100))
            await store.answer(0, .stored)
            await store.answer(1, .stored)
        }
    }

    @Test func twoRunsAreInFlightAndAckedInOrder() async throws {
        let (store, wakes) = (HeldStore(), Wakes())
        let s = await Self.connected(store, wakes)
        #expect(await s.handle(try T.batch(1)) == [])
        #expect(await s.handle(try T.batch(2)) == [])
        // The second is stored only if the first is.
        #expect(await store.afters == [nil, 1])
        await store.answer(1, .stored)
        #expect(wakes.count == 1)
        #expect(await s.takeAnswers() == [], "no ack for the second before the first's answer: acks are cumulative")
        await store.answer(0, .stored)
        #expect(await s.takeAnswers() == [Self.ack(1), Self.ack(2)])
        #expect(Set(await store.inner.stored.map(\.batch.sequence)) == [1, 2])
    }

    @Test func aThirdRunWaitsForRoom() async throws {
        let (store, _, s) = try await Self.inFlight(2)
        let answering = Self.answerTheFirstLater(store)
        let out = await s.handle(try T.batch(3))
        #expect(try await answering.value == 2, "the third run waited for the first's answer")
        #expect(out == [Self.ack(1)])
        #expect(await store.count == 3)
        #expect(await store.afters.last == 2)
    }

    /// After a deferred batch nothing later is acknowledged (the ack would cover the deferred one), even a run the
    /// store did store, and later runs are not handed over at all.
    @Test func nothingAfterADeferredRunIsAcknowledged() async throws {
        let (store, _, s) = try await Self.inFlight(2)
        await store.answer(0, .deferred)
        await store.answer(1, .stored)
        #expect(await s.takeAnswers() == [])
        #expect(s.deferredBatches == 2)
        #expect(await s.handle(try T.batch(3)) == [])
        #expect(await store.count == 2)
        #expect(s.deferredBatches == 3)
    }

    @Test func aFailedRunClosesAndTheRunBehindItIsNotAcknowledged() async throws {
        struct Lost: Error {}
        let (store, _, s) = try await Self.inFlight(2)
        await store.fail(0, Lost())
        await store.answer(1, .stored)
        let out = await s.takeAnswers()
        #expect(out.count == 1)
        #expect(T.closeCode(out) == .storageUnavailable)
    }

    /// The transport's close (here a message too big, which makes the agent drop its oldest unacknowledged batch)
    /// goes out after the acks of the runs in flight, so the agent drops the right batch.
    @Test func theTransportsCloseComesAfterTheAcksOfRunsInFlight() async throws {
        let (store, _, s) = try await Self.inFlight(2)
        let answering = Task {
            await store.answer(0, .stored)
            await store.answer(1, .stored)
        }
        let out = await s.closing(.messageTooBig, "too big")
        await answering.value
        #expect(out == [Self.ack(1), Self.ack(2), .close(.messageTooBig, "too big")])
    }

    /// With a deferred batch in flight the agent must keep every batch: the close becomes 4010.
    @Test func theTransportsCloseKeepsABatchDeferredInFlight() async throws {
        let (store, _, s) = try await Self.inFlight(1)
        let answering = Task { await store.answer(0, .deferred) }
        let out = await s.closing(.messageTooBig, "too big")
        await answering.value
        #expect(out.count == 1)
        #expect(T.closeCode(out) == .storageUnavailable)
    }

    /// A text frame (not part of the protocol) closes like any other close: after the acks of the runs in flight, so
    /// the agent need not send them again.
    @Test func aTextFramesCloseComesAfterTheAcksOfRunsInFlight() async throws {
        let (store, _, s) = try await Self.inFlight(2)
        let answering = Self.answerBothAfterTheCloseBegan(store)
        let out = await s.handleText()
        try await answering.value
        #expect(Array(out.dropLast()) == [Self.ack(1), Self.ack(2)])
        #expect(T.closeCode(out) == .protocolError)
    }

    /// Closed for silence (4008) by the periodic tick: the acks of the runs the store answers meanwhile go out first.
    @Test func aCloseForSilenceComesAfterTheAcksOfRunsInFlight() async throws {
        let (store, wakes, clock) = (HeldStore(), Wakes(), ManualClock(startMs: SystemClock.wall.nowMs))
        let s = IngestSession(configuration: IngestConfiguration(), store: store, remote: "test", logger: Logger(label: "test"),
                              onAnswer: { wakes.add() }, clock: clock)
        _ = await s.handle(T.hello())
        for seq in UInt64(1)...2 { _ = await s.handle(try T.batch(seq)) }
        #expect(await s.tick() == [], "not silent yet")
        clock.advance(ms: 3 * IngestConfiguration().heartbeatInterval.wholeMilliseconds)
        let answering = Self.answerBothAfterTheCloseBegan(store)
        let out = await s.tick()
        try await answering.value
        #expect(Array(out.dropLast()) == [Self.ack(1), Self.ack(2)])
        #expect(T.closeCode(out) == .heartbeatTimeout)
    }

    @Test func aBadBatchIsClosedAfterTheAcksOfRunsInFlight() async throws {
        let (store, _, s) = try await Self.inFlight(2)
        let bad = Frame.batch(BatchFrame(bootEpoch: Self.epoch, sequence: 3, sampleCount: 1, rawLength: 10,
                                         compressed: ByteBuffer(bytes: [1, 2, 3, 4]))).encoded()
        let answering = Task {
            try await Task.sleep(for: .milliseconds(100))
            await store.answer(0, .stored)
            await store.answer(1, .stored)
        }
        let out = await s.handle(bad)
        try await answering.value
        #expect(Array(out.dropLast()) == [Self.ack(1), Self.ack(2)])
        #expect(T.closeCode(out) == .badBatch)
    }

    /// A heartbeat from the agent is not a reason to wait for the store.
    @Test func aHeartbeatDoesNotWaitForRunsInFlight() async throws {
        let (store, _, s) = try await Self.inFlight(2)
        #expect(await s.handle(Frame.heartbeat(Heartbeat(sentAtMs: 0)).encoded()) == [])
        #expect(await store.count == 2)
    }

    /// Runs of two epochs are two streams, which the store does not keep in order: the later one waits.
    @Test func aRunOfAnotherEpochWaitsForTheRunsBeforeIt() async throws {
        let (store, _, s) = try await Self.inFlight(1)
        let payload = BatchPayload(series: [Series(name: "m", kind: .gauge, timestamps: [Int64(Date().timeIntervalSince1970 * 1000)], values: [1])])
        let next = Frame.batch(try BatchFrame.make(bootEpoch: Self.epoch + 1, sequence: 1, payload: payload)).encoded()
        let answering = Self.answerTheFirstLater(store)
        #expect(await s.handle(next) == [Self.ack(1)])
        #expect(try await answering.value == 1)
        #expect(await store.afters == [nil, nil])
    }

    /// A run whose names could not be admitted (the database went away) is stored by a path that does not check
    /// `after`: it waits for every run before it, and is handed over with nothing in flight.
    @Test func aRunNotAdmittedWaitsForTheRunsBeforeIt() async throws {
        let (store, _, s) = try await Self.inFlight(1)
        await store.setAdmitting(false)
        let answering = Self.answerTheFirstLater(store)
        #expect(await s.handle(try T.batch(2)) == [Self.ack(1)])
        #expect(try await answering.value == 1)
        #expect(await store.afters == [nil, nil])
    }

    /// A connection that ends (an agent closing right after its last batches) gives its lease back only after its runs
    /// in flight are answered: they are written under its lease, not refused as another connection's.
    @Test func theLeaseIsGivenBackAfterTheRunsInFlight() async throws {
        let (store, _, s) = try await Self.inFlight(2)
        let answering = Task {
            try await Task.sleep(for: .milliseconds(200))
            await store.answer(0, .stored)
            await store.answer(1, .stored)
        }
        await s.finish()
        try await answering.value
        #expect(await store.events == ["answer 0", "answer 1", "release"])
    }

    /// Without `onAnswer` nothing changes: `handle` returns the acks of its runs.
    @Test func withoutOnAnswerHandleReturnsTheAcks() async throws {
        let store = InMemoryIngestStore(tokens: ["bot-1": "secret"])
        let s = IngestSession(configuration: IngestConfiguration(), store: store, remote: "test", logger: Logger(label: "test"))
        _ = await s.handle(T.hello())
        #expect(await s.handle(try T.batch(1)) == [Self.ack(1)])
        #expect(await s.handle(try T.batch(2)) == [Self.ack(2)])
    }
}

/// Counts `onAnswer` calls.
final class Wakes: Sendable {
    private let n = Mutex(0)
    func add() { n.withLock { $0 += 1 } }
    var count: Int { n.withLock { $0 } }
}

/// An `IngestStore` whose handed-over runs wait until the test answers them: `submit` returns once a run is queued.
actor HeldStore: IngestStore {
    let inner = InMemoryIngestStore(tokens: ["bot-1": "secret"])
    private var queued: [(run: [ValidatedBatch], session: BotSession, after: UInt64?,
                          answer: @Sendable (Result<[StoreOutcome], any Error>) -> Void)] = []

    /// Runs handed over so far.
    var count: Int { queued.count }
    /// Each run's `after`, in the order they were handed over.
    var afters: [UInt64?] { queued.map(\.after) }

    func authenticate(_ hello: Hello, connectionID: UUID, hub: String) async throws -> AuthOutcome {
        try await inner.authenticate(hello, connectionID: connectionID, hub: hub)
    }
    /// false: `admit` answers the batch as it is (as the outage store does while the database is unreachable).
    private var admitting = true
    func setAdmitting(_ value: Bool) { admitting = value }

    func admit(_ batch: ValidatedBatch, session: BotSession) async throws -> ValidatedBatch {
        admitting ? try await inner.admit(batch, session: session) : batch
    }
    func store(_ batch: ValidatedBatch, session: BotSession) async throws -> StoreOutcome {
        try await inner.store(batch, session: session)
    }
    /// Answers and lease releases, in order.
    private(set) var events: [String] = []

    func release(_ session: BotSession) async {
        events.append("release")
        await inner.release(session)
    }

    func submit(run batches: [ValidatedBatch], session: BotSession, after: UInt64?,
                answer: @escaping @Sendable (Result<[StoreOutcome], any Error>) -> Void) async {
        queued.append((batches, session, after, answer))
    }

    /// Answers run `i` (in the order handed over) with `outcome` for each batch; `.stored` stores them.
    func answer(_ i: Int, _ outcome: StoreOutcome) async {
        let q = queued[i]
        events.append("answer \(i)")
        if outcome == .stored { for b in q.run { _ = try? await inner.store(b, session: q.session) } }
        q.answer(.success(q.run.map { _ in outcome }))
    }

    func fail(_ i: Int, _ error: any Error) {
        queued[i].answer(.failure(error))
    }
}
