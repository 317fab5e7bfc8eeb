import FleetwatchStorage
import Logging
import PostgresNIO
import Synchronization

/// A client that counts the calls asked of it before passing them on to its pool: a test knows that a call has
/// reached the pool (and waits there, while the test holds the pool's connections) instead of guessing with a sleep,
/// or how many statements a writer sent (each leases a connection once).
public final class CountingClient: PostgresQuerying {
    public let inner: PostgresClient
    private let counts = Mutex((queries: 0, leases: 0))

    public init(_ inner: PostgresClient) { self.inner = inner }

    /// Queries and leases asked for so far.
    public var calls: Int { counts.withLock { $0.queries + $0.leases } }
    /// Connections leased so far (`withLeasedConnection`).
    public var leases: Int { counts.withLock { $0.leases } }

    public func query(_ query: PostgresQuery, logger: Logger?, file: String, line: Int) async throws -> PostgresRowSequence {
        counts.withLock { $0.queries += 1 }
        return try await inner.query(query, logger: logger, file: file, line: line)
    }

    public func withLeasedConnection<Result>(_ body: (PostgresConnection) async throws -> Result) async throws -> Result {
        counts.withLock { $0.leases += 1 }
        return try await inner.withConnection(body)
    }
}
