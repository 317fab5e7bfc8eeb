import FleetwatchIngest
import FleetwatchProtocol
import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import PostgresNIO
import Testing

/// A run of one connection's batches in one statement stores each batch exactly once, as one by one would:
/// the batches at or below the stream's stored sequence are duplicates, the rest get their own rows, and the
/// ledger counts every stored batch and sample.
@Suite(.enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct BatchRunStoreTests {
    let logger = Logger(label: "test")
    let t = PostgresStoreTests()

    @Test func aRunStoresEachBatchOnceAndCountsThemInTheLedger() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["bot-1"], token: "secret", in: db)
        try await db.withClient { (client: PostgresClient) async throws -> Void in
            let (store, hello, session) = try await t.acceptedSession(client)
            #expect(try await store.store(run: [t.batch(1), t.batch(2), t.batch(3, values: [7])], session: session) == [.stored, .stored, .stored])
            // Resent after a reconnect, overlapping what is stored: 2 and 3 are duplicates, 4 and 6 new (a gap is allowed).
            #expect(try await store.store(run: [t.batch(2), t.batch(3), t.batch(4), t.batch(6, values: [9])], session: session)
                    == [.duplicate, .duplicate, .stored, .stored])
            // Everything already stored: a run of duplicates writes nothing.
            #expect(try await store.store(run: [t.batch(4), t.batch(6)], session: session) == [.duplicate, .duplicate])
            let rows = try await client.query("SELECT seq, cardinality(vals) FROM samples ORDER BY seq", logger: logger)
                .decode((Int64, Int32).self).all()
            #expect(rows.map(\.0) == [1, 2, 3, 4, 6])
            #expect(rows.map(\.1) == [2, 2, 1, 2, 1])
            let ledger = try await client.query("""
                SELECT stored_through, batches, samples_sent, samples_stored FROM ingest_streams WHERE epoch = 5
                """, logger: logger).decode((Int64, Int64, Int64, Int64).self).all()
            // Sent samples: three per batch (two values and a state) but two for batches 3 and 6.
            #expect(ledger.count == 1 && ledger[0] == (6, 5, 13, 13))
            // A connection that lost the lease writes nothing of its run.
            guard case .accepted(let again) = try await store.authenticate(hello, connectionID: UUID(), hub: "h") else { return }
            #expect(again.storedSequence == 6)
            #expect(try await store.store(run: [t.batch(7), t.batch(8)], session: session) == [.leaseLost, .leaseLost])
            #expect(try await store.store(run: [t.batch(7), t.batch(8)], session: again) == [.stored, .stored])
            #expect(try await client.query("SELECT count(*) FROM samples", logger: logger).decode(Int64.self).all() == [7])
        }
    }
}
