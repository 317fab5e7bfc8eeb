import Foundation
import Logging
import NIOCore
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// Whether PostgreSQL answers, known within seconds rather than when a pool gives up: once a second it runs
/// `SELECT 1` on a connection of its own (made again whenever it fails), with a short deadline. The state is read
/// without waiting (readiness, the API's fast 503, ingest), and its changes are logged and sent to `onChange`.
public final class DatabaseHealth: Service, Sendable {
    public enum State: Sendable, Equatable {
        case up
        case down(since: Date, reason: String)
    }

    let url: DatabaseURL
    let interval: Duration
    let deadline: Duration
    let logger: Logger
    private let state = Mutex<State>(.up)
    private let listeners = Mutex<[@Sendable (State) -> Void]>([])
    /// Called once when the database goes down (`untilDown`, `failFast`).
    private let waiters = Mutex<(next: Int, callbacks: [Int: @Sendable () -> Void])>((0, [:]))

    /// The pool to move when the host in use is gone or no longer fits `target_session_attrs` (several hosts).
    let client: DatabaseClient?
    /// Other pools to the same server, moved with it (the operators' pool).
    let followers: [DatabaseClient]

    public init(url: DatabaseURL, client: DatabaseClient? = nil, followers: [DatabaseClient] = [], interval: Duration = .seconds(1),
                deadline: Duration = .seconds(2), logger: Logger) {
        self.url = url
        self.client = client
        self.followers = followers
        self.interval = interval
        self.deadline = deadline
        self.logger = logger
    }

    public var current: State { state.withLock { $0 } }
    public var isUp: Bool { current == .up }

    /// Calls `listener` on every change (from the probing task).
    public func onChange(_ listener: @escaping @Sendable (State) -> Void) {
        listeners.withLock { $0.append(listener) }
    }

