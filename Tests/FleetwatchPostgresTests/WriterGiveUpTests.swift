import FleetwatchIngest
import FleetwatchProtocol
@testable import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import PostgresNIO
import Synchronization
import Testing

/// While PostgreSQL answers, a store of admitted batches goes straight to the batch writer, without a task raced
/// against the health probe; the writer itself answers its waiting stores (`DatabaseUnavailable`: the ingest defers
/// the batches) the moment the database is noticed down, whether their statement is queued or running, and refuses
/// new ones while it is down, as `DatabaseHealth.failFast` did.
@Suite(.enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct WriterGiveUpTests {
    let logger = Logger(label: "test")

    static func batch(_ sequence: UInt64) -> ValidatedBatch {
        ValidatedBatch(epoch: 5, sequence: sequence, sentSamples: 1,
                       series: [Series(name: "m", kind: .gauge, timestamps: [1_000 * Int64(sequence)], values: [Double(sequence)])],
                       refusedSamples: 0, firstTimestampMs: 1_000 * Int64(sequence))
    }

    /// The limit catches a hang (a store that is never answered); it also covers making the database.
    @Test(.timeLimit(.minutes(3)))
    func waitingStoresAreDeferredTheMomentTheDatabaseIsNoticedDown() async throws {
        let db = try await TestDatabase.create()
        let bots = ["held-1", "held-2", "queued", "later"]
        try await registerBots(bots, token: "secret", in: db)
        try await db.withClient { (client: PostgresClient) async throws -> Void in
            let store = PostgresIngestStore(client: client, logger: logger)
            let health = DatabaseHealth(url: try DatabaseURL("postgres://nobody@127.0.0.1:1/none", environment: [:]), logger: logger)   // never run: up until told
            let outage = OutageIngestStore(inner: store, health: health)
            let sessions = try await acceptedSessions(bots, on: outage)
            var admitted: [String: ValidatedBatch] = [:]
            for bot in bots { admitted[bot] = try await outage.admit(Self.batch(1), session: sessions[bot]!) }
            let writer = store.writer
            try await client.withConnection { locker in
                // The two held bots' rows are locked, so their statements (one per writer slot) wait in PostgreSQL,
                // and the third bot's store waits in the writer's queue.
                try await locker.query("BEGIN", logger: logger)
                try await locker.query("SELECT 1 FROM bots WHERE name IN ('held-1', 'held-2') FOR UPDATE", logger: logger)
                // Each store's answer, when it comes (a missing give-up fails the test below instead of hanging it).
                let answers = Answers()
                for (i, bot) in ["held-1", "held-2", "queued"].enumerated() {
                    let (batch, session) = (admitted[bot]!, sessions[bot]!)
                    answers.collect(bot) { try await outage.store(run: [batch], session: session) }
                    while await (writer.running + writer.queued) < i + 1 { try await Task.sleep(for: .milliseconds(10)) }
                }
                #expect(await (writer.running, writer.queued) == (2, 1))
                #expect(try await lockWaits(2, on: locker), "the two held statements wait in PostgreSQL")

                health.observed(failure: "test: the database is down")
                let all = try await eventually(.seconds(30)) { answers.count == 3 }
                #expect(all, "every waiting store is answered while the rows are still locked")
                for (bot, answer) in answers.all { #expect((try? answer.get()) == [.deferred], "\(bot)") }
                #expect(await writer.queued == 0, "a store given up on is not written later")
                // Down: refused without a statement.
                #expect(try await outage.store(run: [admitted["later"]!], session: sessions["later"]!) == [.deferred])
                #expect(await (writer.running, writer.queued) == (2, 0))

                // The statements in flight end by themselves once the rows are let go; their answers are dropped.
                try await locker.query("COMMIT", logger: logger)
            }
            while await writer.running > 0 { try await Task.sleep(for: .milliseconds(10)) }
            // What the writer stored: the two batches whose statement ran, not the queued one nor the refused one.
            let stored = try await client.query("SELECT b.name FROM samples s JOIN bots b ON b.id = s.bot_id ORDER BY 1", logger: logger)
                .decode(String.self).reduce(into: [String]()) { $0.append($1) }
            #expect(stored == ["held-1", "held-2"])
        }
    }

    /// Whether `count` backends of this database wait for a lock (the held rows' statements are running in
    /// PostgreSQL) within a minute. `conn` is inside a transaction, where PostgreSQL keeps the first reading of
    /// `pg_stat_activity` until the transaction ends: each reading clears it first.
    func lockWaits(_ count: Int, on conn: PostgresConnection) async throws -> Bool {
        try await eventually(.seconds(60)) {
            try await conn.query("SELECT pg_stat_clear_snapshot()", logger: logger)
            let rows = try await conn.query("""
                SELECT count(*)::int8 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()
                """, logger: logger)
            var n: Int64 = 0
            for try await v in rows.decode(Int64.self) { n = v }
            return n >= Int64(count)
        }
    }
}

/// Answers collected from the stores' tasks.
final class Answers: Sendable {
    private let answers = Mutex<[(String, Result<[StoreOutcome], any Error>)]>([])
    func add(_ bot: String, _ answer: Result<[StoreOutcome], any Error>) { answers.withLock { $0.append((bot, answer)) } }
    var count: Int { answers.withLock { $0.count } }
    var all: [(String, Result<[StoreOutcome], any Error>)] { answers.withLock { $0 } }

    /// Runs `store` in a task of its own; its answer is added under `name` when it comes.
    func collect(_ name: String, _ store: @escaping @Sendable () async throws -> [StoreOutcome]) {
        Task {
            do { add(name, .success(try await store())) } catch { add(name, .failure(error)) }
        }
    }
}

/// Each bot's session on `store`: a hello with the token "secret" and boot epoch 5 (the bots registered with it).
func acceptedSessions(_ bots: [String], on store: any IngestStore) async throws -> [String: BotSession] {
    var sessions: [String: BotSession] = [:]
    for bot in bots {
        let hello = Hello(botID: bot, token: "secret", agentVersion: "t", bootEpoch: 5, lastAckedSequence: 0)
        guard case .accepted(let session) = try await store.authenticate(hello, connectionID: UUID(), hub: "h") else {
            throw TestSupportError("\(bot) refused")
        }
        sessions[bot] = session
    }
    return sessions
}
