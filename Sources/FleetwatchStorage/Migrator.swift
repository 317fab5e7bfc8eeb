import FleetwatchSchema
import Logging
import PostgresNIO

/// Applies `schema/` migrations in order, each in its own transaction, recorded in `schema_migrations`.
/// Replicas starting together serialize on an advisory lock, so each migration runs once.
public struct Migrator: Sendable {
    let client: any PostgresQuerying
    let logger: Logger
    let migrations: [Migration]

    /// Advisory lock key shared by every hub replica ("fleetwatch" in ASCII, truncated).
    static let lockKey: Int64 = 0x666C_6565_7477_6174

    public init(client: any PostgresQuerying, logger: Logger, migrations: [Migration] = Schema.migrations) {
        self.client = client
        self.logger = logger
        self.migrations = migrations
    }

    /// Applies what is missing; returns the versions applied now.
    @discardableResult
    public func migrate() async throws -> [Int] {
        try await client.withLeasedConnection { conn in
            try await conn.query("SELECT pg_advisory_lock(\(Self.lockKey))", logger: logger)
            do {
                let applied = try await Self.applied(conn, logger: logger)
                var done: [Int] = []
                for m in migrations where !applied.contains(m.version) {
                    logger.info("applying migration \(m.version) \(m.name)")
                    try await conn.withTransaction(logger: logger) { tx in
                        for statement in SQLSplitter.split(m.sql) {
                            try await tx.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                        }
                        try await tx.query("INSERT INTO schema_migrations (version, name) VALUES (\(m.version), \(m.name))",
                                           logger: logger)
                    }
                    done.append(m.version)
                }
                try await conn.query("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: logger)
                return done
            } catch {
                _ = try? await conn.query("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: logger)
                throw error
            }
        }
    }

    /// The newest applied version, or 0.
    public func currentVersion() async throws -> Int {
        try await client.withLeasedConnection { conn in
            try await Self.applied(conn, logger: logger).max() ?? 0
        }
    }

    static func applied(_ conn: PostgresConnection, logger: Logger) async throws -> Set<Int> {
        try await conn.query("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())
            """, logger: logger)
        var versions = Set<Int>()
        for try await v in try await conn.query("SELECT version FROM schema_migrations", logger: logger).decode(Int.self) {
            versions.insert(v)
        }
        return versions
    }
}