    /// Returns once the database is known to be down (at once if it is), or when the task is cancelled.
    public func untilDown() async {
        let id = waiters.withLock { w -> Int in
            w.next += 1
            return w.next
        }
        let once = ResumeOnce<Void>()
        await withTaskCancellationHandler {
            _ = try? await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                once.set(c)
                if Task.isCancelled || !whenDown(id: id, { once.resume(.success(())) }) { once.resume(.success(())) }
            }
        } onCancel: {
            _ = waiters.withLock { $0.callbacks.removeValue(forKey: id) }
            once.resume(.success(()))
        }
    }

    /// Runs `body` unless the database is known to be down, and gives up on it (`DatabaseUnavailable`) the moment
    /// the database is noticed down, without waiting for it: a pool wait or a query on a connection to a dead
    /// server may take a minute to fail. A `body` given up on is cancelled: one still waiting for a pooled
    /// connection gives up instead of writing once the database is back, after its caller was told it failed (an
    /// operator's stop answered by break glass, an alert notified without its row, a batch left unacknowledged). A
    /// statement already in PostgreSQL may still commit (postgres-nio sends no cancel request), so `body` must be
    /// safe to have happened after all: deduplicated (batches, leases), a read, or found again by its id (stops).
    /// Cancelling the caller cancels `body` too. `cancelling: false` leaves a `body` given up on to finish by itself:
    /// for a step whose late effect is wanted (a lease given back).
    public func failFast<T: Sendable>(cancelling: Bool = true, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        guard case .up = current else { throw DatabaseUnavailable(state: current) }
        let id = waiters.withLock { w -> Int in
            w.next += 1
            return w.next
        }
        return try await raceGiveUp(cancelOnGiveUp: cancelling, arm: { giveUp in
            let registered = whenDown(id: id) { [weak self] in giveUp(DatabaseUnavailable(state: self?.current ?? .up), nil) }
            if !registered { giveUp(DatabaseUnavailable(state: current), nil) }
            return { _ = self.waiters.withLock { $0.callbacks.removeValue(forKey: id) } }
        }, body)
    }

    /// Registers `callback` for the next change to down; false (not registered) if the database is down now.
    private func whenDown(id: Int, _ callback: @escaping @Sendable () -> Void) -> Bool {
        waiters.withLock { w -> Bool in
            guard state.withLock({ $0 == .up }) else { return false }
            w.callbacks[id] = callback
            return true
        }
    }

    /// Records what a caller saw (a pool error): a failure marks the database down until the next good probe.
    public func observed(failure reason: String) {
        set(.down(since: Date(), reason: reason))
    }

    private func set(_ new: State) {
        let changed = state.withLock { s -> Bool in
            switch (s, new) {
            case (.up, .up), (.down, .down): return false
            default:
                s = new
                return true
            }
        }
        guard changed else { return }
        if case .down = new {
            let waiting = waiters.withLock { w -> [@Sendable () -> Void] in
                defer { w.callbacks = [:] }
                return Array(w.callbacks.values)
            }
            for callback in waiting { callback() }
        }
        switch new {
        case .up: logger.notice("PostgreSQL answers again")
        case .down(_, let reason): logger.error("PostgreSQL unreachable: \(reason)")
        }
        for l in listeners.withLock({ $0 }) { l(new) }
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown { await self.probeLoop() }
    }

    private func probeLoop() async {
        var connection: PostgresConnection?
        var connectedTo = -1
        // A probe that merely ran out of time may be a starved machine rather than a dead database (one bot
        // flooding a busy hub must not make it declare an outage for everyone): only the second one in a row
        // counts. A refused or broken connection counts at once.
        var timeouts = 0
        defer { if let connection { Task { try? await connection.close() } } }
        while !Task.isCancelled {
            let target = client?.endpoint ?? 0
            do {
                if connection == nil || connectedTo != target {
                    if let c = connection { Task { try? await c.close() } }
                    connection = nil
                    connection = try await self.connect(target)
                    connectedTo = target
                }
                let standby = try await self.ping(connection!)
                guard Self.acceptable(url.targetSessionAttrs, standby: standby) else {
                    throw WrongRole(endpoint: url.endpoints[target].display, standby: standby)
                }
                self.logger.trace("PostgreSQL answered the health probe")
                timeouts = 0
                self.set(.up)
            } catch is CancellationError {
                break
            } catch {
                if let c = connection { Task { try? await c.close() } }
                connection = nil
                if error is TimedOut {
                    timeouts += 1
                    if timeouts < 2 {
                        logger.info("PostgreSQL did not answer the health probe within \(deadline); probing again")
                        try? await Task.sleep(for: self.interval)
                        continue
                    }
                }
                // Several hosts: the one that fits now (a promoted standby) takes over, without a restart.
                if let client, url.endpoints.count > 1, let other = await findEndpoint(), other != target {
                    // Down for an instant: whatever waits on the old host gives up now (batches are deferred and
                    // sent again), and the next probe, on the new host, brings everything back.
                    self.set(.down(since: Date(), reason: "moving from \(url.endpoints[target].display) to \(url.endpoints[other].display)"))
                    do {
                        try client.switchTo(endpoint: other)
                        for follower in followers { try follower.switchTo(endpoint: other) }
                        logger.notice("PostgreSQL: \(url.endpoints[target].display) is gone or no longer fits target_session_attrs=\(url.targetSessionAttrs.rawValue) (\(Self.describe(error, url: url))); moved to \(url.endpoints[other].display)")
                        continue
                    } catch {
                        logger.error("PostgreSQL: cannot move to \(url.endpoints[other].display): \(error)")
                    }
                }
                self.set(.down(since: Date(), reason: Self.describe(error, url: self.url)))
            }
            try? await Task.sleep(for: self.interval)
        }
    }

    /// The server in use answered, but it is not what `target_session_attrs` asks for.
    struct WrongRole: Error, CustomStringConvertible {
        let endpoint: String
        let standby: Bool
        var description: String { "\(endpoint) is \(standby ? "a standby (read-only)" : "a primary")" }
    }

    /// Whether a server that is (`standby`) or is not in recovery fits `attrs`. read-write and primary are judged
    /// by `pg_is_in_recovery()`.
    public static func acceptable(_ attrs: DatabaseURL.TargetSessionAttrs, standby: Bool) -> Bool {
        switch attrs {
        case .any, .preferStandby: return true
        case .readWrite, .primary: return !standby
        case .readOnly, .standby: return standby
        }
    }

    /// The first host, in the address's order, that answers and fits `target_session_attrs` (for prefer-standby:
    /// a standby if one answers); nil if none does.
    func findEndpoint() async -> Int? {
        var reachable: [(Int, Bool)] = []
        for i in url.endpoints.indices {
            do {
                let c = try await connect(i)
                defer { Task { try? await c.close() } }
                reachable.append((i, try await ping(c)))
            } catch {
                continue
            }
        }
        if url.targetSessionAttrs == .preferStandby, let s = reachable.first(where: { $0.1 }) { return s.0 }
        return reachable.first { Self.acceptable(url.targetSessionAttrs, standby: $0.1) }?.0
    }

    private func connect(_ endpoint: Int) async throws -> PostgresConnection {
        try await withDeadline { [url, logger] in
            var config = try url.connectionConfiguration(endpoint: url.endpoints[endpoint])
            config.options.connectTimeout = .seconds(2)
            return try await PostgresConnection.connect(configuration: config, id: 1, logger: logger)
        }
    }

    /// `SELECT pg_is_in_recovery()`: whether the server is a standby.
    private func ping(_ connection: PostgresConnection) async throws -> Bool {
        try await withDeadline { [logger] in
            for try await standby in try await connection.query("SELECT pg_is_in_recovery()", logger: logger).decode(Bool.self) {
                return standby
            }
            return false
        }
    }

    private struct TimedOut: Error, CustomStringConvertible {
        let description = "no answer within the probe's deadline"
    }

    /// Runs `body`, giving up after `deadline` without waiting for it: a query on a connection to a dead server can
    /// ignore cancellation, so the body is left to end when the caller closes that connection.
    private func withDeadline<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let once = ResumeOnce<T>()
        return try await withCheckedThrowingContinuation { continuation in
            once.set(continuation)
            let work = Task {
                do { once.resume(.success(try await body())) } catch { once.resume(.failure(error)) }
            }
            Task { [deadline] in
                try? await Task.sleep(for: deadline)
                work.cancel()
                once.resume(.failure(TimedOut()))
            }
        }
    }

    /// Whether `error` means the database (or the way to it) is gone, rather than a problem with one statement:
    /// a closed or broken connection, a server shutting down (SQLSTATE class 57 but a statement timeout, class 08),
    /// a pool that cannot make connections, or a statement given up on for a dead connection (`StatementAbandoned`).
    public static func isConnectionLoss(_ error: any Error) -> Bool {
        if error is StatementAbandoned { return true }
        if let p = error as? PSQLError {
            switch p.code {
            case .clientClosedConnection, .serverClosedConnection, .connectionError, .uncleanShutdown, .poolClosed: return true
            case .server:
                guard let state = p.serverInfo?[.sqlState] else { return false }
                return (state.hasPrefix("57") && state != "57014") || state.hasPrefix("08")
            default: return false
            }
        }
        return String(describing: type(of: error)).contains("ConnectionPoolError")
    }

    static func describe(_ error: any Error, url: DatabaseURL) -> String {
        if let p = error as? PSQLError { return DatabaseProbe.explain(p, url: url, endpoint: url.endpoints[0]).description }
        return String(describing: error)
    }
}

/// What `DatabaseHealth.failFast` throws while PostgreSQL is unreachable: nothing was done that the caller can
/// count on (a batch is not acknowledged, a request answers 503).
public struct DatabaseUnavailable: Error, CustomStringConvertible, Sendable {
    public let state: DatabaseHealth.State
    public init(state: DatabaseHealth.State) { self.state = state }
    public var description: String {
        if case .down(_, let reason) = state { return "PostgreSQL is unreachable: \(reason)" }
        return "PostgreSQL is unreachable"
    }
}

extension PSQLError {
    /// Whether PostgreSQL refused the statement for its data (a data exception, class 22, or an integrity violation,
    /// class 23), not for the database's state.
    public var refusesTheData: Bool {
        guard let state = serverInfo?[.sqlState] else { return false }
        return state.hasPrefix("22") || state.hasPrefix("23")
    }
}
