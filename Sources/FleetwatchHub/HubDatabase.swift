import FleetwatchStorage
import Logging
import PostgresNIO

/// The hub's PostgreSQL: the configured server, or the embedded cluster started on demand.
public struct HubDatabase: Sendable {
    public let url: DatabaseURL
    public let embedded: EmbeddedPostgres?

    /// Resolves the database address, starting the embedded cluster when no URL is configured.
    public static func open(_ configuration: HubConfiguration, logger: Logger) async throws -> HubDatabase {
        if let string = configuration.databaseURL {
            let url = try DatabaseURL(string)
            // One connection first: a wrong address, password or TLS setting is a clear error now, not a pool
            // retrying for ever; a server still starting is waited for (hub.database_start_timeout).
            try await DatabaseProbe.waitUntilReachable(url, patience: configuration.databaseStartTimeout, logger: logger)
            return HubDatabase(url: url, embedded: nil)
        }
        let embedded = EmbeddedPostgres(dataDirectory: configuration.dataDirectory, logger: logger)
        let (url, startedHere) = try embedded.start()
        try await DatabaseBootstrap.createDatabaseIfMissing(url, logger: logger)
        // A cluster that was already running belongs to another process (a running hub): leave it running.
        return HubDatabase(url: url, embedded: startedHere ? embedded : nil)
    }

    /// A client for this database (run it before use).
    public func makeClient(maxConnections: Int, logger: Logger) throws -> PostgresClient {
        PostgresClient(configuration: try url.clientConfiguration(maxConnections: maxConnections), backgroundLogger: logger)
    }

    /// Stops the embedded cluster, if this process started it.
    public func close() {
        embedded?.stop()
    }
}

/// Runs `body` with a running client, then shuts the client down.
public func withPostgresClient<T: Sendable>(_ client: PostgresClient,
                                            _ body: @Sendable @escaping (PostgresClient) async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { await client.run(); return nil }
        group.addTask { try await body(client) }
        defer { group.cancelAll() }
        while let result = try await group.next() {
            if let result { return result }
        }
        throw CancellationError()
    }
}
