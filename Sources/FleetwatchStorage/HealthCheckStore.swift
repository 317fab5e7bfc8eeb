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

    /// Records each bot's result of this check.
    public func record(_ results: [(bot: String, status: String, message: String)]) async throws {
        guard !results.isEmpty else { return }
        try await client.query("""
            UPDATE bots b SET health_status = r.status, health_message = r.message, health_checked_at = now()
            FROM unnest(\(results.map(\.bot))::text[], \(results.map(\.status))::text[], \(results.map(\.message))::text[])
                 AS r(bot, status, message)
            WHERE b.name = r.bot
            """, logger: logger)
    }

    /// When the fleet was last checked and by which replica.
    public func lastCheck() async throws -> (at: Date, hub: String)? {
        let row = try await client.query("""
            SELECT updated_at, updated_by FROM fleet_settings WHERE key = 'last_health_check'
            """, logger: logger).decode((Date, String).self).first { _ in true }
        return row.map { ($0.0, $0.1) }
    }
}
