import FleetwatchProtocol
import Foundation
import Logging
import PostgresNIO

extension CommandLedger {
    /// One command with its steps.
    public func command(id: CommandID) async throws -> CommandRecord? {
        try await commands(where: id, bot: nil, limit: 1).first
    }

    /// The newest commands of `bot`, newest first, with their steps.
    public func commands(bot: String, limit: Int = 50) async throws -> [CommandRecord] {
        try await commands(where: nil, bot: bot, limit: limit)
    }

    /// How many commands (stops and resumes, by anyone, break glass included once imported) `bot` has had since
    /// `since`: a stop decided before then and written only now must not override them.
    public func commandCount(bot: String, since: Date) async throws -> Int {
        try await client.query("""
            SELECT count(*)::int8 FROM commands c JOIN bots b ON b.id = c.bot_id WHERE b.name = \(bot) AND c.created_at >= \(since)
            """, logger: logger).decode(Int64.self).first(where: { _ in true }).map(Int.init) ?? 0
    }

    /// Whether `bot` is latched in emergency mode, and by which command.
    public func emergency(bot: String) async throws -> (commandID: CommandID, since: Date)? {
        let row = try await client.query("""
            SELECT emergency_command_id, emergency_since FROM bots WHERE name = \(bot) AND emergency_command_id IS NOT NULL
            """, logger: logger).decode((CommandID, Date).self).first(where: { _ in true })
        guard let (id, since) = row else { return nil }
        return (id, since)
    }

    private func commands(where id: CommandID?, bot: String?, limit: Int) async throws -> [CommandRecord] {
        let rows = try await client.query("""
            SELECT c.id, b.name, c.kind, c.origin, c.issued_by, c.reason, c.liquidate, c.liquidation_requested,
                   c.liquidation_refused, c.state, c.detail, c.created_at,
                   c.delivered_at, c.acknowledged_at, c.completed_at, c.failed_at, c.deliveries, c.delivered_by,
                   COALESCE((SELECT json_agg(json_build_object('step', s.step, 'status', s.status, 'detail', s.detail,
                                   'at', to_char(s.agent_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                                   'recordedAt', to_char(s.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
                                   ORDER BY s.recorded_at, s.agent_at)
                             FROM command_steps s WHERE s.command_id = c.id), '[]')::text
            FROM commands c JOIN bots b ON b.id = c.bot_id
            WHERE (\(id)::uuid IS NULL OR c.id = \(id)) AND (\(bot)::text IS NULL OR b.name = \(bot))
            ORDER BY c.created_at DESC LIMIT \(limit)
            """, logger: logger)
        var out: [CommandRecord] = []
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { d in
            let s = try d.singleValueContainer().decode(String.self)
            let f = ISO8601DateFormatter()
            f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            guard let date = f.date(from: s) else { throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: s)) }
            return date
        }
        for try await row in rows {
            let (id, bot, kind, origin, by, reason, liquidate, asked, refused, state, detail, created, delivered, acked, completed,
                 failed, deliveries, deliveredBy, steps) = try row.decode(
                (CommandID, String, String, String, String, String, Bool, Bool, String?, String, String?, Date, Date?, Date?, Date?,
                 Date?, Int32, String?, String).self)
            out.append(CommandRecord(
                id: id, bot: bot, kind: kind, origin: origin, issuedBy: by, reason: reason, liquidate: liquidate,
                liquidationRequested: asked, liquidationRefused: refused, state: state,
                detail: detail, createdAt: created, deliveredAt: delivered, acknowledgedAt: acked, completedAt: completed,
                failedAt: failed, deliveries: Int(deliveries), deliveredBy: deliveredBy,
                steps: (try? decoder.decode([CommandRecord.Step].self, from: Data(steps.utf8))) ?? []))
        }
        return out
    }
}
