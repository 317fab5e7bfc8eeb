import FleetwatchControl
import FleetwatchProtocol
import Foundation
import Logging
import PostgresNIO

extension CommandLedger {
    /// A command as the replica holding the bot's connection sends it.
    public struct Outgoing: Sendable, Equatable {
        public var id: CommandID
        public var bot: String
        public var actions: CommandFrame.Actions
        public var reason: String
        public var createdAt: Date
        /// The connection holding the bot's lease when the command was claimed (the one to send it to).
        public var connectionID: UUID?

        /// The frame, valid for `ttlMs` from now: a delayed or replayed frame is refused by the agent.
        public func frame(nowMs: UInt64, ttlMs: UInt64) -> CommandFrame {
            CommandFrame(commandID: id, botID: bot, issuedAtMs: UInt64(max(0, createdAt.timeIntervalSince1970 * 1000)),
                         expiresAtMs: nowMs + ttlMs, actions: actions, reason: reason)
        }
    }

    /// Commands to send to a bot that has just connected: every command not yet finished, and the command
    /// that latched its emergency mode (sent on every reconnect until an operator resumes). Marks them
    /// delivered by `hub`.
    public func takeOnConnect(botID: Int32, hub: String) async throws -> [Outgoing] {
        try await take(botIDs: [botID], onlyPending: false, hub: hub)
    }

    /// Pending commands of the bots connected to this replica, each only while the given connection still
    /// holds the bot's lease (a bot that moved to another replica gets them there); marks them delivered.
    public func takePending(botIDs: [Int32], connections: [UUID], hub: String) async throws -> [Outgoing] {
        guard !botIDs.isEmpty else { return [] }
        return try await take(botIDs: botIDs, connections: connections, onlyPending: true, hub: hub)
    }

    /// Marks and returns the commands to send. Liquidation is granted again at every send: a command that asks
    /// for it goes out without it once the bot no longer allows liquidation, and that refusal is recorded
    /// (command and audit log) the first time.
    private func take(botIDs: [Int32], connections: [UUID]? = nil, onlyPending: Bool, hub: String) async throws -> [Outgoing] {
        let rows = try await client.query("""
            WITH c AS (
                SELECT c.id, c.state AS prev, b.allow_liquidation AS allowed FROM commands c JOIN bots b ON b.id = c.bot_id
                WHERE c.bot_id = ANY(\(botIDs))
                  AND (\(connections)::uuid[] IS NULL
                       OR (b.id, b.connection_id) IN (SELECT * FROM unnest(\(botIDs)::int4[], \(connections)::uuid[])))
                  AND (c.state = \(CommandState.pending.rawValue)
                       OR (NOT \(onlyPending) AND (c.state = ANY(\(CommandState.open.map(\.rawValue))::text[]) OR c.id = b.emergency_command_id)))
                FOR UPDATE OF c),
            u AS (
                UPDATE commands SET state = CASE WHEN commands.state = \(CommandState.pending.rawValue) THEN \(CommandState.delivered.rawValue) ELSE commands.state END,
                       delivered_at = COALESCE(commands.delivered_at, now()), last_delivered_at = now(),
                       delivered_by = \(hub), deliveries = commands.deliveries + 1,
                       liquidate = commands.liquidate AND c.allowed,
                       liquidation_refused = CASE WHEN commands.liquidate AND NOT c.allowed
                                                  THEN COALESCE(commands.liquidation_refused, \(Self.liquidationSwitchedOffReason))
                                                  ELSE commands.liquidation_refused END
                FROM c WHERE commands.id = c.id
                RETURNING commands.id, commands.bot_id, commands.actions, commands.reason, commands.created_at, c.prev,
                          commands.liquidate AS granted, (commands.liquidation_refused = \(Self.liquidationSwitchedOffReason) AND NOT commands.liquidate
                                      AND (commands.actions & 4) <> 0 AND commands.liquidation_requested) AS refused_now),
            audit AS (
                INSERT INTO audit_log (actor, actor_kind, action, outcome, bot, command_id, remote, detail)
                SELECT \(hub), 'hub', 'command.delivered', 'ok', b.name, u.id, NULL, 'sent to the bot by ' || \(hub)
                FROM u JOIN bots b ON b.id = u.bot_id WHERE u.prev = \(CommandState.pending.rawValue)
                UNION ALL
                SELECT \(hub), 'hub', 'liquidation.refused', 'refused', b.name, u.id, NULL, \(Self.liquidationSwitchedOffReason)
                FROM u JOIN bots b ON b.id = u.bot_id
                WHERE u.refused_now AND NOT EXISTS (SELECT 1 FROM audit_log a WHERE a.command_id = u.id AND a.action = 'liquidation.refused')
                RETURNING 1)
            SELECT u.id, b.name, u.actions, u.prev, u.granted, u.reason, u.created_at, (SELECT count(*) FROM audit), b.connection_id
            FROM u JOIN bots b ON b.id = u.bot_id ORDER BY u.created_at
            """, logger: logger)
        var out: [Outgoing] = []
        for try await (id, bot, asked, previous, granted, reason, created, _, connection)
            in rows.decode((CommandID, String, Int16, String, Bool, String, Date, Int64, UUID?).self) {
            // The steps this send carries (a finished command only re-latches; liquidation only while granted).
            let actions = CommandLifecycle.stepsToSend(asked: CommandFrame.Actions(rawValue: UInt8(truncatingIfNeeded: asked)),
                                                       state: CommandState(rawValue: previous) ?? .pending, liquidationGranted: granted)
            out.append(Outgoing(id: id, bot: bot, actions: actions, reason: reason, createdAt: created, connectionID: connection))
        }
        return out
    }

