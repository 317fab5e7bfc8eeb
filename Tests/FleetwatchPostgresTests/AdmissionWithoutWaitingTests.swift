import FleetwatchIngest
import FleetwatchProtocol
import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import PostgresNIO
import Testing

/// A bot's usual batch (the names of its last one, all admitted) is admitted without a task, a suspension or a round
/// trip (`IngestStore.admitWithoutWaiting`, which `admit` tries first); anything else — new names, another order, names over the bot's limit, a
/// bot whose limit changed — still goes to PostgreSQL, which enforces the limits.
@Suite(.enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct AdmissionWithoutWaitingTests {
    let logger = Logger(label: "test")

    static func batch(_ names: [String], sequence: UInt64 = 1) -> ValidatedBatch {
        ValidatedBatch(epoch: 5, sequence: sequence, sentSamples: names.count,
                       series: names.map { Series(name: $0, kind: .gauge, timestamps: [1_000], values: [Double(sequence)]) },
                       refusedSamples: 0, firstTimestampMs: 1_000)
    }

    /// The limit catches a hang; it also covers making and migrating the database (up to 50 s in the main phase).
    @Test(.timeLimit(.minutes(3)))
    func onlyABotsUsualBatchIsAnsweredAtOnce() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["bot-1"], token: "secret", in: db)
        try await db.withClient { (client: PostgresClient) async throws -> Void in
            let store = PostgresIngestStore(client: client, logger: logger, maxNamesPerBot: 3)
            let hello = Hello(botID: "bot-1", token: "secret", agentVersion: "t", bootEpoch: 5, lastAckedSequence: 0)
            guard case .accepted(let session) = try await store.authenticate(hello, connectionID: UUID(), hub: "h") else {
                Issue.record("bot-1 refused"); return
            }
            let usual = Self.batch(["a", "b"])
            #expect(store.admitWithoutWaiting(usual, session: session) == nil)   // never seen: PostgreSQL admits it
            let admitted = try await store.admit(usual, session: session)
            #expect(admitted.metricIDs.count == 2 && admitted.overLimitSamples == 0)
            #expect(try await store.admit(usual, session: session) == admitted)

            // The same names, later values: answered at once, with the ids PostgreSQL gave.
            let next = Self.batch(["a", "b"], sequence: 2)
            let quick = try #require(store.admitWithoutWaiting(next, session: session))
            #expect(quick == (try await store.admit(next, session: session)))
            #expect(quick.metricIDs == admitted.metricIDs && quick.series == next.series)

            // Another order, or a name more: the store is asked.
            #expect(store.admitWithoutWaiting(Self.batch(["b", "a"]), session: session) == nil)
            #expect(store.admitWithoutWaiting(Self.batch(["a", "b", "c"]), session: session) == nil)
            // Past the bot's limit of 3, PostgreSQL refuses the fourth name, every time.
            let over = Self.batch(["a", "b", "c", "d"], sequence: 3)
            #expect(try await store.admit(over, session: session).overLimitNames == ["d"])
            #expect(store.admitWithoutWaiting(over, session: session) == nil)
            #expect(try await store.admit(over, session: session).overLimitNames == ["d"])

            // The bot's limit changed: nothing is answered from memory until PostgreSQL was asked again.
            #expect(store.admitWithoutWaiting(next, session: session) != nil)
            await store.forgetMetricNames(botID: session.botID)
            #expect(store.admitWithoutWaiting(next, session: session) == nil)

            // Another bot's session never gets this bot's ids.
            let other = BotSession(botID: session.botID + 1, botName: "bot-2", connectionID: UUID(), epoch: 5, storedSequence: 0)
            _ = try await store.admit(usual, session: session)
            _ = try await store.admit(usual, session: session)
            #expect(store.admitWithoutWaiting(usual, session: session) != nil)
            #expect(store.admitWithoutWaiting(usual, session: other) == nil)

            // During an outage a provisional session's batch is taken as it is, as `admit` would.
            let health = DatabaseHealth(url: try DatabaseURL("postgres://nobody@127.0.0.1:1/none", environment: [:]), logger: logger)   // never run: up
            let outage = OutageIngestStore(inner: store, health: health)
            var provisional = session
            provisional.provisional = true
            #expect(outage.admitWithoutWaiting(usual, session: provisional) == usual)
            #expect(outage.admitWithoutWaiting(usual, session: session) == store.admitWithoutWaiting(usual, session: session))

            // With the database noticed down, a usual batch is still admitted from memory (no race with the probe);
            // a batch with other names is taken as it is, unadmitted, and its store will be deferred.
            let known = try #require(store.admitWithoutWaiting(usual, session: session))
            health.observed(failure: "test: the database is down")
            #expect(try await outage.admit(usual, session: session) == known)
            let reordered = Self.batch(["b", "a"])
            #expect(try await outage.admit(reordered, session: session) == reordered)
        }
    }
}
