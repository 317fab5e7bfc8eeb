import FleetwatchProtocol
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle

/// How long each kind of data is kept (days) and how often rollups run.
public struct RetentionSettings: Sendable, Equatable {
    /// Raw samples (daily `samples_YYYYMMDD` partitions). At least 8: samples up to 7 days old are accepted.
    public var rawDays = 14
    /// 1-minute rollups (daily `rollup_1m_YYYYMMDD` partitions).
    public var minuteRollupDays = 90
    /// 1-hour rollups (monthly `rollup_1h_YYYYMM` partitions).
    public var hourRollupDays = 730
    /// How often the newest minutes are rolled up.
    public var rollupInterval: Duration = .seconds(60)
    /// Each pass recomputes this much before now (batches arriving up to this late are folded in at once).
    /// A pass reads about (lookback + 1 minute) × ingest rate samples.
    public var rollupLookback: Duration = .seconds(3 * 60)
    /// Once an hour, this much is recomputed (batches up to this late are folded in within the hour).
    public var lateWindow: Duration = .seconds(3600)
    /// A bot's rows of a minute are merged into one (about 4–5 instead of 20 bytes a sample at one batch a
    /// second) once the minute is this old (`retention.rechunk_after`; zero: never).
    public var rechunkAfter: Duration = .seconds(120)

    public init() {}
}

/// Keeps the review data current: rolls up the newest minutes every `rollupInterval` (and the last hour
/// every hour, for late batches), merges closed minutes, creates rollup partitions ahead of time and drops whole expired
/// partitions (never large DELETEs). One replica at a time does the work (a PostgreSQL advisory lock).
public struct ReviewMaintainer: Service {
    /// Advisory lock key of the rollup/retention job.
    static let lockKey: Int64 = 0x666C_7772_6576   // "flwrev"
    let client: any PostgresQuerying
    let settings: RetentionSettings
    let logger: Logger
    let watch = StatementWatch()

