import FleetwatchProtocol
import Foundation
import Logging
import PostgresNIO

/// The fleet as stored: each bot's registry row, connection state, latched emergency, open alerts and last
/// health check (one query), and the newest stored points a starting replica shows before live values arrive.
public struct FleetRoster: Sendable {
    let client: any PostgresQuerying
    let logger: Logger

    public init(client: any PostgresQuerying, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    public struct Bot: Sendable {
        public let name: String, profile: String
        /// online, stale (connected but silent for `staleAfter`), offline or emergency.
        public let state: String
        public let connected: Bool, hub: String?, version: String?
        public let first: Date?, last: Date?, created: Date, emergencySince: Date?, emergencyCommand: CommandID?, allowLiquidation: Bool
        /// Firing alerts' rule ids by level.
        public let critical: [String], warning: [String], info: [String]
        public let check: (at: Date, status: String, message: String)?
    }

    /// Every bot (or only `bot`), by name; `staleAfter` seconds without data make a connected bot stale.
    public func bots(_ bot: String?, staleAfter: Double) async throws -> [Bot] {
        let rows = try await client.query("""
            SELECT b.name, COALESCE(b.profile, (SELECT value FROM fleet_settings WHERE key = 'default_profile'), 'default'),
                   CASE WHEN b.emergency_command_id IS NOT NULL THEN 'emergency'
                        WHEN b.connection_id IS NULL THEN 'offline'
                        WHEN b.last_seen_at IS NULL OR b.last_seen_at < now() - \(staleAfter) * interval '1 second' THEN 'stale'
                        ELSE 'online' END,
                   b.connection_id IS NOT NULL, b.connected_hub, b.agent_version, b.first_seen_at, b.last_seen_at, b.created_at,
                   b.emergency_since, b.emergency_command_id, b.allow_liquidation,
                   COALESCE(array_agg(a.rule_id) FILTER (WHERE a.level = 'CRITICAL'), '{}'),
                   COALESCE(array_agg(a.rule_id) FILTER (WHERE a.level = 'WARNING'), '{}'),
                   COALESCE(array_agg(a.rule_id) FILTER (WHERE a.level = 'INFO'), '{}'),
                   b.health_checked_at, b.health_status, b.health_message
            FROM bots b LEFT JOIN alerts a ON a.bot_id = b.id AND a.state = 'firing'
            WHERE \(bot)::text IS NULL OR b.name = \(bot)
            GROUP BY b.id ORDER BY b.name
            """, logger: logger)
        var out: [Bot] = []
        for try await row in rows {
            let r = try row.decode((String, String, String, Bool, String?, String?, Date?, Date?, Date, Date?, CommandID?, Bool,
                                    [String], [String], [String], Date?, String?, String?).self)
            out.append(Bot(name: r.0, profile: r.1, state: r.2, connected: r.3, hub: r.4, version: r.5, first: r.6, last: r.7,
                           created: r.8, emergencySince: r.9, emergencyCommand: r.10, allowLiquidation: r.11,
                           critical: r.12, warning: r.13, info: r.14,
                           check: r.15.flatMap { at in r.16.map { (at, $0, r.17 ?? "") } }))
        }
        return out
    }

    public struct Point: Sendable {
        public let bot: String, metric: String, at: Date
        public let value: Double?, state: String?
    }

    /// The points of each bot's newest stored batches (up to five per bot from the last 15 minutes), oldest first.
    public func recentPoints() async throws -> [Point] {
        let rows = try await client.query("""
            WITH recent AS (
                SELECT s.*, row_number() OVER (PARTITION BY s.bot_id ORDER BY s.t_start DESC, s.seq DESC) AS n
                FROM samples s WHERE s.t_start > now() - interval '15 minutes'),
            points AS (
                SELECT r.bot_id, r.t_start + x.o * interval '1 millisecond' AS ts, x.mid, x.v, NULL::text AS state
                FROM recent r, unnest(r.metric_ids, r.offsets_ms, r.vals) AS x(mid, o, v) WHERE r.n <= 5
                UNION ALL
                SELECT r.bot_id, r.t_start + x.o * interval '1 millisecond', x.mid, NULL, x.st
                FROM recent r, unnest(r.state_metric_ids, r.state_offsets_ms, r.states) AS x(mid, o, st)
                WHERE r.n <= 5 AND r.state_metric_ids IS NOT NULL)
            SELECT b.name, m.name, p.ts, p.v, p.state FROM points p
            JOIN bots b ON b.id = p.bot_id JOIN metrics m ON m.id = p.mid
            ORDER BY p.ts
            """, logger: logger)
        var out: [Point] = []
        for try await (bot, metric, ts, value, state) in rows.decode((String, String, Date, Double?, String?).self) {
            out.append(Point(bot: bot, metric: metric, at: ts, value: value, state: state))
        }
        return out
    }
}
