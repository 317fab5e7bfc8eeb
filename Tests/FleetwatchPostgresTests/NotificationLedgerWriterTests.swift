@testable import FleetwatchHub
import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import PostgresNIO
import Testing

/// The notification ledger written in groups, against real PostgreSQL: an alert storm's delivery attempts are all
/// recorded, once each, in order and with their own times, in a few statements; an attempt PostgreSQL refuses fails
/// alone.
@Suite(.enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct NotificationLedgerWriterTests {
    let logger = Logger(label: "test")
    static let start = Date(timeIntervalSince1970: 1_796_000_000)

    static func delivery(_ n: Int, outcome: String = "delivered", error: String? = nil) -> AlertHistory.Delivery {
        AlertHistory.Delivery(alertID: Int64(n), event: n % 2 == 0 ? "fired" : "resolved", channel: ["console", "log", "webhook"][n % 3],
                              attempt: 1 + n % 2, outcome: outcome, error: error, at: start.addingTimeInterval(Double(n) / 1000),
                              durationMs: Double(n) / 10)
    }

    typealias Row = (Int64, String, String, Int, String, String?, String, Date, Double)
    static func ledger(_ client: PostgresClient, _ logger: Logger) async throws -> [Row] {
        try await client.query("""
            SELECT alert_id, event, channel, attempt, outcome, error, hub, at, duration_ms FROM notifications ORDER BY id
            """, logger: logger).decode(Row.self).all()
    }

    /// Runs `body` while another transaction holds the ledger table: the writer's first statement waits for it.
    func whileLocked(_ client: PostgresClient, _ body: () async throws -> Void) async throws {
        try await client.withConnection { locker in
            try await locker.query("BEGIN", logger: logger)
            try await locker.query("LOCK TABLE notifications IN EXCLUSIVE MODE", logger: logger)
            try await body()
            try await locker.query("COMMIT", logger: logger)
        }
    }

    /// 2,000 attempts while the table is locked: the first one's statement waits, the other 1,999 queue behind it and
    /// go in two groups (at most 1,000 each). Every attempt is recorded once, in order, with its fields, its error or
    /// none, and the time it was made, not the time it was written.
    @Test(.timeLimit(.minutes(2)))
    func aStormIsRecordedWholeInAFewStatements() async throws {
        let db = try await TestDatabase.create()
        try await db.withClient { client in
            try await Migrator(client: client, logger: logger).migrate()
            let writer = NotificationLedgerWriter(history: AlertHistory(client: client, logger: logger), hubID: "hub-a", logger: logger)
            let all = (0..<2_000).map { Self.delivery($0, error: $0 % 7 == 3 ? "timeout after \($0) ms" : nil) }
            try await whileLocked(client) {
                for d in all { await writer.add(d) }
            }
            await writer.written()
            #expect(await writer.statements == 3)
            let rows = try await Self.ledger(client, logger)
            #expect(rows.map(\.0) == (0..<2_000).map(Int64.init), "each attempt once, in order")
            for (row, d) in zip(rows, all) {
                #expect(row.1 == d.event && row.2 == d.channel && row.3 == d.attempt && row.4 == d.outcome && row.5 == d.error
                        && row.6 == "hub-a" && abs(row.7.timeIntervalSince(d.at)) < 0.001 && row.8 == d.durationMs, "\(row)")
            }
        }
    }

    /// An attempt PostgreSQL refuses (an outcome its check does not allow): the group is written again attempt by
    /// attempt, and only that one is missing. A NUL character in an error (a receiver's reply) is replaced, not refused.
    @Test(.timeLimit(.minutes(2)))
    func anAttemptPostgreSQLRefusesFailsAlone() async throws {
        let db = try await TestDatabase.create()
        try await db.withClient { client in
            try await Migrator(client: client, logger: logger).migrate()
            let writer = NotificationLedgerWriter(history: AlertHistory(client: client, logger: logger), hubID: "hub-a", logger: logger)
            try await whileLocked(client) {
                await writer.add(Self.delivery(1))
                await writer.add(Self.delivery(2, error: "550 bad\u{0}reply"))
                await writer.add(Self.delivery(3, outcome: "lost"))
                await writer.add(Self.delivery(4))
            }
            await writer.written()
            let rows = try await Self.ledger(client, logger)
            #expect(rows.map(\.0) == [1, 2, 4])
            #expect(rows.map(\.5) == [nil, "550 bad\u{FFFD}reply", nil])
            #expect(await writer.statements == 1 + 1 + 3, "the first, the refused group, then its three alone")
        }
    }

    /// The database stops while a storm's attempts wait (the first group's statement waiting on a lock, the rest
    /// queued behind it): the hub's health check notices, the statement under way is given up on, and every attempt
    /// is logged as not recorded — none hangs, none is written later or twice. Once the database is back, new
    /// attempts are recorded again.
    @Test(.timeLimit(.minutes(3)))
    func attemptsWaitingWhenTheDatabaseStopsAreLoggedAndNeverWrittenTwice() async throws {
        let pg = PrivatePostgres.forTest("fw-ledger-stop")
        try await pg.whileRunning { server in try await stopUnderAStorm(pg, server) }
    }

    func stopUnderAStorm(_ pg: PrivatePostgres, _ server: DatabaseURL) async throws {
        let db = try await TestDatabase.create(on: server, prefix: "fw_ledger_stop_", logger: logger)
        let lines = RecordingLog()
        let recorded = Logger(label: "ledger") { _ in lines }
        try await db.withClient { client in
            try await Migrator(client: client, logger: logger).migrate()
            let health = DatabaseHealth(url: db.url, interval: .milliseconds(200), deadline: .seconds(1), logger: logger)
            let probing = Task { try await health.run() }
            defer { probing.cancel() }
            #expect(try await eventually(.seconds(20)) { health.isUp })
            let writer = NotificationLedgerWriter(history: AlertHistory(client: client, logger: logger), hubID: "hub-a",
                                                  health: health, logger: recorded)
            try await client.withConnection { locker in
                try await locker.query("BEGIN", logger: logger)
                try await locker.query("LOCK TABLE notifications IN EXCLUSIVE MODE", logger: logger)
                for n in 0..<1_500 { await writer.add(Self.delivery(n)) }
                #expect(try await eventually(.seconds(20)) { await writer.statements == 1 })
                try await pg.stop()
            }
            await writer.written()
            let notRecorded = lines.all.compactMap { line -> Int? in
                guard line.level == .error, line.message.hasPrefix("notification ledger: "),
                      let n = line.message.dropFirst("notification ledger: ".count).split(separator: " ").first else { return nil }
                return line.message.contains("not recorded") ? Int(n) : nil
            }
            #expect(notRecorded.reduce(0, +) == 1_500, "every attempt logged once as not recorded: \(lines.all.map(\.message))")

            _ = try await pg.start()
            #expect(try await eventually(.seconds(60)) { health.isUp })
            for n in 2_000..<2_010 { await writer.add(Self.delivery(n)) }
            await writer.written()
            let rows = try await Self.ledger(client, logger)
            #expect(rows.map(\.0) == (2_000..<2_010).map(Int64.init), "only the attempts made after the restart, once each")
        }
    }

    /// The same give-up made certain: a group waiting for a pooled connection (the pool's one connection held here)
    /// when the database is noticed down is not written once a connection is free again — the log says it was not.
    @Test(.timeLimit(.minutes(2)))
    func aGroupGivenUpOnWhileWaitingForAConnectionIsNotWrittenLater() async throws {
        let db = try await TestDatabase.create()
        try await db.withClient { client in try await Migrator(client: client, logger: logger).migrate() }
        let lines = RecordingLog()
        try await db.withClient(maxConnections: 1) { one in
            // Not probing: the database stays "up" until the test says it is down.
            let health = DatabaseHealth(url: db.url, logger: logger)
            let writer = NotificationLedgerWriter(history: AlertHistory(client: one, logger: logger), hubID: "hub-a",
                                                  health: health, logger: Logger(label: "ledger") { _ in lines })
            try await one.withConnection { _ in
                await writer.add(Self.delivery(1))
                #expect(try await eventually(.seconds(20)) { await writer.statements == 1 })
                try await Task.sleep(for: .milliseconds(200))
                health.observed(failure: "test: the database is down")
                await writer.written()
            }
            #expect(lines.all.contains { $0.level == .error && $0.message.hasPrefix("notification ledger: 1 delivery attempt(s) not recorded") })
            // The connection is free again: nothing comes.
            try await Task.sleep(for: .seconds(2))
            #expect(try await Self.ledger(one, logger).isEmpty)
        }
    }
}
