import FleetwatchProtocol
import Foundation
import Logging
import PostgresNIO

/// Where the periodic health check keeps its results: each bot's last status and message, and which replica
/// ran the fleet's last check (one replica per interval, by a conditional update of `fleet_settings`).
public struct HealthCheckStore: Sendable {
    let client: any PostgresQuerying
    let logger: Logger

    public init(client: any PostgresQuerying, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Claims this interval's check for `hub`: true for exactly one replica per `interval`.
    public func claim(interval: Duration, hub: String) async throws -> Bool {
        let seconds = max(interval.inSeconds - 0.5, 0.1)
        let rows = try await client.query("""
            INSERT INTO fleet_settings AS f (key, value, updated_by) VALUES ('last_health_check', now()::text, \(hub))
            ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now(), updated_by = EXCLUDED.updated_by
            WHERE f.updated_at < now() - \(seconds) * interval '1 second'
            RETURNING 1
            """, logger: logger)
        for try await _ in rows.decode(Int.self) { return true }
        return false
    }

    /// Records each bot's result of this check. A bot's row that a batch statement holds locked is skipped, not
    /// waited for, and tried again up to `passes` times in all; one still held after that keeps its last result until
    /// the next check. Waiting instead would lock thousands of rows in one transaction, in another order than the batch
    /// statements do, and a deadlock had failed a batch statement and closed its connections (4010).
    /// - Returns: the bots whose result was not recorded.
    @discardableResult
    public func record(_ results: [(bot: String, status: String, message: String)], passes: Int = 3) async throws -> [String] {
        var left = results
        for pass in 0..<passes where !left.isEmpty {
            if pass > 0 { try await Task.sleep(for: .milliseconds(100)) }
            var recorded = Set<String>()
            for try await name in try await client.query("""
                WITH r AS (
                    SELECT * FROM unnest(\(left.map(\.bot))::text[], \(left.map(\.status))::text[], \(left.map(\.message))::text[])
                        AS r(bot, status, message)
                ), free AS (
                    SELECT b.id, r.status, r.message FROM bots b JOIN r ON b.name = r.bot
                    ORDER BY b.id FOR UPDATE OF b SKIP LOCKED
                )
                UPDATE bots b SET health_status = f.status, health_message = f.message, health_checked_at = now()
                FROM free f WHERE b.id = f.id
                RETURNING b.name
                """, logger: logger).decode(String.self) {
                recorded.insert(name)
            }
            left.removeAll { recorded.contains($0.bot) }
        }
        return left.map(\.bot)
    }

    /// When the fleet was last checked and by which replica.
    public func lastCheck() async throws -> (at: Date, hub: String)? {
        let row = try await client.query("""
            SELECT updated_at, updated_by FROM fleet_settings WHERE key = 'last_health_check'
            """, logger: logger).decode((Date, String).self).first { _ in true }
        return row.map { ($0.0, $0.1) }
    }
}
