import Logging
import PostgresNIO

/// Creates what the hub needs on a server before its first start.
public enum DatabaseBootstrap {
    /// The analysts' read-only role (migration 4 grants it the review views).
    public static let analystRole = "fleetwatch_analyst"

    /// Creates the hub's database on a server if it does not exist (the test databases, and embedded clusters
    /// made before least privilege, whose hub role may create databases).
    public static func createDatabaseIfMissing(_ url: DatabaseURL, logger: Logger) async throws {
        var admin = url
        admin.database = "postgres"
        try await withClient(admin, logger: logger) { client in
            try await createDatabase(url.database, owner: nil, client: client, logger: logger)
        }
    }

    /// Connected as a superuser (or a role with CREATEROLE and CREATEDB), makes the hub's role as least
    /// privilege wants it — it logs in and owns its database, and nothing else: not a superuser, cannot create
    /// roles or databases, cannot replicate — sets its password, creates its database owned by it (only it and the
    /// analysts' role may connect), and the analysts' role. Safe to run again; a second run only sets the password.
    public static func ensureHubRole(admin: DatabaseURL, role: String, password: String, database: String, logger: Logger) async throws {
        try await withClient(admin, logger: logger) { client in
            // Identifiers and the password cannot be bind parameters in DDL: PostgreSQL quotes them (format %I, %L)
            // from bound values, and the statement it returns is run as is.
            let roleExists = try await exists("SELECT 1 FROM pg_roles WHERE rolname = $1", role, client, logger)
            // Never demote a superuser (it may be the cluster's only one, or the one running this).
            if try await exists("SELECT 1 FROM pg_roles WHERE rolname = $1 AND (rolsuper OR rolname = current_user)", role, client, logger) {
                throw StorageError("""
                    the hub's role \(role) is a superuser (or the role making it): give the hub a role of its own \
                    (the user in FLEETWATCH_DATABASE_URL, e.g. fleetwatch) and keep the superuser for FLEETWATCH_ADMIN_DATABASE_URL
                    """)
            }
            try await run("""
                SELECT format('%s ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD %L',
                              $3::text, $1::text, $2::text)
                """, [role, password, roleExists ? "ALTER" : "CREATE"], client, logger)
            if !(try await exists("SELECT 1 FROM pg_roles WHERE rolname = $1", analystRole, client, logger)) {
                try await run("SELECT format('CREATE ROLE %I NOLOGIN', $1::text)", [analystRole], client, logger)
            }
            try await createDatabase(database, owner: role, client: client, logger: logger)
            try await run("SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', $1::text)", [database], client, logger)
            try await run("SELECT format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', $1::text, $2::text)", [database, analystRole],
                          client, logger)
            logger.info("database role \(role) ready (owner of database \(database), no other privileges)")
        }
    }

    private static func createDatabase(_ name: String, owner: String?, client: PostgresClient, logger: Logger) async throws {
        guard !(try await exists("SELECT 1 FROM pg_database WHERE datname = $1", name, client, logger)) else { return }
        if let owner {
            try await run("SELECT format('CREATE DATABASE %I OWNER %I', $1::text, $2::text)", [name, owner], client, logger)
        } else {
            try await run("SELECT format('CREATE DATABASE %I', $1::text)", [name], client, logger)
        }
        logger.info("created database \(name)")
    }

    private static func exists(_ sql: String, _ value: String, _ client: PostgresClient, _ logger: Logger) async throws -> Bool {
        var bindings = PostgresBindings()
        bindings.append(value)
        return try await client.query(PostgresQuery(unsafeSQL: sql, binds: bindings), logger: logger)
            .decode(Int.self).first { _ in true } != nil
    }

    /// Builds a statement server-side from bound values (`format`), then runs it.
    private static func run(_ builder: String, _ values: [String], _ client: PostgresClient, _ logger: Logger) async throws {
        var bindings = PostgresBindings()
        for v in values { bindings.append(v) }
        let statement = try await client.query(PostgresQuery(unsafeSQL: builder, binds: bindings), logger: logger)
            .decode(String.self).first { _ in true } ?? ""
        try await client.query(PostgresQuery(unsafeSQL: statement), logger: logger)
    }

    private static func withClient(_ url: DatabaseURL, logger: Logger, _ body: @Sendable @escaping (PostgresClient) async throws -> Void) async throws {
        let client = PostgresClient(configuration: try url.clientConfiguration(maxConnections: 1), backgroundLogger: logger)
        try await withRunningClient(client, body)
    }
}
