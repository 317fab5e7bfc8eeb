import FleetwatchProcesses
import FleetwatchProtocol
import FleetwatchStorage
import Logging
import PostgresNIO

/// The hub's PostgreSQL: the configured server, or the embedded cluster started on demand.
public struct HubDatabase: Sendable {
    public let url: DatabaseURL
    public let embedded: EmbeddedPostgres?
    /// A superuser's address, for the few tasks the hub's own role may not do (creating analysts' logins): the
    /// embedded cluster's, or `FLEETWATCH_ADMIN_DATABASE_URL` (or its `_FILE`).
    public let adminURL: DatabaseURL?
    /// The host of `url` found fitting at start (its index in `url.endpoints`): the writable primary unless the
    /// address says otherwise (`target_session_attrs`).
    public var endpoint = 0

    /// Resolves the database address, starting the embedded cluster when no URL is configured.
    public static func open(_ configuration: HubConfiguration, logger: Logger) async throws -> HubDatabase {
        if let string = configuration.databaseURL {
            var url = try DatabaseURL(string)
            if url.password == nil { url.password = configuration.databasePassword }
            // One connection first: a wrong address, password or TLS setting is a clear error now, not a pool
            // retrying for ever; a server still starting is waited for (hub.database_start_timeout).
            let endpoint = try await DatabaseProbe.waitUntilReachable(url, patience: configuration.databaseStartTimeout, logger: logger)
            return HubDatabase(url: url, embedded: nil, adminURL: try configuration.adminURL(), endpoint: endpoint)
        }
        let embedded = EmbeddedPostgres(dataDirectory: configuration.dataDirectory, logger: logger)
        let (url, admin, startedHere) = try embedded.start()
        if let admin {
            try await DatabaseBootstrap.ensureHubRole(admin: admin, role: url.username, password: url.password ?? "",
                                                      database: url.database, logger: logger)
        } else {
            try await DatabaseBootstrap.createDatabaseIfMissing(url, logger: logger)
        }
        // A cluster that was already running belongs to another process (a running hub): leave it running.
        return HubDatabase(url: url, embedded: startedHere ? embedded : nil, adminURL: admin)
    }

    /// A client for this database (run it before use).
    /// A client for this database (run it before use); with `statementTimeout`, PostgreSQL cancels any of its
    /// statements that runs longer.
    public func makeClient(maxConnections: Int, statementTimeout: Duration? = nil, logger: Logger) throws -> PostgresClient {
        try DatabaseClient.makeClient(url, endpoint: endpoint, maxConnections: maxConnections, statementTimeout: statementTimeout, logger: logger)
    }

    /// Stops the embedded cluster, if this process started it.
    public func close() {
        embedded?.stop()
    }

    /// Warns when the hub's role can do more than own fleetwatch's objects.
    static func warnIfPrivileged(_ client: any PostgresQuerying, logger: Logger) async {
        do {
            let (user, powers) = try await ServerFacts(client: client, logger: logger).rolePowers()
            if !powers.isEmpty {
                logger.warning("""
                    the hub connects to PostgreSQL as \(user), which has \(powers.joined(separator: ", ")): \
                    give it a role that owns only fleetwatch's database (monitor-hub database init, docs/security.md "The database role")
                    """)
            }
        } catch {
            logger.debug("cannot check the database role's privileges: \(String(reflecting: error))")
        }
    }
}

extension HubConfiguration {
    /// `FLEETWATCH_ADMIN_DATABASE_URL`, with `FLEETWATCH_ADMIN_DATABASE_PASSWORD` when the URL has no password.
    func adminURL() throws -> DatabaseURL? {
        guard let string = adminDatabaseURL else { return nil }
        var url = try DatabaseURL(string)
        if url.password == nil { url.password = adminDatabasePassword }
        return url
    }
}
