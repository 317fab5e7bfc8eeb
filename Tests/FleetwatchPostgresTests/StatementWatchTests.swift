@testable import FleetwatchHub
import FleetwatchIngest
import FleetwatchProtocol
@testable import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Hummingbird
import Logging
import NIOCore
import PostgresNIO
import Synchronization
import Testing

/// Statements whose answer can no longer come are given up on, on a real PostgreSQL: a connection the server closed
/// (as a restart does), and a statement unanswered past its deadline.
@Suite(.enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct StatementWatchTests {
    let logger = Logger(label: "test")

    final class Count: Sendable {
        private let n = Mutex(0)
        func add() { n.withLock { $0 += 1 } }
        var value: Int { n.withLock { $0 } }
    }

    /// A connection of its own (not pooled) to `db`, and its server process id.
    func connect(_ db: TestDatabase) async throws -> (PostgresConnection, Int32) {
        let connection = try await PostgresConnection.connect(configuration: try db.url.connectionConfiguration(endpoint: db.url.endpoints[0]),
                                                              id: 1, logger: logger)
        let pid = try await connection.query("SELECT pg_backend_pid()", logger: logger).decode(Int32.self).all()[0]
        return (connection, pid)
    }

    final class Outcome<T: Sendable>: Sendable {
        let result = Mutex<Result<T, any Error>?>(nil)
    }

    /// How `body` ended, or nil if it has not within `limit` (it is left running): a watch that fails shows as a
    /// failed test, not as a test process that never ends.
    func ended<T: Sendable>(within limit: Duration, _ body: @escaping @Sendable () async throws -> T) async -> Result<T, any Error>? {
        let outcome = Outcome<T>()
        Task {
            let result: Result<T, any Error>
            do { result = .success(try await body()) } catch { result = .failure(error) }
            outcome.result.withLock { $0 = result }
        }
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if let result = outcome.result.withLock({ $0 }) { return result }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return outcome.result.withLock { $0 }
    }

    /// Whether `body` ended (either way) within `limit`.
    func ends(within limit: Duration, _ body: @escaping @Sendable () async throws -> Void) async -> Bool {
        await ended(within: limit, body) != nil
    }

    /// The error `body` threw within `limit`; nil, with an issue recorded, if it succeeded or did not end.
    func thrown<T: Sendable>(within limit: Duration, _ body: @escaping @Sendable () async throws -> T,
                             sourceLocation: SourceLocation = #_sourceLocation) async -> (any Error)? {
        switch await ended(within: limit, body) {
        case nil:
            Issue.record("did not end within \(limit): nothing gave up on the statement", sourceLocation: sourceLocation)
            return nil
        case .success(let value):
            Issue.record("succeeded (\(value)) where it should have been given up on", sourceLocation: sourceLocation)
            return nil
        case .failure(let error):
            return error
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func aStatementSentToAConnectionTheServerClosedIsGivenUp() async throws {
        let db = try await TestDatabase.create()
        let (connection, pid) = try await connect(db)
        try await db.withClient { client in
            _ = try await client.query("SELECT pg_terminate_backend(\(pid))", logger: logger)
        }
        #expect(try await eventually(.seconds(10)) { connection.isClosed })
        try await Task.sleep(for: .milliseconds(100))   // the channel lets go of its handlers after the close

        // What the watch is for: PostgresNIO never answers a statement written to a closed connection.
        #expect(!(await ends(within: .seconds(3)) { _ = try await connection.query("SELECT 1", logger: logger).all() }),
                "PostgresNIO now answers a statement on a closed connection: StatementWatch's close case may be obsolete")

        let watch = StatementWatch(grace: .milliseconds(200))
        let error = await thrown(within: .seconds(30)) {
            try await watch.run(on: connection) { try await $0.query("SELECT 1", logger: logger).all().count }
        }
        #expect((error as? StatementAbandoned)?.reason == .connectionClosed && error.map(DatabaseHealth.isConnectionLoss) == true,
                "\(String(describing: error))")
        #expect(watch.watchedConnections == 0)
    }

    /// A statement still waiting when its connection closes (here a body that does not end by itself, as a
    /// statement that was never answered) is given up on `grace` after the close, and cancelled.
    @Test(.timeLimit(.minutes(1)))
    func aStatementStillWaitingWhenItsConnectionClosesIsGivenUpAfterTheGrace() async throws {
        let db = try await TestDatabase.create()
        let (connection, pid) = try await connect(db)
        let watch = StatementWatch(grace: .milliseconds(300))
        let bodyCancelled = Count()
        let started = Count()
        let waiting = Task {
            try await watch.run(on: connection) { _ in
                started.add()
                do { try await Task.sleep(for: .seconds(40)) } catch { bodyCancelled.add(); throw error }
                return 1
            }
        }
        #expect(try await eventually(.seconds(10)) { started.value > 0 })
        #expect(watch.watchedStatements == 1)
        try await db.withClient { client in
            _ = try await client.query("SELECT pg_terminate_backend(\(pid))", logger: logger)
        }
        let closedAt = ContinuousClock.now
        await #expect {
            _ = try await waiting.value
        } throws: { error in
            (error as? StatementAbandoned)?.reason == .connectionClosed
        }
        #expect(ContinuousClock.now - closedAt < .seconds(20))
        #expect(try await eventually(.seconds(10)) { bodyCancelled.value > 0 })
        #expect(watch.watchedConnections == 0 && watch.watchedStatements == 0)
    }

    @Test(.timeLimit(.minutes(1)))
    func aStatementInFlightWhenTheConnectionClosesFailsOrIsGivenUp() async throws {
        let db = try await TestDatabase.create()
        let (connection, pid) = try await connect(db)
        let watch = StatementWatch(grace: .milliseconds(500))
        let running = Task {
            try await watch.run(on: connection) { try await $0.query("SELECT pg_sleep(30)", logger: logger).all().count }
        }
        try await Task.sleep(for: .milliseconds(300))
        try await db.withClient { client in
            _ = try await client.query("SELECT pg_terminate_backend(\(pid))", logger: logger)
        }
        let result = await running.result
        guard case .failure(let error) = result else {
            Issue.record("a statement on a terminated connection succeeded")
            return
        }
        #expect(DatabaseHealth.isConnectionLoss(error), "\(error)")
        // The statement fails as the channel goes inactive, a moment before its close future lets the watch forget it.
        #expect(try await eventually(.seconds(10)) { watch.watchedConnections == 0 })
    }

    @Test(.timeLimit(.minutes(1)))
    func aStatementUnansweredPastTheDeadlineIsGivenUpAndOneThatEndsIsNot() async throws {
        let db = try await TestDatabase.create()
        let (connection, _) = try await connect(db)
        defer { Task { try? await connection.close() } }
        let watch = StatementWatch(deadline: .seconds(5))   // well above a loaded machine's SELECT
        // Statements that end keep one close callback for their connection, however many they are.
        for i in 0..<50 {
            let n = try await watch.run(on: connection) { try await $0.query("SELECT \(i)::int4", logger: logger).decode(Int32.self).all() }
            #expect(n == [Int32(i)])
        }
        #expect(watch.watchedConnections == 1)
        #expect(watch.watchedStatements == 0)
        await #expect {
            _ = try await watch.run(on: connection) { try await $0.query("SELECT pg_sleep(15)", logger: logger).all() }
        } throws: { error in
            (error as? StatementAbandoned)?.reason == .noAnswer && DatabaseHealth.isConnectionLoss(error)
        }
        // Closed, so nothing queued behind the given-up statement waits on it.
        #expect(try await eventually(.seconds(10)) { connection.isClosed })
    }

    /// A statement through the pool (whose connection the caller does not see) that is never answered is given up
    /// on at the pool's deadline; not as a lost connection (the pool may only be saturated), and an API request
    /// that meets it answers 503.
    @Test(.timeLimit(.minutes(1)))
    func aQueryThroughThePoolNeverAnsweredIsGivenUpAtItsDeadline() async throws {
        let db = try await TestDatabase.create()
        let closed = try await closedConnection(db)
        let error = await thrown(within: .seconds(30)) {
            try await StatementWatch.answered(within: .seconds(1)) { try await closed.query("SELECT 1", logger: logger).all().count }
        }
        #expect(error is QueryUnanswered && error.map(DatabaseHealth.isConnectionLoss) == false, "\(String(describing: error))")
        // An answer in time passes through.
        try await db.withClient { pool in
            let n = try await StatementWatch.answered(within: .seconds(10)) {
                try await pool.query("SELECT 7::int4", logger: logger).decode(Int32.self).all()
            }
            #expect(n == [7])
        }
        // The hub's pool has the deadline when PostgreSQL has a statement timeout.
        let timed = try DatabaseClient(url: db.url, maxConnections: 1, statementTimeout: .seconds(30), logger: logger)
        #expect(timed.answerDeadline == .seconds(45))
        #expect(try DatabaseClient(url: db.url, maxConnections: 1, statementTimeout: .zero, logger: logger).answerDeadline == nil)
        let answer = APIErrors<BasicRequestContext>.publicError(QueryUnanswered(after: .seconds(45)), reference: "r1")
        #expect(answer.status == .serviceUnavailable && answer.body?.contains("did not answer in time") == true)
    }

    /// A caller cancelled (a client gone, the hub shutting down) cancels the statement it waits for.
    @Test(.timeLimit(.minutes(1)))
    func cancellingTheCallerCancelsTheStatement() async throws {
        let db = try await TestDatabase.create()
        let (connection, _) = try await connect(db)
        defer { Task { try? await connection.close() } }
        let watch = StatementWatch(deadline: .seconds(60))
        let ran = Count()
        let onConnection = Task {
            try await watch.run(on: connection) { _ in
                ran.add()
                try await Task.sleep(for: .seconds(30))
                return 1
            }
        }
        let throughPool = Task {
            try await StatementWatch.answered(within: .seconds(60)) {
                ran.add()
                try await Task.sleep(for: .seconds(30))
                return 1
            }
        }
        #expect(try await eventually(.seconds(10)) { ran.value == 2 })
        onConnection.cancel()
        throughPool.cancel()
        let started = ContinuousClock.now
        for task in [onConnection, throughPool] {
            await #expect(throws: CancellationError.self) { _ = try await task.value }
        }
        #expect(ContinuousClock.now - started < .seconds(10))
    }

    /// A pool that lends `closed` (a connection the server closed) for the next `count` leases, as PostgresNIO's
    /// pool can an instant after a restart, and its own connections otherwise.
    final class LendsAClosedConnection: PostgresQuerying {
        let pool: PostgresClient
        let closed: PostgresConnection
        let remaining: Mutex<Int>
        init(pool: PostgresClient, closed: PostgresConnection, count: Int) {
            self.pool = pool
            self.closed = closed
            remaining = Mutex(count)
        }
        func query(_ query: PostgresQuery, logger: Logger?, file: String, line: Int) async throws -> PostgresRowSequence {
            try await pool.query(query, logger: logger, file: file, line: line)
        }
        func withLeasedConnection<Result>(_ body: (PostgresConnection) async throws -> Result) async throws -> Result {
            let lendClosed = remaining.withLock { n -> Bool in
                defer { n = max(0, n - 1) }
                return n > 0
            }
            if lendClosed { return try await body(closed) }
            return try await pool.withConnection(body)
        }
    }

    /// A connection the server has closed, its channel done with it.
    func closedConnection(_ db: TestDatabase) async throws -> PostgresConnection {
        let (connection, pid) = try await connect(db)
        try await db.withClient { client in _ = try await client.query("SELECT pg_terminate_backend(\(pid))", logger: logger) }
        #expect(try await eventually(.seconds(10)) { connection.isClosed })
        try await Task.sleep(for: .milliseconds(100))
        return connection
    }

    /// The failure a restart left behind once: both writer slots lent a closed connection. The stores give up,
    /// and the next ones, on good connections, are stored; the review upkeep's pass gives up instead of hanging too.
    /// Two minutes, as its neighbours: on a loaded CI machine it outran one (its two 30-s waits, a fresh database and
    /// its migrations, and two upkeep passes).
    @Test(.timeLimit(.minutes(2)))
    func theWriterAndTheUpkeepGiveUpOnAClosedConnectionTheyWereLent() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["cw-1", "cw-2"], token: "secret", in: db)
        let closed = try await closedConnection(db)
        try await db.withClient { pool in
            let client = LendsAClosedConnection(pool: pool, closed: closed, count: 0)
            let store = PostgresIngestStore(client: client, logger: logger, maxGroup: 1)
            try await PartitionMaintainer(client: pool, logger: logger).ensureWindow()
            var sessions: [BotSession] = []
            for bot in ["cw-1", "cw-2"] {
                let hello = Hello(botID: bot, token: "secret", agentVersion: "t", bootEpoch: 3, lastAckedSequence: 0)
                guard case .accepted(let s) = try await store.authenticate(hello, connectionID: UUID(), hub: "h") else {
                    throw WireError(.invalidField, "\(bot) was refused")
                }
                sessions.append(s)
            }
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            let batch = ValidatedBatch(epoch: 3, sequence: 1, sentSamples: 1,
                                       series: [Series(name: "daily_pnl", kind: .gauge, timestamps: [now], values: [1])],
                                       refusedSamples: 0, firstTimestampMs: now)
            client.remaining.withLock { $0 = 2 }
            let lent = sessions
            let stores = await ended(within: .seconds(30)) {
                try await withThrowingTaskGroup(of: (any Error)?.self) { group in
                    for s in lent {
                        group.addTask { do { _ = try await store.store(batch, session: s); return nil } catch { return error } }
                    }
                    return try await group.reduce(into: [(any Error)?]()) { $0.append($1) }
                }
            }
            let failures = try #require(try stores?.get(), "the stores on a closed connection did not end within 30 s")
            #expect(failures.count == 2 && failures.allSatisfy { ($0 as? StatementAbandoned)?.reason == .connectionClosed }, "\(failures)")
            for s in sessions { #expect(try await store.store(batch, session: s) == .stored) }

            client.remaining.withLock { $0 = 1 }
            let upkeep = ReviewMaintainer(client: client, settings: RetentionSettings(), logger: logger)
            let error = await thrown(within: .seconds(30)) { try await upkeep.pass(hourly: false) }
            #expect(error is StatementAbandoned, "\(String(describing: error))")
            #expect(try await upkeep.pass(hourly: false))
        }
    }

    /// The writer's slots are freed by a statement given up on: stores behind it go on, and nothing is stored twice
    /// when the given-up batches are sent again (the statement itself committed later, when its lock was free).
    @Test(.timeLimit(.minutes(2)))
    func aBatchStatementGivenUpFreesTheWritersSlot() async throws {
        let db = try await TestDatabase.create()
        let bots = ["wb-1", "wb-2", "wb-3"]
        try await registerBots(bots, token: "secret", in: db)
        try await db.withClient { client in
            let store = PostgresIngestStore(client: client, logger: logger, maxGroup: 1, statementDeadline: .seconds(1))
            try await PartitionMaintainer(client: client, logger: logger).ensureWindow()
            var sessions: [BotSession] = []
            for bot in bots {
                let hello = Hello(botID: bot, token: "secret", agentVersion: "t", bootEpoch: 7, lastAckedSequence: 0)
                guard case .accepted(let s) = try await store.authenticate(hello, connectionID: UUID(), hub: "h") else {
                    throw WireError(.invalidField, "\(bot) was refused")
                }
                sessions.append(s)
            }
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            let batch: @Sendable (UInt64) -> ValidatedBatch = { seq in
                ValidatedBatch(epoch: 7, sequence: seq, sentSamples: 2,
                               series: [Series(name: "daily_pnl", kind: .gauge, timestamps: [now, now + 1], values: [1, 2])],
                               refusedSamples: 0, firstTimestampMs: now)
            }
            // Another transaction holds the ledger: the writer's statements wait on it, past their deadline.
            let (blocker, _) = try await connect(db)
            _ = try await blocker.query("BEGIN", logger: logger)
            _ = try await blocker.query("LOCK TABLE ingest_streams IN ACCESS EXCLUSIVE MODE", logger: logger)
            let waiting = sessions
            let stores = await ended(within: .seconds(60)) {
                try await withThrowingTaskGroup(of: (any Error)?.self) { group in
                    for s in waiting {
                        group.addTask {
                            do { _ = try await store.store(batch(1), session: s); return nil } catch { return error }
                        }
                    }
                    return try await group.reduce(into: [(any Error)?]()) { $0.append($1) }
                }
            }
            let outcomes = try #require(try stores?.get(), "the stores behind a lock did not end within 60 s")
            // Two slots: the third store waited behind the first two and was given up on in its own turn.
            #expect(outcomes.count == 3)
            #expect(outcomes.allSatisfy { ($0 as? StatementAbandoned)?.reason == .noAnswer }, "\(outcomes)")
            _ = try await blocker.query("COMMIT", logger: logger)
            try await blocker.close()
            // Sent again, as an agent does until it is acknowledged (on a loaded machine a statement may outrun this
            // test's 1-s deadline again): each is stored exactly once, whether the given-up statement committed or not.
            func acknowledged(_ seq: UInt64, _ s: BotSession) async throws -> StoreOutcome {
                for _ in 1..<20 {
                    do { return try await store.store(batch(seq), session: s) } catch is StatementAbandoned { continue }
                }
                return try await store.store(batch(seq), session: s)
            }
            for s in sessions {
                let again = try await acknowledged(1, s)
                #expect(again == .stored || again == .duplicate)
                let next = try await acknowledged(2, s)
                #expect(next == .stored || next == .duplicate)
            }
            let rows = try await client.query("SELECT count(*) FROM sample_points WHERE bot LIKE 'wb-%'", logger: logger)
                .decode(Int64.self).all()
            #expect(rows == [Int64(bots.count * 4)])
        }
    }
}
