import Logging
import PostgresNIO

/// Read-only PostgreSQL logins in the analysts' role (`fleetwatch_analyst`), made through a role that may create
/// roles (a superuser's client): the hub's own role may not.
public struct Analysts: Sendable {
    let client: any PostgresQuerying
    let logger: Logger

    public init(client: any PostgresQuerying, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Creates the login `name` with `password`; fails if it exists.
    public func create(_ name: String, password: String) async throws {
        // The functions quote the name (format %I) and the password (%L).
        try await client.query("SELECT fleetwatch_create_analyst(\(name), \(password))", logger: logger)
    }

    /// Creates the login, or gives an existing analyst login this password; true if it was created. A login of that
    /// name outside the analysts' role is refused with PostgreSQL's message.
    public func ensure(_ name: String, password: String) async throws -> Bool {
        do {
            return try await client.query("SELECT fleetwatch_ensure_analyst(\(name), \(password))", logger: logger)
                .decode(Bool.self).first { _ in true } ?? false
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "P0001" {
            throw StorageError(error.serverInfo?[.message] ?? "PostgreSQL refused the login \(name)")
        }
    }
}