    public init(client: any PostgresQuerying, settings: RetentionSettings, logger: Logger) {
        self.client = client
        self.settings = settings
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var lastHourly = ContinuousClock.now - .seconds(7200)
            while !Task.isCancelled {
                let hourly = ContinuousClock.now - lastHourly >= .seconds(3600)
                do {
                    let didWork = try await pass(hourly: hourly)
                    if hourly && didWork { lastHourly = .now }
                } catch let error as ReviewUpkeepFailed {
                    // Steps cancelled at the statement timeout are tried again at their next turn, the hour's steps
                    // in an hour: at every pass they would take its time and fail again. After any other failure
                    // (the database was away) the hour's steps are tried again at the next pass, which then rolls
                    // up the hour the outage was in.
                    if hourly && error.timedOutOnly { lastHourly = .now }
                    if !Task.isCancelled { logger.error("review upkeep: \(error)") }
                } catch {
                    if !Task.isCancelled { logger.error("review upkeep failed: \(String(reflecting: error))") }
                }
                try? await Task.sleep(for: settings.rollupInterval)
            }
        }
    }

    /// One pass under the advisory lock; false if another replica holds it. Each step runs whatever an earlier
    /// one did: the newest minutes' rollup, their merge, and once an hour the late window's rollup and merge and
    /// the partitions' retention. A step that fails (a rollup that outruns `hub.statement_timeout` under a
    /// large fleet) does not keep the others from running; the pass then throws `ReviewUpkeepFailed` naming them.
    @discardableResult
    public func pass(hourly: Bool, now: Date = Date()) async throws -> Bool {
        // Watched: a statement the pool sent to a connection PostgreSQL had just closed is never answered, and a
        // pass waiting for it would stop the upkeep for good.
        try await client.withLeasedConnection { conn in
            try await watch.run(on: conn) { conn in try await self.pass(on: conn, hourly: hourly, now: now) }
        }
    }

    private func pass(on conn: PostgresConnection, hourly: Bool, now: Date) async throws -> Bool {
        let locked = try await conn.query("SELECT pg_try_advisory_lock(\(Self.lockKey))", logger: logger)
            .decode(Bool.self).first { _ in true } ?? false
        guard locked else { return false }
        var failed: [ReviewUpkeepFailed.Step] = []
        func step(_ name: String, _ body: () async throws -> Void) async {
            guard !Task.isCancelled else { return }   // shutting down: the next start does it
            do { try await body() } catch { failed.append(.init(name: name, error: error)) }
        }
        await step("rollup of the newest minutes") {
            let from = now.addingTimeInterval(-settings.rollupLookback.inSeconds)
            let rows = try await conn.query("SELECT fleetwatch_rollup(\(from), \(now))", logger: logger)
                .decode(Int.self).first { _ in true } ?? 0
            try await conn.query("""
                INSERT INTO rollup_progress (rolled_to) VALUES (date_trunc('minute', \(now)::timestamptz))
                ON CONFLICT (id) DO UPDATE SET rolled_to = EXCLUDED.rolled_to, updated_at = now()
                """, logger: logger)
            logger.debug("rolled up \(rows) minute buckets")
        }
        // The minutes closed since the last pass.
        let closedTo = now.addingTimeInterval(-settings.rechunkAfter.inSeconds)
        if settings.rechunkAfter > .zero {
            await step("merge of the closed minutes") {
                try await rechunk(conn, from: closedTo.addingTimeInterval(-max(settings.rollupLookback, settings.rollupInterval * 3).inSeconds),
                                  to: closedTo)
            }
        }
        if hourly {
            // Batches up to `lateWindow` late: folded into the rollups and merges of their minutes.
            if settings.lateWindow > settings.rollupLookback {
                await step("rollup of the late window") {
                    // In slices, oldest first (a counter's first sample in a slice continues from the bucket
                    // before it): each statement stays short however large the fleet.
                    var from = Self.minute(now.addingTimeInterval(-settings.lateWindow.inSeconds))
                    let end = now.addingTimeInterval(-settings.rollupLookback.inSeconds)
                    var rows = 0
                    while from < end, !Task.isCancelled {
                        let to = min(from.addingTimeInterval(Self.lateSlice.inSeconds), end)
                        rows += try await conn.query("SELECT fleetwatch_rollup(\(from), \(to))", logger: logger)
                            .decode(Int.self).first { _ in true } ?? 0
                        from = to
                    }
                    logger.debug("rolled up \(rows) minute buckets of the late window")
                }
            }
            if settings.rechunkAfter > .zero {
                await step("merge of the late window") {
                    try await rechunk(conn, from: closedTo.addingTimeInterval(-settings.lateWindow.inSeconds), to: closedTo)
                }
            }
            await step("partition retention") { try await retention(conn, now: now) }
        }
        do {
            try await conn.query("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: logger)
        } catch {
            // The lock goes with the session: if this connection stays open, no replica runs the upkeep.
            logger.error("review upkeep: giving back its lock failed (no replica runs the upkeep while this database session holds it; it ends with the session): \(String(reflecting: error))")
        }
        if !failed.isEmpty { throw ReviewUpkeepFailed(steps: failed) }
        return true
    }

    /// How much of the late window one rollup statement covers (`scripts/bench upkeep`: about 5.8 s for 5 minutes
    /// at 5,000 samples a second on two cores).
    public static let lateSlice: Duration = .seconds(300)

    static func minute(_ date: Date) -> Date {
        Date(timeIntervalSince1970: (date.timeIntervalSince1970 / 60).rounded(.down) * 60)
    }

    private func rechunk(_ conn: PostgresConnection, from: Date, to: Date) async throws {
        let merged = try await conn.query("SELECT fleetwatch_rechunk(\(from), \(to))", logger: logger)
            .decode(Int.self).first { _ in true } ?? 0
        logger.debug("re-chunked closed minutes into \(merged) rows")
    }

    /// Creates partitions ahead and drops the expired ones; returns the dropped partitions' names.
    @discardableResult
    public func applyRetention(now: Date = Date()) async throws -> [String] {
        try await client.withLeasedConnection { conn in try await retention(conn, now: now) }
    }

    @discardableResult
    private func retention(_ conn: PostgresConnection, now: Date) async throws -> [String] {
        for day in 0...7 {
            let at = now.addingTimeInterval(Double(day) * 86_400)
            try await conn.query("SELECT fleetwatch_ensure_partition('rollup_1m', 'day', \(at))", logger: logger)
        }
        for month in [0.0, 31, 62] {
            let at = now.addingTimeInterval(month * 86_400)
            try await conn.query("SELECT fleetwatch_ensure_partition('rollup_1h', 'month', \(at))", logger: logger)
        }
        var dropped: [String] = []
        for (parent, unit, days) in [("samples", "day", settings.rawDays), ("rollup_1m", "day", settings.minuteRollupDays),
                                     ("rollup_1h", "month", settings.hourRollupDays)] {
            let cutoff = now.addingTimeInterval(-Double(days) * 86_400)
            let rows = try await conn.query("""
                SELECT fleetwatch_drop_expired_partitions(\(parent), \(unit), \(cutoff))
                """, logger: logger)
            for try await name in rows.decode(String.self) { dropped.append(name) }
        }
        if !dropped.isEmpty { logger.notice("retention: dropped expired partitions \(dropped)") }
        return dropped
    }

}

/// Steps of a review upkeep pass that failed (the others ran).
public struct ReviewUpkeepFailed: Error, CustomStringConvertible {
    public struct Step: Sendable {
        public let name: String
        public let error: any Error
        var timedOut: Bool { (error as? PSQLError)?.serverInfo?[.sqlState] == "57014" }
    }
    public let steps: [Step]

    /// Whether every failed step was cancelled at `hub.statement_timeout` (SQLSTATE 57014).
    public var timedOutOnly: Bool { steps.allSatisfy(\.timedOut) }

    public var description: String {
        let what = steps.map { "\($0.name): \(String(reflecting: $0.error))" }.joined(separator: "; ")
        let timedOut = steps.contains(where: \.timedOut)
        return what + (timedOut
            ? " (PostgreSQL cancelled a step, SQLSTATE 57014: at hub.statement_timeout, the fleet sends more samples than the upkeep rolls up in that time; raise hub.statement_timeout or give PostgreSQL more cores, and recompute what was missed with monitor-hub rollup: docs/weekly-review.md)"
            : " (tried again at the next pass; recompute a range that stays missing with monitor-hub rollup: docs/weekly-review.md)")
    }
}