    /// Why a command that asked for liquidation went out without it.
    static let liquidationSwitchedOffReason = "liquidation was switched off for this bot before the command was sent"

    /// Records one step result the agent of `botID` reported and moves the command's state forward:
    /// received → acknowledged; completed → completed; failed (whole command) or refused → failed.
    /// A result for another bot's command, one recorded before, or one from a connection that does not hold
    /// the bot's lease (`connectionID`; nil: any) changes nothing.
    /// - Returns: the command's state after the change, nil if the command is unknown for this bot (or the
    ///   connection lost the lease).
    @discardableResult
    public func record(_ result: CommandResultFrame, botID: Int32, connectionID: UUID?) async throws -> String? {
        let id = result.commandID
        guard let step = CommandFrame.Actions.stepName(result.step) else { return nil }
        // Refused (expired frame, clock skew): recorded, but the command stays open and is delivered again; if
        // it is never acknowledged, the unacknowledged-command alert says so.
        let target = CommandLifecycle.target(of: result.status, step: result.step)
        let next = target.rawValue
        // The lifecycle's order, for the statement: the state moves only to a higher rank.
        let states = CommandState.allCases.map(\.rawValue), ranks = CommandState.allCases.map(\.rank)
        let agentAt = Double(result.atMs) / 1000
        let rows = try await client.query("""
            WITH c AS (SELECT c.id, c.state AS prev, b.name AS bot FROM commands c JOIN bots b ON b.id = c.bot_id
                       WHERE c.id = \(id) AND c.bot_id = \(botID)
                         AND (\(connectionID)::uuid IS NULL OR b.connection_id = \(connectionID)) FOR UPDATE OF c),
            s AS (INSERT INTO command_steps (command_id, step, status, detail, agent_at)
                  SELECT c.id, \(step), \(result.status.name), \(result.detail), to_timestamp(\(agentAt)) FROM c
                  ON CONFLICT DO NOTHING RETURNING 1),
            u AS (UPDATE commands SET state = \(next),
                         acknowledged_at = CASE WHEN \(next) = 'delivered' THEN commands.acknowledged_at
                                                ELSE COALESCE(commands.acknowledged_at, now()) END,
                         delivered_at = COALESCE(commands.delivered_at, now()),
                         completed_at = CASE WHEN \(next) = 'completed' THEN now() ELSE commands.completed_at END,
                         failed_at = CASE WHEN \(next) = 'failed' THEN now() ELSE commands.failed_at END,
                         detail = CASE WHEN \(target.isFinal) THEN \(result.detail) ELSE commands.detail END
                  FROM c WHERE commands.id = c.id
                    AND (SELECT r FROM unnest(\(states)::text[], \(ranks)::int8[]) AS o(s, r) WHERE o.s = c.prev) < \(target.rank)
                  RETURNING commands.id, commands.state),
            audit AS (INSERT INTO audit_log (actor, actor_kind, action, outcome, bot, command_id, remote, detail)
                      SELECT c.bot, 'bot', 'command.' || u.state, 'ok', c.bot, u.id, NULL, \(step + " " + result.status.name + ": " + result.detail)
                      FROM u JOIN c ON c.id = u.id
                      UNION ALL
                      SELECT c.bot, 'bot', 'command.refused', 'refused', c.bot, c.id, NULL, \(result.detail)
                      FROM c WHERE \(result.status.name) = 'refused' AND EXISTS (SELECT 1 FROM s)
                      RETURNING 1)
            SELECT COALESCE((SELECT state FROM u), (SELECT state FROM commands WHERE id = (SELECT id FROM c))),
                   (SELECT count(*) FROM s), (SELECT count(*) FROM audit)
            """, logger: logger)
        var state: String?
        for try await (s, _, _) in rows.decode((String?, Int64, Int64).self) { state = s }
        return state
    }

