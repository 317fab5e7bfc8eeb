import FleetwatchProtocol
import Foundation
import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// The hub's connection pool on an address with one or several hosts (`host1:5432,host2:5432`), the way libpq
/// reads it: it uses the first host that satisfies `target_session_attrs`, and when `DatabaseHealth` finds that
/// host gone or no longer writable it moves the pool to the host that is (`switchTo`) — a promoted standby after
/// a failover — without restarting anything. Statements in flight on the old host fail (a batch is not
/// acknowledged and is sent again); the old pool is shut down a little later.
public final class DatabaseClient: PostgresQuerying {
    public let url: DatabaseURL
    let maxConnections: Int
    let statementTimeout: Duration?
    /// Settings every connection of the pool starts with (`SET name = value`), e.g. `default_toast_compression`.
    let sessionSettings: [(String, String)]
    let logger: Logger

    private struct Current {
        var client: PostgresClient
        var endpoint: Int
        var task: Task<Void, Never>?
        /// Opened when this pool's `run()` is called: its statements wait for it.
        var started: StartGate
    }
    private let current: Mutex<Current>
    /// How long an abandoned pool is kept for the statements still using it.
    static let retireAfter: Duration = .seconds(5)

    public init(url: DatabaseURL, maxConnections: Int, statementTimeout: Duration? = nil, sessionSettings: [(String, String)] = [],
                endpoint: Int = 0, logger: Logger) throws {
        self.url = url
        self.maxConnections = maxConnections
        self.statementTimeout = statementTimeout
        self.sessionSettings = sessionSettings
        self.logger = logger
        let client = try Self.makeClient(url, endpoint: endpoint, maxConnections: maxConnections, statementTimeout: statementTimeout,
                                         sessionSettings: sessionSettings, logger: logger)
        current = Mutex(Current(client: client, endpoint: endpoint, task: nil, started: StartGate()))
    }

    /// Another pool of `maxConnections` to the host this one uses now, with the same statement timeout (not its
    /// session settings): connections of their own for other work, moved along by `DatabaseHealth` as a follower.
    public func beside(maxConnections: Int) throws -> DatabaseClient {
        try DatabaseClient(url: url, maxConnections: maxConnections, statementTimeout: statementTimeout,
                           endpoint: current.withLock { $0.endpoint }, logger: logger)
    }

    /// A PostgresNIO pool for one host of `url`; with `statementTimeout`, PostgreSQL cancels any statement that
    /// runs longer. `sessionSettings` travel in each connection's start-up message: a value the server refuses
    /// fails every connection, so check it first.
    public static func makeClient(_ url: DatabaseURL, endpoint: Int = 0, maxConnections: Int, statementTimeout: Duration?,
                                  sessionSettings: [(String, String)] = [], logger: Logger) throws -> PostgresClient {
        var configuration = try url.clientConfiguration(maxConnections: maxConnections, endpoint: url.endpoints[endpoint])
        if let statementTimeout, statementTimeout > .zero {
            let ms = statementTimeout.wholeMilliseconds
            configuration.options.additionalStartupParameters.append(("statement_timeout", "\(ms)"))
        }
        configuration.options.additionalStartupParameters += sessionSettings
        return PostgresClient(configuration: configuration, backgroundLogger: logger)
    }

    /// The index (in `url.endpoints`) of the host in use.
    public var endpoint: Int { current.withLock { $0.endpoint } }

    /// Runs the pool (and any it is moved to) until the task is cancelled.
    public func run() async {
        current.withLock { c in
            let (client, started) = (c.client, c.started)
            c.task = Task { await client.run(opening: started) }
        }
        await withTaskCancellationHandler {
            while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
        } onCancel: {
            current.withLock { $0.task?.cancel() }
        }
    }

    /// Returns once `run()` has started the pool in use (`StartGate`). Every statement waits for its pool's start
    /// too, including a pool moved to another host (`switchTo`), so PostgresNIO does not warn that a pool was used
    /// before it ran (`StartGate.openShortly`); the hub also awaits this before its first statement.
    /// Call it only once `run()` has been started: it waits for that.
    public func started() async {
        await current.withLock { $0.started }.wait()
    }

    /// Moves the pool to host `endpoint` (a new pool; the old one is shut down after `retireAfter`).
    public func switchTo(endpoint: Int) throws {
        let client = try Self.makeClient(url, endpoint: endpoint, maxConnections: maxConnections, statementTimeout: statementTimeout,
                                         sessionSettings: sessionSettings, logger: logger)
        let started = StartGate()
        let task = Task { await client.run(opening: started) }
        let old = current.withLock { c -> Task<Void, Never>? in
            defer { c = Current(client: client, endpoint: endpoint, task: task, started: started) }
            return c.task
        }
        logger.notice("PostgreSQL: now using \(url.endpoints[endpoint].display)")
        if let old {
            Task {
                try? await Task.sleep(for: Self.retireAfter)
                old.cancel()
            }
        }
    }

    /// How long a statement through `query` may go unanswered (`statementTimeout` and a margin; none without it):
    /// PostgresNIO never answers one its pool sent to a connection the server had just closed, and a service loop
    /// waiting for it (command delivery, alert evaluation) would stop for good. The batch writer's deadline too.
    public var answerDeadline: Duration? {
        guard let statementTimeout, statementTimeout > .zero else { return nil }
        return statementTimeout + .seconds(15)
    }

    @discardableResult
    public func query(_ query: PostgresQuery, logger: Logger?, file: String, line: Int) async throws -> PostgresRowSequence {
        let (client, started) = current.withLock { ($0.client, $0.started) }
        await started.wait()
        guard let deadline = answerDeadline else { return try await client.query(query, logger: logger, file: file, line: line) }
        return try await StatementWatch.answered(within: deadline) {
            try await client.query(query, logger: logger, file: file, line: line)
        }
    }

    public func withLeasedConnection<Result>(_ body: (PostgresConnection) async throws -> Result) async throws -> Result {
        let (client, started) = current.withLock { ($0.client, $0.started) }
        await started.wait()
        return try await client.withConnection(body)
    }
}
