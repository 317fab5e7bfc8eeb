import FleetwatchStorage
import Foundation
import Logging
import PostgresNIO

/// A fresh, migrated database for one benchmark run, with `bots` registered under `token`.
struct BenchDatabase {
    let url: DatabaseURL

    static func create(server: String, bots: [String], token: String, logger: Logger) async throws -> BenchDatabase {
        var url = try DatabaseURL(server)
        url.database = "fw_bench_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(10).lowercased()
        try await DatabaseBootstrap.createDatabaseIfMissing(url, logger: logger)
        let db = BenchDatabase(url: url)
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
        let client = PostgresClient(configuration: url.clientConfiguration(maxConnections: 4), backgroundLogger: logger)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { await client.run(); return nil }
            group.addTask { try await body(client) }
            defer { group.cancelAll() }
            while let r = try await group.next() { if let r { return r } }
            throw CancellationError()
        }
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

extension AsyncSequence where Self: Sendable {
    func all() async throws -> [Element] {
        var out: [Element] = []
        for try await e in self { out.append(e) }
        return out
    }
}