    /// Commands not acknowledged `after` their creation and not yet reported: marks them reported (so exactly
    /// one replica raises the alert) and returns (bot, command id, state).
    public func takeOverdue(after: Duration) async throws -> [(bot: String, id: CommandID, state: String)] {
        let seconds = after.inSeconds
        let rows = try await client.query("""
            WITH u AS (UPDATE commands SET overdue_alerted_at = now()
                       WHERE state IN ('pending', 'delivered') AND overdue_alerted_at IS NULL
                         AND created_at < now() - \(seconds) * interval '1 second'
                       RETURNING id, bot_id, state)
            SELECT b.name, u.id, u.state FROM u JOIN bots b ON b.id = u.bot_id
            """, logger: logger)
        var out: [(bot: String, id: CommandID, state: String)] = []
        for try await (bot, id, state) in rows.decode((String, CommandID, String).self) { out.append((bot, id, state)) }
        return out
    }

    /// Bots with an open "command not acknowledged" alert and no overdue command left.
    public func botsNoLongerOverdue(ruleID: String, after: Duration) async throws -> [String] {
        let seconds = after.inSeconds
        let rows = try await client.query("""
            SELECT b.name FROM alerts a JOIN bots b ON b.id = a.bot_id
            WHERE a.rule_id = \(ruleID) AND a.state = 'firing'
              AND NOT EXISTS (SELECT 1 FROM commands c WHERE c.bot_id = a.bot_id AND c.state IN ('pending', 'delivered')
                              AND c.created_at < now() - \(seconds) * interval '1 second')
            """, logger: logger)
        var out: [String] = []
        for try await name in rows.decode(String.self) { out.append(name) }
        return out
    }
}

