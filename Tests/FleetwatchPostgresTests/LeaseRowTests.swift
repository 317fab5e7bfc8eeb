import FleetwatchIngest
import FleetwatchProtocol
import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import PostgresNIO
import Testing

/// The batch statement's hold on the bot's row: it locks the row (a takeover waits for it, and a statement that waited
/// for a takeover reads the row again), and writes `last_seen_at` at most once a second, not at every batch.
@Suite(.enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct LeaseRowTests {
    let logger = Logger(label: "test")
    let t = PostgresStoreTests()

    /// The bot's row: its version (`xmin` changes only when the row is written), its `last_seen_at` in seconds ago,
    /// and `last_seen_at` itself.
    func row(_ client: PostgresClient) async throws -> (version: String, secondsAgo: Double, lastSeen: Date) {
        let rows = try await client.query("""
            SELECT xmin::text, EXTRACT(EPOCH FROM now() - last_seen_at)::float8, last_seen_at FROM bots WHERE name = 'bot-1'
            """, logger: logger).decode((String, Double, Date).self).all()
        return (rows[0].0, rows[0].1, rows[0].2)
    }

    /// The batches' sequences in `samples`.
    func storedSequences(_ client: PostgresClient) async throws -> [Int64] {
        try await client.query("SELECT seq FROM samples ORDER BY seq", logger: logger).decode(Int64.self).all()
    }

    /// bot-1 registered and accepted on a new connection, then `body` with the client, the store and the session.
    func withAcceptedBot(_ body: @escaping @Sendable (PostgresClient, PostgresIngestStore, BotSession) async throws -> Void) async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["bot-1"], token: "secret", in: db)
        try await db.withClient { (client: PostgresClient) async throws -> Void in
            let (store, _, session) = try await t.acceptedSession(client)
            try await body(client, store, session)
        }
    }

    func setLastSeen(_ client: PostgresClient, _ expression: String) async throws {
        try await client.query(PostgresQuery(unsafeSQL: "UPDATE bots SET last_seen_at = \(expression) WHERE name = 'bot-1'"), logger: logger)
    }

    @Test(.timeLimit(.minutes(2)))
    func aStoredBatchMarksTheBotSeenAtMostOnceASecond() async throws {
        try await withAcceptedBot { client, store, session in
            // Seen an hour ago: a stored batch marks it seen now.
            try await setLastSeen(client, "now() - interval '1 hour'")
            #expect(try await store.store(t.batch(1), session: session) == .stored)
            #expect(try await row(client).secondsAgo < 60)
            // Seen less than a second ago (here: a time to come, so a slow machine cannot make it a second old):
            // the next batches are stored and the row is not written.
            try await setLastSeen(client, "now() + interval '1 hour'")
            let before = try await row(client)
            #expect(try await store.store(t.batch(2), session: session) == .stored)
            #expect(try await store.store(run: [t.batch(3), t.batch(4)], session: session) == [.stored, .stored])
            let after = try await row(client)
            #expect(after.version == before.version)
            #expect(after.secondsAgo < -3_000)
            // Seen a second ago: written again.
            try await setLastSeen(client, "now() - interval '1 second'")
            let old = try await row(client)
            #expect(try await store.store(t.batch(5), session: session) == .stored)
            let new = try await row(client)
            #expect(new.version != old.version)
            #expect(new.lastSeen > old.lastSeen)
            #expect(try await storedSequences(client) == [1, 2, 3, 4, 5])
        }
    }

    /// Runs `store` while another transaction that ran `changes` (the bot's row among them) is open, and commits it
    /// once the batch statement waits for the row.
    func whileRowChanges(_ client: PostgresClient, _ changes: [String],
                         _ store: @escaping @Sendable () async throws -> [StoreOutcome]) async throws -> [StoreOutcome] {
        try await client.withConnection { locker in
            try await locker.query("BEGIN", logger: logger)
            for change in changes { try await locker.query(PostgresQuery(unsafeSQL: change), logger: logger) }
            let storing = Task { try await store() }
            #expect(try await eventually(.seconds(20)) {
                try await client.query("""
                    SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'
                    """, logger: logger).decode(Int.self).all() == [1]
            })
            try await locker.query("COMMIT", logger: logger)
            return try await storing.value
        }
    }

    /// The statement's last guard: a stream whose ledger row another transaction raised past the run after the
    /// statement's snapshot (the writer never lets that happen; here a transaction does it by hand while holding the
    /// bot's row) gets no sample rows: the ledger row is not lowered, and the run is answered as duplicates.
    @Test(.timeLimit(.minutes(2)))
    func aStreamRaisedUnderTheStatementGetsNoRows() async throws {
        try await withAcceptedBot { client, store, session in
            #expect(try await store.store(t.batch(1), session: session) == .stored)
            let outcome = try await whileRowChanges(client, [
                "UPDATE bots SET health_checked_at = now() WHERE name = 'bot-1'",
                "UPDATE ingest_streams SET stored_through = 10 WHERE epoch = 5",
            ]) { try await store.store(run: [t.batch(2), t.batch(3)], session: session) }
            #expect(outcome == [.duplicate, .duplicate])
            #expect(try await storedSequences(client) == [1])
            let ledger = try await client.query("SELECT stored_through, batches FROM ingest_streams", logger: logger)
                .decode((Int64, Int64).self).all()
            #expect(ledger.count == 1 && ledger[0] == (10, 1))
        }
    }

    /// A batch statement that waits for another transaction's change to the bot's row reads the row again once that
    /// commits: a takeover (another connection's id) makes its batches lease-lost, writing nothing, not even the row's
    /// `last_seen_at`; any other change (the health check's) leaves them stored, and `last_seen_at`, which that change
    /// made an hour old, is written from the row as changed.
    @Test(.timeLimit(.minutes(2)), arguments: [true, false])
    func aStatementThatWaitedForTheRowReadsItAgain(takeover: Bool) async throws {
        try await withAcceptedBot { client, store, session in
            #expect(try await store.store(t.batch(1), session: session) == .stored)
            let change = (takeover ? "connection_id = gen_random_uuid()" : "health_status = 'warning', health_checked_at = now()")
                + ", last_seen_at = now() - interval '1 hour'"
            let outcome = try await whileRowChanges(client, ["UPDATE bots SET \(change) WHERE name = 'bot-1'"]) {
                try await store.store(run: [t.batch(2), t.batch(3)], session: session)
            }
            let stored = try await storedSequences(client)
            let through = try await client.query("SELECT stored_through FROM ingest_streams", logger: logger).decode(Int64.self).all()
            let seen = try await row(client).secondsAgo
            if takeover {
                #expect(outcome == [.leaseLost, .leaseLost])
                #expect(stored == [1])
                #expect(through == [1])
                #expect(seen > 3_000)
            } else {
                #expect(outcome == [.stored, .stored])
                #expect(stored == [1, 2, 3])
                #expect(through == [3])
                #expect(seen < 60)
            }
        }
    }
}
