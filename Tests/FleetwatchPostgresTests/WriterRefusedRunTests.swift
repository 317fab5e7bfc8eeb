import FleetwatchIngest
import FleetwatchProtocol
@testable import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import PostgresNIO
import Testing

/// A run whose data PostgreSQL refuses fails alone: the other runs of its statement are stored, and finding it costs
/// a few statements (the group written in halves), not one statement per run of the group. Here the refused run holds
/// a state with a NUL character, which no PostgreSQL text takes (the hub's validation never lets one through; the
/// writer must not rely on that).
@Suite(.enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct WriterRefusedRunTests {
    let logger = Logger(label: "test")

    static func batch(_ sequence: UInt64, state: String? = nil) -> ValidatedBatch {
        let t = 1_000 * Int64(sequence)
        var series = [Series(name: "m", kind: .gauge, timestamps: [t], values: [Double(sequence)])]
        if let state { series.append(Series(name: "s", kind: .state, timestamps: [t], states: [state])) }
        return ValidatedBatch(epoch: 5, sequence: sequence, sentSamples: series.count, series: series, refusedSamples: 0, firstTimestampMs: t)
    }

    /// Stores one run of each of `fleet` in one statement of a writer with one slot (it waits on the row of a bot
    /// "held" meanwhile), the runs of `bad` with a state PostgreSQL refuses; returns each run's answer, the statements
    /// the writer sent, held's included, and the bots whose rows were stored.
    func storeInOneGroup(_ fleet: [String], bad: Set<String>) async throws
        -> (answers: [(String, Result<[StoreOutcome], any Error>)], statements: Int, stored: [String]) {
        let db = try await TestDatabase.create()
        try await registerBots(fleet + ["held"], token: "secret", in: db)
        return try await db.withClient { (client: PostgresClient) async throws in
            let store = PostgresIngestStore(client: client, logger: logger)
            let sessions = try await acceptedSessions(fleet + ["held"], on: store)
            // The day's partition exists before the statements counted below (a missing one costs a statement more).
            let first = try await store.admit(Self.batch(1), session: sessions["held"]!)
            #expect(try await store.store(run: [first], session: sessions["held"]!) == [.stored])

            let counting = CountingClient(client)
            let writer = BatchWriter(client: counting, logger: logger, hubID: "hub",
                                     partitions: PartitionMaintainer(client: client, logger: logger), maxConcurrent: 1)
            var runs: [(String, ValidatedBatch)] = []
            for bot in fleet { runs.append((bot, try await store.admit(Self.batch(1, state: bad.contains(bot) ? "a\u{0}b" : "ok"), session: sessions[bot]!))) }
            let held = try await store.admit(Self.batch(2), session: sessions["held"]!)
            let answers = Answers()
            func submit(_ bot: String, _ batch: ValidatedBatch) {
                let session = sessions[bot]!
                answers.collect(bot) { try await writer.store(run: [SampleRows(batch: batch)], batches: [batch], session: session) }
            }
            try await client.withConnection { locker in
                // The one slot waits on the held bot's row while the fleet's runs queue up behind it: one group.
                try await locker.query("BEGIN", logger: logger)
                try await locker.query("SELECT 1 FROM bots WHERE name = 'held' FOR UPDATE", logger: logger)
                submit("held", held)
                #expect(try await eventually(.seconds(10)) { await writer.running == 1 })
                for (bot, batch) in runs { submit(bot, batch) }
                #expect(try await eventually(.seconds(10)) { await writer.queued == fleet.count })
                try await locker.query("COMMIT", logger: logger)
            }
            #expect(try await eventually(.seconds(60)) { answers.count == fleet.count + 1 })
            let stored = try await client.query("""
                SELECT b.name FROM samples s JOIN bots b ON b.id = s.bot_id WHERE b.name <> 'held' ORDER BY 1
                """, logger: logger).decode(String.self).reduce(into: [String]()) { $0.append($1) }
            return (answers.all.filter { $0.0 != "held" }, counting.leases, stored)
        }
    }

    static func expectRefusedAlone(_ answers: [(String, Result<[StoreOutcome], any Error>)], bad: Set<String>) {
        for (bot, answer) in answers {
            if bad.contains(bot) {
                guard case .failure(let error) = answer else { Issue.record("the refused run of \(bot) was answered \(answer)"); continue }
                #expect((error as? PSQLError).map(BatchWriter.isBatchSpecific) == true, "\(String(reflecting: error))")
            } else {
                #expect((try? answer.get()) == [.stored], "\(bot)")
            }
        }
    }

    @Test(.timeLimit(.minutes(3)), arguments: [0, 13, 31])
    func aRefusedRunFailsAloneInAFewStatements(badAt: Int) async throws {
        let fleet = (0..<32).map { "r\($0)" }
        let bad: Set = [fleet[badAt]]
        let (answers, statements, stored) = try await storeInOneGroup(fleet, bad: bad)
        Self.expectRefusedAlone(answers, bad: bad)
        #expect(stored == fleet.filter { !bad.contains($0) }.sorted())
        // The held run's statement, the group's, then at most two a level (a half refused, the other stored) down to
        // the refused run: 1 + 1 + 2·log2(32). Writing each run alone after the group's refusal took 1 + 1 + 32.
        #expect(statements <= 12, "\(statements) statements")
    }

    /// A refusal that is no single run's (every run refused): both halves are refused, and each run is written alone,
    /// as before, at a cost of two statements more, not a search through every half.
    @Test(.timeLimit(.minutes(3)))
    func aRefusalOfEveryRunIsFoundRunByRun() async throws {
        let fleet = (0..<16).map { "r\($0)" }
        let (answers, statements, stored) = try await storeInOneGroup(fleet, bad: Set(fleet))
        Self.expectRefusedAlone(answers, bad: Set(fleet))
        #expect(stored.isEmpty)
        #expect(statements == 1 + 1 + 2 + 16, "\(statements) statements")
    }
}