extension CommandLedger {
    /// Writes a command taken during a database outage (`BreakGlassJournal`) to the ledger: the command as sent
    /// (state delivered, its steps follow through `record`), the bot latched in emergency mode, and the audit rows
    /// of the request and the delivery. Idempotent by the command's id: a second call writes nothing.
    ///
    /// The same request repeated with its Idempotency-Key through another replica before this import (that replica
    /// has no journal entry of it) is a command of its own there, and the bot is sent both. This one is written all
    /// the same, without the key, with an audit row naming the other: what break glass sent stays in the ledger. It
    /// does not latch the bot when a command of the bot came after it (the repeated stop latched it; a resume since
    /// stands). A key that went to another request meanwhile is handled the same way, and the audit row says so. A key
    /// taken under the statement by another bot's command (which does not wait for this bot's row) makes it throw: it
    /// is tried again.
    @discardableResult
    public func importBreakGlass(_ entry: BreakGlassJournal.Entry, hub: String) async throws -> BreakGlassImport {
        let r = entry.record
        let hash = Self.requestHash(bot: r.bot, kind: CommandKind(rawValue: r.kind) ?? .emergencyStop, reason: r.reason, liquidate: r.liquidate)
        let note = "taken by \(hub) while the database was unreachable (break glass); written to the ledger when it answered again"
        let sentAt = r.deliveredAt ?? r.createdAt
        typealias Counts = (bots: Int64, idElsewhere: Int64, inserted: Int64, twins: Int64, held: Int64, repeated: String?, same: Bool)
        let counts: Counts? = try await client.withLeasedConnection { connection in
            try await connection.withTransaction(logger: logger) { tx -> Counts? in
                // The bot's row first: the statement then sees every command of the bot committed before it got the row
                // (a resume, the same request repeated), where a statement waiting for it inside would keep its snapshot
                // from before the wait.
                try await tx.query("SELECT 1 FROM bots WHERE name = \(r.bot) FOR UPDATE", logger: logger)
                let rows = try await tx.query("""
                    WITH b AS (SELECT id FROM bots WHERE name = \(r.bot)),   -- locked by the statement before
                    ins AS (
                        INSERT INTO commands (id, bot_id, kind, origin, issued_by, reason, actions, liquidate, liquidation_requested,
                                              liquidation_refused, idempotency_key, request_hash, remote, state, created_at,
                                              delivered_at, last_delivered_at, delivered_by, deliveries)
                        SELECT \(r.id), b.id, \(r.kind), \(r.origin), \(r.issuedBy), \(r.reason), \(Int16(entry.actions)), \(r.liquidate),
                               \(r.liquidationRequested), \(r.liquidationRefused), \(entry.idempotencyKey), \(hash), \(entry.remote),
                               'delivered', \(r.createdAt), \(sentAt), \(sentAt), \(hub), \(Int32(max(r.deliveries, 1)))
                        FROM b
                        ON CONFLICT DO NOTHING
                        RETURNING id, bot_id),
                    -- The key written first through another replica: by the same request (same bot and body), or by another.
                    repeated AS (SELECT c.id, c.bot_id = (SELECT id FROM b) AND c.request_hash = \(hash) AS same FROM commands c
                                 WHERE c.issued_by = \(r.issuedBy) AND c.idempotency_key = \(entry.idempotencyKey) AND c.id <> \(r.id)),
                    twin AS (
                        INSERT INTO commands (id, bot_id, kind, origin, issued_by, reason, actions, liquidate, liquidation_requested,
                                              liquidation_refused, idempotency_key, request_hash, remote, state, created_at,
                                              delivered_at, last_delivered_at, delivered_by, deliveries)
                        SELECT \(r.id), b.id, \(r.kind), \(r.origin), \(r.issuedBy), \(r.reason), \(Int16(entry.actions)), \(r.liquidate),
                               \(r.liquidationRequested), \(r.liquidationRefused), NULL, \(hash), \(entry.remote),
                               'delivered', \(r.createdAt), \(sentAt), \(sentAt), \(hub), \(Int32(max(r.deliveries, 1)))
                        FROM b
                        WHERE NOT EXISTS (SELECT 1 FROM ins) AND EXISTS (SELECT 1 FROM repeated)
                          AND NOT EXISTS (SELECT 1 FROM commands WHERE id = \(r.id))
                        ON CONFLICT DO NOTHING
                        RETURNING id, bot_id),
                    written AS (SELECT id, bot_id FROM ins UNION ALL SELECT id, bot_id FROM twin),
                    -- The same command written by its own ledger call, whose statement committed after the call was given up
                    -- on (both carry one id): break glass sent it, so it is delivered, and the audit log says how, once.
                    held AS (UPDATE commands c SET state = CASE WHEN c.state = 'pending' THEN 'delivered' ELSE c.state END,
                                                   delivered_at = LEAST(COALESCE(c.delivered_at, \(sentAt)), \(sentAt)),
                                                   last_delivered_at = GREATEST(COALESCE(c.last_delivered_at, \(sentAt)), \(sentAt)),
                                                   delivered_by = COALESCE(c.delivered_by, \(hub))
                             FROM b WHERE c.id = \(r.id) AND c.bot_id = b.id AND NOT EXISTS (SELECT 1 FROM ins)
                             RETURNING c.id),
                    -- The bot latched, as break glass latched its agent, unless a command of the bot came after this one: a later
                    -- stop latched it itself (the same request repeated through another replica, too), and a later resume stands.
                    latch AS (UPDATE bots SET emergency_command_id = written.id, emergency_since = COALESCE(emergency_since, \(r.createdAt))
                              FROM written WHERE bots.id = written.bot_id AND \(r.kind) = 'emergency_stop'
                                AND NOT EXISTS (SELECT 1 FROM commands c WHERE c.bot_id = written.bot_id AND c.id <> written.id
                                                                          AND c.created_at > \(r.createdAt))
                              RETURNING 1),
                    audit AS (INSERT INTO audit_log (at, actor, actor_kind, action, outcome, bot, command_id, remote, detail)
                              SELECT \(r.createdAt), \(r.issuedBy), \(entry.actorKind), \(r.kind + ".requested"), 'ok', \(r.bot), written.id, \(entry.remote),
                                     \(r.reason) FROM written
                              UNION ALL
                              SELECT \(sentAt), \(hub), 'hub', 'command.delivered', 'ok', \(r.bot), written.id, NULL, \(note) FROM written
                              UNION ALL
                              SELECT now(), \(hub), 'hub', 'command.repeated', 'ok', \(r.bot), twin.id, NULL,
                                     CASE WHEN (SELECT bool_and(same) FROM repeated)
                                          THEN 'the same request (Idempotency-Key) reached the ledger through another replica as command '
                                               || (SELECT string_agg(id::text, ', ') FROM repeated)
                                               || ' before this break-glass journal was imported: the bot was sent both; this one is kept without the key'
                                          ELSE 'its Idempotency-Key went to another request (command '
                                               || (SELECT string_agg(id::text, ', ') FROM repeated)
                                               || ') before this break-glass journal was imported; this one is kept without the key' END
                              FROM twin
                              UNION ALL
                              SELECT \(sentAt), \(hub), 'hub', 'command.delivered', 'ok', \(r.bot), held.id, NULL, \(note) FROM held
                              WHERE NOT EXISTS (SELECT 1 FROM audit_log a WHERE a.command_id = held.id AND a.action = 'command.delivered'
                                                                            AND a.detail = \(note))
                              RETURNING 1)
                    SELECT (SELECT count(*) FROM b), (SELECT count(*) FROM commands WHERE id = \(r.id) AND bot_id <> (SELECT id FROM b)),
                           (SELECT count(*) FROM ins), (SELECT count(*) FROM twin), (SELECT count(*) FROM held),
                           (SELECT string_agg(id::text, ', ') FROM repeated), (SELECT COALESCE(bool_and(same), false) FROM repeated),
                           (SELECT count(*) FROM audit)
                    """, logger: logger)
                var counts: Counts?
                for try await (bots, elsewhere, inserted, twins, held, repeated, same, _)
                    in rows.decode((Int64, Int64, Int64, Int64, Int64, String?, Bool, Int64).self) {
                    counts = (bots, elsewhere, inserted, twins, held, repeated, same)
                }
                return counts
            }
        }
        guard let c = counts, c.bots > 0 else {
            logger.error("break-glass command \(r.id) not written: bot \(r.bot) is not in the ledger (removed since?)")
            return .botUnknown
        }
        if c.idElsewhere > 0 {
            logger.error("break-glass command \(r.id) of \(r.bot) not written: the ledger has a command of another bot under its id (a journal file copied from elsewhere?)")
            return .idTaken
        }
        if c.inserted > 0 {
            logger.notice("break-glass command \(r.id) of \(r.bot) written to the ledger")
            return .written
        }
        if c.twins > 0 {
            let other = c.repeated ?? "?"
            if c.same {
                logger.warning("break-glass command \(r.id) of \(r.bot) written to the ledger beside command \(other): the same request was repeated with its Idempotency-Key through another replica before this journal was imported, and the bot was sent both")
            } else {
                logger.warning("break-glass command \(r.id) of \(r.bot) written to the ledger without its Idempotency-Key: the key went to another request (command \(other)) before this journal was imported")
            }
            return .writtenBeside(other, sameRequest: c.same)
        }
        if c.held > 0 {
            logger.notice("break-glass command \(r.id) of \(r.bot) was in the ledger already")
            return .alreadyThere
        }
        // Its key went to a command of another bot committed under this statement, unseen by its snapshot. The next try
        // sees it.
        throw BreakGlassImportRaced(id: r.id, bot: r.bot)
    }
}

/// What `CommandLedger.importBreakGlass` did with a journal entry.
public enum BreakGlassImport: Sendable, Equatable {
    /// The command is now in the ledger as break glass sent it.
    case written
    /// Written without its Idempotency-Key, beside the command(s) named, which took the key first through another
    /// replica: the same request repeated (`sameRequest`), or another.
    case writtenBeside(String, sameRequest: Bool)
    /// In the ledger already (imported before, or written by its own ledger call that committed after it was given up on).
    case alreadyThere
    /// The bot is not in the ledger: nothing written.
    case botUnknown
    /// A command of another bot has this command's id: nothing written.
    case idTaken
}

/// A break-glass import that found its command's key or id taken by a command written while it waited for the bot's
/// row: nothing was written, and the next try (the journal keeps the entry) sees that command.
public struct BreakGlassImportRaced: Error, CustomStringConvertible {
    public let id: CommandID
    public let bot: String
    public var description: String {
        "break-glass command \(id) of \(bot): a command written meanwhile took its key or id; trying again"
    }
}
