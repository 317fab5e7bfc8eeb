import Logging
import PostgresNIO

/// What the database server says about itself: that it answers, the schema's version, the powers of the role
/// the hub connects as, and how far a read replica lags.
public struct ServerFacts: Sendable {
    let client: any PostgresQuerying
    let logger: Logger

    public init(client: any PostgresQuerying, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// One round trip; throws if the server does not answer.
    public func ping() async throws {
        _ = try await client.query("SELECT 1", logger: logger).decode(Int.self).first { _ in true }
    }

    /// The newest migration applied (0 before any).
    public func schemaVersion() async throws -> Int {
        try await client.query("SELECT COALESCE(max(version), 0) FROM schema_migrations", logger: logger)
            .decode(Int.self).first { _ in true } ?? 0
    }

    /// The connected role's name and the powers it has beyond owning objects (SUPERUSER, CREATEROLE, CREATEDB,
    /// REPLICATION, BYPASSRLS).
    public func rolePowers() async throws -> (role: String, powers: [String]) {
        let rows = try await client.query("""
            SELECT current_user::text, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls
            FROM pg_roles WHERE rolname = current_user
            """, logger: logger)
        for try await (user, superuser, createRole, createDB, replication, bypass) in rows.decode((String, Bool, Bool, Bool, Bool, Bool).self) {
            return (user, [superuser ? "SUPERUSER" : nil, createRole ? "CREATEROLE" : nil, createDB ? "CREATEDB" : nil,
                           replication ? "REPLICATION" : nil, bypass ? "BYPASSRLS" : nil].compactMap { $0 })
        }
        return ("", [])
    }

    /// The compression methods the server can use for large values (`default_toast_compression`'s choices:
    /// pglz always, lz4 when it was built with it).
    public func toastCompressions() async throws -> [String] {
        let rows = try await client.query("""
            SELECT u FROM pg_settings, unnest(enumvals) u WHERE name = 'default_toast_compression'
            """, logger: logger)
        var methods: [String] = []
        for try await method in rows.decode(String.self) { methods.append(method) }
        return methods
    }

    /// 0 when the server is a primary or has replayed everything it received; otherwise the seconds since the
    /// last transaction it replayed.
    public func replicationLag() async throws -> Double {
        let seconds = try await client.query("""
            SELECT CASE WHEN NOT pg_is_in_recovery() THEN 0::float8
                        WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0::float8
                        ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8, 0) END
            """, logger: logger).decode(Double.self).first { _ in true } ?? 0
        return max(0, seconds)
    }
}
