import Foundation
import Logging
import PostgresNIO

/// Appends to `audit_log`: refused attempts and actions outside the command ledger's own statements
/// (which write their audit rows in the same statement as the change).
public struct AuditLog: Sendable {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
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
        public var commandID: UUID?
        public var remote: String?
        public var detail: String
    }

    /// Records one entry; failures are logged, never thrown (an audit write must not turn a refusal into a 500).
    public func record(_ actor: Actor, action: String, outcome: String, bot: String? = nil, commandID: UUID? = nil,
                       detail: String = "") async {
        do {
            try await client.query("""
                INSERT INTO audit_log (actor, actor_kind, action, outcome, bot, command_id, remote, detail)
                VALUES (\(actor.name), \(actor.kind.rawValue), \(action), \(outcome), \(bot), \(commandID), \(actor.remote), \(detail))
                """, logger: logger)
        } catch {
            logger.error("audit log write failed (\(action) by \(actor.name)): \(String(reflecting: error))")
        }
    }

    /// The newest entries, optionally for one bot or one command.
    public func entries(bot: String? = nil, commandID: UUID? = nil, limit: Int = 200) async throws -> [Entry] {
        let rows = try await client.query("""
            SELECT id, at, actor, actor_kind, action, outcome, bot, command_id, remote, detail FROM audit_log
            WHERE (\(bot)::text IS NULL OR bot = \(bot)) AND (\(commandID)::uuid IS NULL OR command_id = \(commandID))
            ORDER BY id DESC LIMIT \(limit)
            """, logger: logger)
        var out: [Entry] = []
        for try await (id, at, actor, kind, action, outcome, bot, command, remote, detail)
            in rows.decode((Int64, Date, String, String, String, String, String?, UUID?, String?, String).self) {
            out.append(Entry(id: id, at: at, actor: actor, actorKind: kind, action: action, outcome: outcome, bot: bot,
                             commandID: command, remote: remote, detail: detail))
        }
        return out
    }
}
