import Logging
import PostgresNIO

/// The periodic scans behind the hub's own alerts (a bot gone silent, a metric-name limit no longer exceeded):
/// whichever replica runs them, they find the same bots.
public struct AlertScans: Sendable {
    let client: any PostgresQuerying
    let logger: Logger

    public init(client: any PostgresQuerying, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Bots with a token that have sent nothing for more than `seconds` and have no firing `rule` alert yet, with
    /// how long they have been silent (seconds).
    public func silentBots(after seconds: Double, rule: String) async throws -> [(bot: String, silentFor: Double)] {
        var out: [(bot: String, silentFor: Double)] = []
        let rows = try await client.query("""
            SELECT b.name, EXTRACT(EPOCH FROM now() - b.last_seen_at)::float8 FROM bots b
            WHERE b.token_hash IS NOT NULL AND b.last_seen_at < now() - \(seconds) * interval '1 second'
              AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.bot_id = b.id AND a.rule_id = \(rule) AND a.state = 'firing')
            """, logger: logger)
        for try await (bot, silentFor) in rows.decode((String, Double).self) { out.append((bot, silentFor)) }
        return out
    }

    /// Bots whose `rule` alert (metric-name limit exceeded) fires but that have refused no name for `seconds`.
    public func quietNameLimitBots(rule: String, quietFor seconds: Double) async throws -> [String] {
        var out: [String] = []
        let rows = try await client.query("""
            SELECT b.name FROM alerts a JOIN bots b ON b.id = a.bot_id
            WHERE a.rule_id = \(rule) AND a.state = 'firing'
              AND (b.metric_names_refused_at IS NULL
                   OR b.metric_names_refused_at < now() - \(seconds) * interval '1 second')
            """, logger: logger)
        for try await bot in rows.decode(String.self) { out.append(bot) }
        return out
    }
}
