import FleetwatchControl
import Crypto
import FleetwatchProtocol
import Foundation
import Logging
import PostgresNIO

/// The emergency-stop command ledger in PostgreSQL. Every change is one statement that also writes its
/// audit row and, when a bot must hear about it, a NOTIFY on `channel` (delivered at commit). Replicas
/// never coordinate otherwise: the table is the truth, the notification only a wake-up.
public struct CommandLedger: Sendable {
    /// NOTIFY channel; the payload is the bot's name.
    public static let channel = "fleetwatch_commands"

    let client: any PostgresQuerying
    let logger: Logger

    public init(client: any PostgresQuerying, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Why the hub refuses a liquidation the bot does not allow.
    public static let liquidationNotAllowedReason = "liquidation is not allowed for this bot (monitor-hub bots liquidation BOT on)"

    /// Requests an emergency stop of `bot`: stop trading, cancel open orders, liquidate (if asked and allowed
    /// for the bot), latch emergency mode. The bot is latched in emergency mode from this moment.
    /// An operator asking for a liquidation the bot does not allow is refused (`liquidationNotAllowed`); a rule
    /// that asks gets the stop without it, the refusal recorded in the command and the audit log. `id` names the
    /// command: a caller that may fall back to break glass gives both the same id, so that a stop whose statement
    /// commits after it was given up on and its break-glass twin are one command in the ledger. `writing` is called
    /// just before the statement that writes the stop is asked for: a caller that gives up after it cannot know
    /// whether the stop was written.
    public func requestStop(bot: String, actor: Actor, origin: CommandOrigin, reason: String, liquidate: Bool,
                            idempotencyKey: String? = nil, id: CommandID = .random(),
                            writing: (@Sendable () -> Void)? = nil) async throws -> CommandRequestOutcome {
        guard let (_, allowLiquidation, latched) = try await botRow(bot) else { return .unknownBot }
        if origin == .rule, latched { return .alreadyInEmergency }
        if liquidate, !allowLiquidation, origin == .operator { return .liquidationNotAllowed }
        let granted = liquidate && allowLiquidation
        var actions: CommandFrame.Actions = .emergencyStop
        if granted { actions.insert(.liquidate) }
        writing?()
        return try await insert(bot: bot, kind: .emergencyStop, origin: origin, actor: actor, reason: reason,
                                actions: actions, liquidate: granted, liquidationRequested: liquidate,
                                idempotencyKey: idempotencyKey, latch: true, onlyIfLatched: false, id: id)
    }

    /// Clears `bot`'s emergency mode and sends it a resume command. Only when it is in emergency mode.
    public func requestResume(bot: String, actor: Actor, reason: String, idempotencyKey: String? = nil) async throws -> CommandRequestOutcome {
        guard try await botRow(bot) != nil else { return .unknownBot }
        return try await insert(bot: bot, kind: .resume, origin: .operator, actor: actor, reason: reason,
                                actions: .resume, liquidate: false, liquidationRequested: false,
                                idempotencyKey: idempotencyKey, latch: false, onlyIfLatched: true)
    }

    /// What recording a bot's own declaration did.
    public struct Declared: Sendable, Equatable {
        /// Whether this call recorded it (false: recorded before, not a UUID, or not from the lease holder).
        public var recorded: Bool
        /// Whether the connection holds the bot's lease (false: nothing was recorded, nothing may be confirmed).
        public var leaseHeld: Bool = true
        /// The steps the hub holds the bot to: the declaration's, without liquidation unless the bot allows it.
        public var actions: CommandFrame.Actions
    }

    /// Records an emergency the bot declared itself (its steps already ran) and latches it, if `connectionID`
    /// holds the bot's lease. Idempotent by id. The hub's clock dates it; the liquidation it claims is kept
    /// only where the bot allows liquidation — otherwise the refusal is recorded, and the command the hub
    /// re-sends on every reconnect never liquidates.
    public func recordDeclaration(_ declaration: EmergencyDeclaration, botID: Int32, botName: String, connectionID: UUID,
                                  hub: String) async throws -> Declared {
        // Only the steps of an emergency stop; a declaration cannot ask for a resume (or bits nobody defined).
        let stopSteps: CommandFrame.Actions = [.stopTrading, .cancelOrders, .liquidate, .latchEmergency]
        var granted = declaration.actions.intersection(stopSteps)
        granted.remove(.liquidate)
        let id = declaration.commandID
        let asked = declaration.actions.contains(.liquidate)
        let actions = Int16(declaration.actions.intersection(stopSteps).rawValue)
        let rows = try await client.query("""
            WITH b AS (SELECT id, allow_liquidation FROM bots WHERE id = \(botID) AND connection_id = \(connectionID) FOR UPDATE),
            ins AS (
                INSERT INTO commands (id, bot_id, kind, origin, issued_by, reason, actions, liquidate, liquidation_requested,
                                      liquidation_refused, state, created_at, delivered_at, acknowledged_at, delivered_by, remote)
                SELECT \(id), b.id, \(CommandKind.emergencyStop.rawValue), \(CommandOrigin.bot.rawValue), \(botName), \(declaration.reason),
                       CASE WHEN b.allow_liquidation THEN \(actions) ELSE \(actions) & ~4 END,
                       \(asked) AND b.allow_liquidation, \(asked),
                       CASE WHEN \(asked) AND NOT b.allow_liquidation THEN \(Self.liquidationNotAllowedReason) END,
                       'acknowledged', now(), now(), now(), \(hub), 'agent'
                FROM b
                ON CONFLICT (id) DO NOTHING
                RETURNING id, bot_id, actions, liquidation_refused),
            latch AS (UPDATE bots SET emergency_command_id = ins.id, emergency_since = COALESCE(emergency_since, now())
                      FROM ins WHERE bots.id = ins.bot_id RETURNING 1),
            audit AS (INSERT INTO audit_log (actor, actor_kind, action, outcome, bot, command_id, remote, detail)
                      SELECT \(botName), 'bot', 'emergency_stop.declared', 'ok', \(botName), ins.id, \(hub), \(declaration.reason) FROM ins
                      UNION ALL
                      SELECT \(botName), 'bot', 'liquidation.refused', 'refused', \(botName), ins.id, \(hub), ins.liquidation_refused
                      FROM ins WHERE ins.liquidation_refused IS NOT NULL
                      RETURNING 1)
            SELECT (SELECT count(*) FROM ins),
                   COALESCE((SELECT actions FROM ins), (SELECT actions FROM commands WHERE id = \(id) AND bot_id = \(botID)), 0::int2),
                   (SELECT count(*) FROM latch) + (SELECT count(*) FROM audit), (SELECT count(*) FROM b)
            """, logger: logger)
        var inserted: Int64 = 0, held: Int64 = 0
        for try await (n, stored, _, lease) in rows.decode((Int64, Int16, Int64, Int64).self) {
            inserted = n
            held = lease
            if stored != 0 { granted = CommandFrame.Actions(rawValue: UInt8(truncatingIfNeeded: stored)) }
        }
        return Declared(recorded: inserted == 1, leaseHeld: held > 0, actions: granted)
    }

    private func botRow(_ bot: String) async throws -> (Int32, Bool, Bool)? {
        try await client.query("""
            SELECT id, allow_liquidation, emergency_command_id IS NOT NULL FROM bots WHERE name = \(bot)
            """, logger: logger).decode((Int32, Bool, Bool).self).first { _ in true }
    }

    private func insert(bot: String, kind: CommandKind, origin: CommandOrigin, actor: Actor, reason: String, actions: CommandFrame.Actions,
                        liquidate: Bool, liquidationRequested: Bool, idempotencyKey: String?, latch: Bool,
                        onlyIfLatched: Bool, id: CommandID = .random()) async throws -> CommandRequestOutcome {
        let refused: String? = liquidationRequested && !liquidate ? Self.liquidationNotAllowedReason : nil
        let hash = Self.requestHash(bot: bot, kind: kind, reason: reason, liquidate: liquidate)
        let rawActions = Int16(actions.rawValue)
        let rows = try await client.query("""
            WITH b AS (SELECT id FROM bots WHERE name = \(bot)
                         AND (NOT \(onlyIfLatched) OR emergency_command_id IS NOT NULL)
                         AND (\(origin == .rule) IS FALSE OR emergency_command_id IS NULL)
                       FOR UPDATE),
            ins AS (
                INSERT INTO commands (id, bot_id, kind, origin, issued_by, reason, actions, liquidate, liquidation_requested,
                                      liquidation_refused, idempotency_key, request_hash, remote)
                SELECT \(id), b.id, \(kind.rawValue), \(origin.rawValue), \(actor.name), \(reason), \(rawActions), \(liquidate),
                       \(liquidationRequested), \(refused), \(idempotencyKey), \(hash), \(actor.remote) FROM b
                ON CONFLICT (issued_by, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
                RETURNING id, bot_id),
            latch AS (UPDATE bots SET emergency_command_id = CASE WHEN \(latch) THEN ins.id END,
                                      emergency_since = CASE WHEN \(latch) THEN COALESCE(emergency_since, now()) END
                      FROM ins WHERE bots.id = ins.bot_id RETURNING 1),
            audit AS (INSERT INTO audit_log (actor, actor_kind, action, outcome, bot, command_id, remote, detail)
                      SELECT \(actor.name), \(actor.kind.rawValue), \(kind.rawValue + ".requested"), 'ok', \(bot), ins.id, \(actor.remote), \(reason)
                      FROM ins
                      UNION ALL
                      SELECT \(actor.name), \(actor.kind.rawValue), 'liquidation.refused', 'refused', \(bot), ins.id, \(actor.remote),
                             \(refused ?? "") FROM ins WHERE \(refused)::text IS NOT NULL
                      RETURNING 1),
            wake AS (SELECT pg_notify(\(Self.channel), \(bot)) FROM ins)
            SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM latch), (SELECT count(*) FROM audit), (SELECT count(*) FROM wake)
            """, logger: logger)
        var inserted: Int64 = 0
        for try await (n, _, _, _) in rows.decode((Int64, Int64, Int64, Int64).self) { inserted = n }
        if inserted == 1, let record = try await command(id: id) {
            logger.notice("\(kind.rawValue) of \(bot) requested by \(actor.kind.rawValue) \(actor.name): \(reason) (command \(id))")
            return .created(record)
        }
        if let key = idempotencyKey {
            let existing = try await client.query("""
                SELECT id, request_hash FROM commands WHERE issued_by = \(actor.name) AND idempotency_key = \(key)
                """, logger: logger).decode((CommandID, ByteBuffer?).self).first { _ in true }
            if let (existingID, existingHash) = existing {
                guard existingHash == hash, let record = try await command(id: existingID) else { return .idempotencyConflict }
                return .existing(record)
            }
        }
        if onlyIfLatched { return .notInEmergency }
        return origin == .rule ? .alreadyInEmergency : .unknownBot
    }

    /// Fingerprint of a request's body, to tell a repeated request from a different one under the same key.
    static func requestHash(bot: String, kind: CommandKind, reason: String, liquidate: Bool) -> ByteBuffer {
        let canonical = [bot, kind.rawValue, reason, liquidate ? "1" : "0"].joined(separator: "\u{1F}")
        return ByteBuffer(bytes: Array(SHA256.hash(data: Data(canonical.utf8))))
    }
}
