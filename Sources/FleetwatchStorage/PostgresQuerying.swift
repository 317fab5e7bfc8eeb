import Logging
import PostgresNIO

/// What the hub's components need of a database client: a statement, or a connection for a while. PostgresNIO's
/// `PostgresClient` is one; `DatabaseClient` (several hosts, moving to the writable primary after a failover)
/// is another.
public protocol PostgresQuerying: Sendable {
    @discardableResult
    func query(_ query: PostgresQuery, logger: Logger?, file: String, line: Int) async throws -> PostgresRowSequence
    /// `body` with one connection of the pool, returned afterwards.
    func withLeasedConnection<Result>(_ body: (PostgresConnection) async throws -> Result) async throws -> Result
}

extension PostgresClient: PostgresQuerying {
    public func withLeasedConnection<Result>(_ body: (PostgresConnection) async throws -> Result) async throws -> Result {
        try await withConnection(body)
    }
}

extension PostgresQuerying {
    @discardableResult
    public func query(_ query: PostgresQuery, logger: Logger, file: String = #fileID, line: Int = #line) async throws -> PostgresRowSequence {
        try await self.query(query, logger: Optional(logger), file: file, line: line)
    }
}
