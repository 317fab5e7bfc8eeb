import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization

/// Gives up on a statement whose answer can no longer come, so whoever waits for it (a `BatchWriter` slot) is free.
///
/// PostgresNIO (1.33) hands a statement to a connection's channel without a way to learn that the write failed: a
/// statement that reaches a connection the server has just closed (PostgreSQL restarted under a busy hub: the pool
/// leased the connection an instant before it saw the close) is never answered, and the task awaiting it waits
/// forever. A statement in flight when the connection closes fails at once; so when the connection has closed and
/// the statement has still not ended `grace` later, it never will. A statement that has not ended by `deadline`
/// (`hub.statement_timeout` and a margin: PostgreSQL would have cancelled it by then) is given up on as well: its
/// connection is dead without having closed (a host gone from the network).
///
/// Giving up throws `StatementAbandoned`, which counts as a lost connection (`DatabaseHealth.isConnectionLoss`): a
/// batch is not acknowledged and is sent again (its ledger row tells whether it was stored). The connection is
/// closed, so the pool does not lend it out again with the given-up statement ahead in its queue. The abandoned statement's
/// task is cancelled and left behind: one PostgresNIO never answers does not end, and keeps what it captured — one
/// statement's data per such event. `answered(within:)` is the deadline alone, for statements through the pool.
final class StatementWatch: Sendable {
    let grace: Duration
    let deadline: Duration?

    /// Statements waiting on each connection, to give up on when it closes.
    private struct Watched {
        var waiters: [Int: @Sendable () -> Void] = [:]
    }
    private let watched = Mutex<(next: Int, connections: [ObjectIdentifier: Watched])>((0, [:]))

    init(grace: Duration = .seconds(2), deadline: Duration? = nil) {
        self.grace = grace
        self.deadline = deadline
    }

    /// `body` on `connection`, or `StatementAbandoned` once `connection` has closed and `body` has not ended within
    /// `grace`, or `deadline` after it started. Cancelling the caller cancels `body`.
    func run<T: Sendable>(on connection: PostgresConnection,
                          _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let key = ObjectIdentifier(connection)
        let loop = connection.eventLoop
        return try await raceGiveUp(cancelOnGiveUp: true, arm: { giveUp in
            // Closed before the caller goes on (and gives the connection back to the pool), so the pool does not
            // lend it again with the given-up statement still ahead in its queue.
            let abandon: @Sendable (StatementAbandoned) -> Void = { error in giveUp(error, { try? await connection.close() }) }
            let id = register(connection, key: key) { [grace] in
                loop.scheduleTask(in: TimeAmount(grace)) { abandon(StatementAbandoned(reason: .connectionClosed, after: grace)) }
            }
            // An event-loop timer, removed when the statement ends (a cancelled `Task.sleep` keeps its wake-up
            // scheduled until the full deadline: tens of thousands of them at a busy hub's statement rate).
            let timer = deadline.map { deadline in
                loop.scheduleTask(in: TimeAmount(deadline)) { abandon(StatementAbandoned(reason: .noAnswer, after: deadline)) }
            }
            return {
                timer?.cancel()
                if let id { self.unregister(key: key, id: id) }
            }
        }, { try await body(connection) })
    }

    /// `body` (a statement through the pool, whose connection the caller does not see), or `QueryUnanswered` if it has
    /// not ended within `deadline`; it is then cancelled and left to end (a wait for a pooled connection leaves the
    /// pool's queue). Cancelling the caller cancels `body`.
    static func answered<T: Sendable>(within deadline: Duration, on loop: any EventLoop = NIOSingletons.posixEventLoopGroup.any(),
                                      _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await raceGiveUp(cancelOnGiveUp: true, arm: { giveUp in
            let timer = loop.scheduleTask(in: TimeAmount(deadline)) { giveUp(QueryUnanswered(after: deadline), nil) }
            return { timer.cancel() }
        }, body)
    }

    /// Registers `callback` for the close of `connection`: nil (and the callback is called) if it is closed already.
    private func register(_ connection: PostgresConnection, key: ObjectIdentifier, _ callback: @escaping @Sendable () -> Void) -> Int? {
        if connection.isClosed {
            callback()
            return nil
        }
        let (id, first) = watched.withLock { w -> (Int, Bool) in
            w.next += 1
            let first = w.connections[key] == nil
            w.connections[key, default: Watched()].waiters[w.next] = callback
            return (w.next, first)
        }
        // One callback on the close future per connection, not one per statement: a pooled connection lives long.
        // It holds the connection, so no other object takes its address (the key) while the entry exists.
        if first {
            connection.closeFuture.whenComplete { _ in
                _ = connection
                let waiting = self.watched.withLock { $0.connections.removeValue(forKey: key)?.waiters.values.map { $0 } ?? [] }
                for callback in waiting { callback() }
            }
        }
        return id
    }

    private func unregister(key: ObjectIdentifier, id: Int) {
        watched.withLock { w in
            guard w.connections[key] != nil else { return }
            w.connections[key]!.waiters[id] = nil
        }
    }

    /// Connections with a close callback registered, and statements waiting on them (for tests: entries must not
    /// pile up).
    var watchedConnections: Int { watched.withLock { $0.connections.count } }
    var watchedStatements: Int { watched.withLock { $0.connections.values.reduce(0) { $0 + $1.waiters.count } } }
}

/// A statement given up on (`StatementWatch`): whether it was carried out is unknown.
public struct StatementAbandoned: Error, CustomStringConvertible, Sendable {
    public enum Reason: Sendable, Equatable {
        /// Its connection closed and it did not end.
        case connectionClosed
        /// No answer within the deadline.
        case noAnswer
    }
    public let reason: Reason
    public let after: Duration

    public var description: String {
        switch reason {
        case .connectionClosed:
            return "the connection to PostgreSQL closed under a statement that did not end within \(after) (whether it was carried out is unknown)"
        case .noAnswer:
            return "PostgreSQL did not answer a statement within \(after), past hub.statement_timeout (the connection is presumed dead; whether it was carried out is unknown)"
        }
    }
}

/// A statement through the pool with no answer within `hub.statement_timeout` and a margin, the wait for a connection
/// included (`StatementWatch.answered`): the connection it was sent on may have closed under it, or the pool is
/// saturated. Not counted as a lost connection; an API request gets 503.
public struct QueryUnanswered: Error, CustomStringConvertible, Sendable {
    public let after: Duration
    public var description: String {
        "PostgreSQL did not answer within \(after) (past hub.statement_timeout, the wait for a pooled connection included)"
    }
}
