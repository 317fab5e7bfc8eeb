import FleetwatchStorage
import Logging
import PostgresNIO
import Synchronization

/// A client that counts the calls asked of it before passing them on to its pool: a test knows that a call has
/// reached the pool (and waits there, while the test holds the pool's connections) instead of guessing with a sleep.
public final class CountingClient: PostgresQuerying {
    public let inner: PostgresClient
    private let asked = Mutex(0)

    public init(_ inner: PostgresClient) { self.inner = inner }

    /// Queries and leases asked for so far.
    public var calls: Int { asked.withLock { $0 } }

    public func query(_ query: PostgresQuery, logger: Logger?, file: String, line: Int) async throws -> PostgresRowSequence {
        asked.withLock { $0 += 1 }
        return try await inner.query(query, logger: logger, file: file, line: line)
    }

    public func withLeasedConnection<Result>(_ body: (PostgresConnection) async throws -> Result) async throws -> Result {
        asked.withLock { $0 += 1 }
        return try await inner.withConnection(body)
    }
}
