import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import PostgresNIO

/// A fresh, migrated database for one benchmark run, with `bots` registered under `token`.
struct BenchDatabase {
    let database: TestDatabase
    var url: DatabaseURL { database.url }

    static func create(server: String, bots: [String], token: String, logger: Logger) async throws -> BenchDatabase {
        let db = BenchDatabase(database: try await TestDatabase.create(on: DatabaseURL(server), prefix: "fw_bench_", logger: logger))
        try await db.withClient(logger: logger) { client in
            try await Migrator(client: client, logger: logger).migrate()
            try await PartitionMaintainer(client: client, logger: logger).ensureWindow()
            let hash = BotToken.hash(token)
            try await client.query("""
                INSERT INTO bots (name, token_hash) SELECT unnest(\(bots)::text[]), \(hash)
                """, logger: logger)
        }
        return db
    }

    func withClient<T: Sendable>(logger: Logger, _ body: @Sendable @escaping (PostgresClient) async throws -> T) async throws -> T {
        try await database.withClient(logger: logger, body)
    }

    /// On-disk bytes of the samples partitions (with indexes, TOAST) and of the batch ledger.
    func sizes(logger: Logger) async throws -> (samples: Int64, ledger: Int64, rows: Int64) {
        try await withClient(logger: logger) { client in
            try await client.query("CHECKPOINT", logger: logger)
            let samples = try await client.query("""
                SELECT COALESCE(sum(pg_total_relation_size(inhrelid)), 0)::int8 FROM pg_inherits WHERE inhparent = 'samples'::regclass
                """, logger: logger).decode(Int64.self).all().first ?? 0
            let ledger = try await client.query("SELECT pg_total_relation_size('ingest_streams')::int8", logger: logger)
                .decode(Int64.self).all().first ?? 0
            let rows = try await client.query("SELECT count(*) FROM samples", logger: logger).decode(Int64.self).all().first ?? 0
            return (samples, ledger, rows)
        }
    }
}

