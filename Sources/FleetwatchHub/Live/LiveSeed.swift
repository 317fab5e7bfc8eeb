import FleetwatchStorage
import Foundation
import Logging
import PostgresNIO

extension LiveFleet {
    /// Fills the fleet from the newest stored batches (up to five per bot from the last 15 minutes), so a
    /// replica that just started shows current values before the next batches arrive.
    func seed(client: any PostgresQuerying, logger: Logger) async throws {
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
        var updates: [LiveUpdate] = []
        for try await (bot, metric, ts, value, state) in rows.decode((String, String, Date, Double?, String?).self) {
            var u = LiveUpdate(bot: bot, at: ts, numbers: [:], states: [:])
            if let value { u.numbers[metric] = value }
            if let state { u.states[metric] = state }
            updates.append(u)
        }
        apply(updates)
    }
}
