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
    /// A pass costs about lookback × ingest rate in samples read.
    public var rollupLookback: Duration = .seconds(3 * 60)
    /// Once an hour, this much is recomputed (batches up to this late are folded in within the hour).
    public var lateWindow: Duration = .seconds(3600)
    /// A bot's rows of a minute are merged into one (about 4–5 instead of 20 bytes a sample at one batch a
    /// second) once the minute is this old (`retention.rechunk_after`; zero: never).
    public var rechunkAfter: Duration = .seconds(120)

    public init() {}
}

/// Keeps the review data current: rolls up the newest minutes every `rollupInterval` (and the last two
/// hours every hour, for late batches), creates rollup partitions ahead of time and drops whole expired
/// partitions (never large DELETEs). One replica at a time does the work (a PostgreSQL advisory lock).
public struct ReviewMaintainer: Service {
    /// Advisory lock key of the rollup/retention job.
    static let lockKey: Int64 = 0x666C_7772_6576   // "flwrev"
    let client: any PostgresQuerying
    let settings: RetentionSettings
    let logger: Logger

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
                } catch {
                    if !Task.isCancelled { logger.error("review upkeep failed: \(String(reflecting: error))") }
                }
                try? await Task.sleep(for: settings.rollupInterval)
            }
        }
    }

    /// One pass under the advisory lock; false if another replica holds it.
    @discardableResult
    public func pass(hourly: Bool, now: Date = Date()) async throws -> Bool {
        try await client.withLeasedConnection { conn in
            let locked = try await conn.query("SELECT pg_try_advisory_lock(\(Self.lockKey))", logger: logger)
                .decode(Bool.self).first { _ in true } ?? false
            guard locked else { return false }
            do {
                let lookback = hourly ? max(settings.rollupLookback, settings.lateWindow) : settings.rollupLookback
                let from = now.addingTimeInterval(-lookback.inSeconds)
                let rows = try await conn.query("SELECT fleetwatch_rollup(\(from), \(now))", logger: logger)
                    .decode(Int.self).first { _ in true } ?? 0
                try await conn.query("""
                    INSERT INTO rollup_progress (rolled_to) VALUES (date_trunc('minute', \(now)::timestamptz))
                    ON CONFLICT (id) DO UPDATE SET rolled_to = EXCLUDED.rolled_to, updated_at = now()
                    """, logger: logger)
                logger.debug("rolled up \(rows) minute buckets")
                if settings.rechunkAfter > .zero {
                    // The closed minutes since the last pass (the last hour once an hour, for late batches).
                    let to = now.addingTimeInterval(-settings.rechunkAfter.inSeconds)
                    let span = hourly ? settings.lateWindow : max(settings.rollupLookback, settings.rollupInterval * 3)
                    let merged = try await conn.query("SELECT fleetwatch_rechunk(\(to.addingTimeInterval(-span.inSeconds)), \(to))", logger: logger)
                        .decode(Int.self).first { _ in true } ?? 0
                    logger.debug("re-chunked closed minutes into \(merged) rows")
                }
                if hourly { try await retention(conn, now: now) }
            } catch {
                _ = try? await conn.query("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: logger)
                throw error
            }
            _ = try await conn.query("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: logger)
            return true
        }
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
