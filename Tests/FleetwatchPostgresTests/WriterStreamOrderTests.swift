import FleetwatchIngest
import FleetwatchProtocol
@testable import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import PostgresNIO
import Testing

/// The batch writer never runs two statements of one stream (bot, epoch) at once, even when it is handed a stream's
/// next run while the last one is being written: the next run waits for that statement, and both are stored in order.
/// (A connection stores one run at a time, so the ingest path never does this; the writer does not rely on it.)
@Suite(.enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct WriterStreamOrderTests {
    let logger = Logger(label: "test")

    @Test(.timeLimit(.minutes(3)))
    func aStreamsNextRunWaitsForItsStatement() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["held", "other"], token: "secret", in: db)
        try await db.withClient { (client: PostgresClient) async throws -> Void in
            let store = PostgresIngestStore(client: client, logger: logger)
            let sessions = try await acceptedSessions(["held", "other"], on: store)
            func admitted(_ sequence: UInt64, _ bot: String) async throws -> ValidatedBatch {
                try await store.admit(WriterGiveUpTests.batch(sequence), session: sessions[bot]!)
            }
            // Each bot's first batch is stored before the test: its day's partition then exists (creating one waits for
            // every statement on the table, the held one too).
            for bot in ["held", "other"] { #expect(try await store.store(run: [try await admitted(1, bot)], session: sessions[bot]!) == [.stored]) }
            let (first, second, other) = (try await admitted(2, "held"), try await admitted(3, "held"), try await admitted(2, "other"))
            let writer = store.writer
            let answers = Answers()
            func submit(_ name: String, _ batch: ValidatedBatch, _ bot: String) {
                let session = sessions[bot]!
                answers.collect(name) { try await store.store(run: [batch], session: session) }
            }
            try await client.withConnection { locker in
                try await locker.query("BEGIN", logger: logger)
                try await locker.query("SELECT 1 FROM bots WHERE name = 'held' FOR UPDATE", logger: logger)
                submit("first", first, "held")
                while await writer.running < 1 { try await Task.sleep(for: .milliseconds(10)) }
                submit("second", second, "held")
                #expect(try await eventually(.seconds(10)) { await writer.queued == 1 }, "the held stream's next run waits in the queue, not in a statement")
                // A slot is free, but the held stream's next run waits for its statement; another bot's run does not.
                submit("other", other, "other")
                #expect(try await eventually(.seconds(30)) { answers.all.map(\.0) == ["other"] }, "the other bot is stored beside the held statement")
                #expect(await (writer.running, writer.queued) == (1, 1), "the second run waits for the first's statement")
                try await locker.query("COMMIT", logger: logger)
            }
            #expect(try await eventually(.seconds(30)) { answers.count == 3 })
            for (name, answer) in answers.all { #expect((try? answer.get()) == [.stored], "\(name)") }
            let rows = try await client.query("""
                SELECT s.seq FROM samples s JOIN bots b ON b.id = s.bot_id WHERE b.name = 'held' ORDER BY 1
                """, logger: logger).decode(Int64.self).reduce(into: [Int64]()) { $0.append($1) }
            #expect(rows == [1, 2, 3])
        }
    }
}
