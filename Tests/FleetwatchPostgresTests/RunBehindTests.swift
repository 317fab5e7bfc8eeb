import FleetwatchIngest
import FleetwatchProtocol
@testable import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import PostgresNIO
import Testing

/// A run handed over while the connection's run before it had no answer (`IngestStore.submit`'s `after`) is stored only
/// if that run was: a stream's high-water mark never moves past a batch that was not stored, which a resend would
/// otherwise find "duplicate" and lose.
@Suite(.enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct RunBehindTests {
    let logger = Logger(label: "test")

    /// What the store answers a run handed over behind `after`, once it answers.
    static func submitted(_ store: PostgresIngestStore, _ run: [ValidatedBatch], _ session: BotSession,
                          after: UInt64?) async throws -> [StoreOutcome] {
        let answers = Answers()
        await store.submit(run: run, session: session, after: after) { answers.add("run", $0) }
        guard try await eventually(.seconds(60), { answers.count == 1 }) else { throw TestSupportError("no answer") }
        return try answers.all[0].1.get()
    }

    static func storedSequences(_ client: PostgresClient, _ bot: String, _ logger: Logger) async throws -> [Int64] {
        try await client.query("""
            SELECT s.seq FROM samples s JOIN bots b ON b.id = s.bot_id WHERE b.name = \(bot) ORDER BY 1
            """, logger: logger).decode(Int64.self).reduce(into: [Int64]()) { $0.append($1) }
    }

    static func storedThrough(_ client: PostgresClient, _ bot: String, _ logger: Logger) async throws -> Int64? {
        for try await through in try await client.query("""
            SELECT s.stored_through FROM ingest_streams s JOIN bots b ON b.id = s.bot_id WHERE b.name = \(bot)
            """, logger: logger).decode(Int64.self) { return through }
        return nil
    }

    @Test(.timeLimit(.minutes(3)))
    func aRunIsStoredOnlyIfTheRunBeforeItWas() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["bot", "new"], token: "secret", in: db)
        try await db.withClient { (client: PostgresClient) async throws -> Void in
            let store = PostgresIngestStore(client: client, logger: logger)
            let sessions = try await acceptedSessions(["bot", "new"], on: store)
            let (bot, new) = (sessions["bot"]!, sessions["new"]!)
            func admitted(_ sequence: UInt64, _ session: BotSession) async throws -> ValidatedBatch {
                try await store.admit(WriterGiveUpTests.batch(sequence), session: session)
            }
            #expect(try await Self.submitted(store, [try await admitted(1, bot)], bot, after: nil) == [.stored])
            // Behind a run up to 2 that is not stored (2 never came): nothing written, the agent sends it again.
            #expect(try await Self.submitted(store, [try await admitted(3, bot), try await admitted(4, bot)], bot, after: 2) == [.deferred, .deferred])
            #expect(try await Self.storedThrough(client, "bot", logger) == 1)
            // Once 2 is stored, the same run is.
            #expect(try await Self.submitted(store, [try await admitted(2, bot)], bot, after: 1) == [.stored])
            #expect(try await Self.submitted(store, [try await admitted(3, bot), try await admitted(4, bot)], bot, after: 2) == [.stored, .stored])
            // Behind a run that was a duplicate: its batches were stored before, so this one is stored.
            #expect(try await Self.submitted(store, [try await admitted(5, bot)], bot, after: 3) == [.stored])
            #expect(try await Self.storedSequences(client, "bot", logger) == [1, 2, 3, 4, 5])
            #expect(try await Self.storedThrough(client, "bot", logger) == 5)
            // A stream with nothing stored yet, behind a run that was not stored.
            #expect(try await Self.submitted(store, [try await admitted(2, new)], new, after: 1) == [.deferred])
            #expect(try await Self.storedThrough(client, "new", logger) == nil)
            #expect(try await Self.storedSequences(client, "new", logger) == [])
        }
    }

    /// The connection's statement fails (cancelled by the server) while its next run waits behind it in the writer's
    /// queue: that run is answered `.deferred` and nothing of it is written.
    @Test(.timeLimit(.minutes(3)))
    func theRunBehindAFailedStatementIsNotStored() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["bot"], token: "secret", in: db)
        try await db.withClient { (client: PostgresClient) async throws -> Void in
            let store = PostgresIngestStore(client: client, logger: logger)
            let session = try await acceptedSessions(["bot"], on: store)["bot"]!
            func admitted(_ sequence: UInt64) async throws -> ValidatedBatch {
                try await store.admit(WriterGiveUpTests.batch(sequence), session: session)
            }
            // The day's partition exists before the bot's row is locked (creating one waits for every statement).
            #expect(try await Self.submitted(store, [try await admitted(1)], session, after: nil) == [.stored])
            let (first, second) = (try await admitted(2), try await admitted(3))
            let answers = Answers()
            try await client.withConnection { locker in
                try await locker.query("BEGIN", logger: logger)
                try await locker.query("SELECT 1 FROM bots WHERE name = 'bot' FOR UPDATE", logger: logger)
                await store.submit(run: [first], session: session, after: nil) { answers.add("first", $0) }
                await store.submit(run: [second], session: session, after: 2) { answers.add("second", $0) }
                #expect(try await eventually(.seconds(10)) { await store.writer.queued == 1 }, "the next run waits behind the statement")
                // The first run's statement waits on the row lock: the server cancels it. (pg_stat_activity is read once
                // per transaction unless its snapshot is cleared.)
                var cancelled = false
                for _ in 0..<600 where !cancelled {
                    try await locker.query("SELECT pg_stat_clear_snapshot()", logger: logger)
                    for try await done in try await locker.query("""
                        SELECT coalesce(bool_or(pg_cancel_backend(pid)), false) FROM pg_stat_activity
                        WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid))
                        """, logger: logger).decode(Bool.self) { cancelled = done }
                    if !cancelled { try await Task.sleep(for: .milliseconds(50)) }
                }
                #expect(cancelled)
                #expect(try await eventually(.seconds(30)) { answers.count == 1 })
                try await locker.query("COMMIT", logger: logger)
            }
            #expect(try await eventually(.seconds(30)) { answers.count == 2 })
            let all = Dictionary(uniqueKeysWithValues: answers.all)
            #expect((try? all["first"]?.get()) == nil, "the cancelled statement fails")
            #expect((try? all["second"]?.get()) == [.deferred])
            #expect(try await Self.storedSequences(client, "bot", logger) == [1])
            #expect(try await Self.storedThrough(client, "bot", logger) == 1)
        }
    }

    static func bulk(_ sequence: UInt64) -> ValidatedBatch {
        let count = BatchWriter.bulkSamples + 500
        let ts = (0..<count).map { 1_000 * Int64(sequence) + Int64($0) }
        return ValidatedBatch(epoch: 5, sequence: sequence, sentSamples: count,
                              series: [Series(name: "m", kind: .gauge, timestamps: ts, values: ts.map(Double.init))],
                              refusedSamples: 0, firstTimestampMs: ts[0])
    }

    /// A connection hands over a bulk run, then a small run behind it, while another bot's bulk statement holds the
    /// writer's one bulk slot: the small run waits for the bulk one instead of taking the free slot (where it would be
    /// held back and deferred), and both are stored, in order.
    @Test(.timeLimit(.minutes(3)))
    func aSmallRunBehindABulkRunWaitsForIt() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["bot", "other"], token: "secret", in: db)
        try await db.withClient { (client: PostgresClient) async throws -> Void in
            let store = PostgresIngestStore(client: client, logger: logger)
            let sessions = try await acceptedSessions(["bot", "other"], on: store)
            func admitted(_ batch: ValidatedBatch, _ bot: String) async throws -> ValidatedBatch {
                try await store.admit(batch, session: sessions[bot]!)
            }
            for bot in ["bot", "other"] {
                #expect(try await Self.submitted(store, [try await admitted(WriterGiveUpTests.batch(1), bot)], sessions[bot]!, after: nil) == [.stored])
            }
            let (otherBulk, bulk, small) = (try await admitted(Self.bulk(2), "other"), try await admitted(Self.bulk(2), "bot"),
                                            try await admitted(WriterGiveUpTests.batch(3), "bot"))
            let answers = Answers()
            try await client.withConnection { locker in
                try await locker.query("BEGIN", logger: logger)
                try await locker.query("SELECT 1 FROM bots WHERE name = 'other' FOR UPDATE", logger: logger)
                await store.submit(run: [otherBulk], session: sessions["other"]!, after: nil) { answers.add("other", $0) }
                #expect(try await eventually(.seconds(10)) { await store.writer.running == 1 })
                await store.submit(run: [bulk], session: sessions["bot"]!, after: nil) { answers.add("bulk", $0) }
                await store.submit(run: [small], session: sessions["bot"]!, after: 2) { answers.add("small", $0) }
                try await Task.sleep(for: .milliseconds(500))
                #expect(answers.count == 0, "the small run waits behind its stream's bulk run: \(answers.all.map(\.0))")
                #expect(await (store.writer.running, store.writer.queued) == (1, 2))
                try await locker.query("COMMIT", logger: logger)
            }
            #expect(try await eventually(.seconds(30)) { answers.count == 3 })
            for (name, answer) in answers.all { #expect((try? answer.get()) == [.stored], "\(name)") }
            #expect(answers.all.map(\.0).filter { $0 != "other" } == ["bulk", "small"])
            #expect(try await Self.storedSequences(client, "bot", logger) == [1, 2, 3])
        }
    }

    /// The other order: a small run waits behind its stream's running statement, and a bulk run comes behind it. When
    /// the statement ends, the bulk slot is free, but the bulk run waits for the older small one.
    @Test(.timeLimit(.minutes(3)))
    func aBulkRunBehindASmallRunWaitsForIt() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["bot"], token: "secret", in: db)
        try await db.withClient { (client: PostgresClient) async throws -> Void in
            let store = PostgresIngestStore(client: client, logger: logger)
            let session = try await acceptedSessions(["bot"], on: store)["bot"]!
            func admitted(_ batch: ValidatedBatch) async throws -> ValidatedBatch { try await store.admit(batch, session: session) }
            #expect(try await Self.submitted(store, [try await admitted(WriterGiveUpTests.batch(1))], session, after: nil) == [.stored])
            let (running, small, bulk) = (try await admitted(WriterGiveUpTests.batch(2)), try await admitted(WriterGiveUpTests.batch(3)),
                                          try await admitted(Self.bulk(4)))
            let answers = Answers()
            try await client.withConnection { locker in
                try await locker.query("BEGIN", logger: logger)
                try await locker.query("SELECT 1 FROM bots WHERE name = 'bot' FOR UPDATE", logger: logger)
                await store.submit(run: [running], session: session, after: nil) { answers.add("running", $0) }
                #expect(try await eventually(.seconds(10)) { await store.writer.running == 1 })
                await store.submit(run: [small], session: session, after: 2) { answers.add("small", $0) }
                await store.submit(run: [bulk], session: session, after: 3) { answers.add("bulk", $0) }
                #expect(await (store.writer.running, store.writer.queued) == (1, 2))
                try await locker.query("COMMIT", logger: logger)
            }
            #expect(try await eventually(.seconds(30)) { answers.count == 3 })
            for (name, answer) in answers.all { #expect((try? answer.get()) == [.stored], "\(name)") }
            #expect(answers.all.map(\.0) == ["running", "small", "bulk"])
            #expect(try await Self.storedSequences(client, "bot", logger) == [1, 2, 3, 4])
        }
    }
}
