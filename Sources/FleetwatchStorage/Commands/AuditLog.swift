import FleetwatchProtocol
import Foundation
import Logging
import PostgresNIO

/// Appends to `audit_log`: refused attempts and actions outside the command ledger's own statements
/// (which write their audit rows in the same statement as the change).
public struct AuditLog: Sendable {
    let client: any PostgresQuerying
    let logger: Logger

    public init(client: any PostgresQuerying, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    public struct Entry: Sendable, Codable, Equatable {
        public var id: Int64
        public var at: Date
        public var actor: String
        public var actorKind: String
        public var action: String
        public var outcome: String
        public var bot: String?
        public var commandID: CommandID?
        public var remote: String?
        public var detail: String
        /// How many attempts this entry stands for (refusals are aggregated per kind, address and minute).
        public var repeats: Int
    }

    /// Records one entry (`repeats`: how many like it it stands for); failures are logged, never thrown (an
    /// audit write must not turn a refusal into a 500).
    public func record(_ actor: Actor, action: String, outcome: String, bot: String? = nil, commandID: CommandID? = nil,
                       detail: String = "", repeats: Int = 1) async {
        do {
            try await client.query("""
                INSERT INTO audit_log (actor, actor_kind, action, outcome, bot, command_id, remote, detail, repeats)
                VALUES (\(actor.name), \(actor.kind.rawValue), \(action), \(outcome), \(bot), \(commandID), \(actor.remote),
                        \(detail), \(Int32(clamping: repeats)))
                """, logger: logger)
        } catch {
            logger.error("audit log write failed (\(action) by \(actor.name)): \(String(reflecting: error))")
        }
    }

    /// Deletes entries older than `days` days, at most `batch` rows a call; returns how many. Sessions that
    /// ended that long ago go too.
    @discardableResult
    public func prune(olderThanDays days: Int, batch: Int = 10_000) async throws -> Int {
        let rows = try await client.query("""
            WITH gone AS (DELETE FROM audit_log WHERE id IN (
                              SELECT id FROM audit_log WHERE at < now() - \(days) * interval '1 day' ORDER BY id LIMIT \(batch))
                          RETURNING 1),
                 sessions AS (DELETE FROM sessions WHERE expires_at < now() - \(days) * interval '1 day' RETURNING 1)
            SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM sessions)
            """, logger: logger)
        var n: Int64 = 0
        for try await (g, _) in rows.decode((Int64, Int64).self) { n = g }
        return Int(n)
    }

    /// The newest entries, optionally for one bot or one command.
    public func entries(bot: String? = nil, commandID: CommandID? = nil, limit: Int = 200) async throws -> [Entry] {
        let rows = try await client.query("""
            SELECT id, at, actor, actor_kind, action, outcome, bot, command_id, remote, detail, repeats FROM audit_log
            WHERE (\(bot)::text IS NULL OR bot = \(bot)) AND (\(commandID)::uuid IS NULL OR command_id = \(commandID))
            ORDER BY id DESC LIMIT \(limit)
            """, logger: logger)
        var out: [Entry] = []
        for try await (id, at, actor, kind, action, outcome, bot, command, remote, detail, repeats)
            in rows.decode((Int64, Date, String, String, String, String, String?, CommandID?, String?, String, Int32).self) {
            out.append(Entry(id: id, at: at, actor: actor, actorKind: kind, action: action, outcome: outcome, bot: bot,
                             commandID: command, remote: remote, detail: detail, repeats: Int(repeats)))
        }
        return out
    }
}
