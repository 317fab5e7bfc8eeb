import FleetwatchControl
import FleetwatchProtocol
import FleetwatchStorage
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

/// The emergency stop while PostgreSQL is unreachable ("break glass"): the replica holding the bot's connection
/// journals the command on its own disk (synced) and sends it at once; the bot's step results go to the same
/// journal and are shown by `GET /api/commands/{id}`; `BreakGlassReconciler` writes it all to the ledger once the
/// database answers. No liquidation (whether the bot allows it lives in the database), no resume.
struct BreakGlass: Sendable {
    let journal: BreakGlassJournal
    let connections: LiveConnections
    let health: DatabaseHealth
    let hubID: String
    let frameTTL: Duration
    let logger: Logger
    /// The wall clock of the journal's times and the frames' expiry.
    var clock: any MillisecondClock = SystemClock.wall

    var databaseDown: Bool { !health.isUp }

    /// A ledger call that gives up the moment the database is noticed down, and is then cancelled (`failFast`): what
    /// the caller was told did not happen (a stop answered by break glass, or refused because break glass never
    /// liquidates; a bot's report not recorded) must not be written later, when a pooled connection frees up. A
    /// statement already in PostgreSQL may still commit (postgres-nio sends no cancel request).
    func ledgerCall<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await health.failFast(body)
    }

    /// - Parameter id: the command's id; the one its ledger call was given, when that call was given up on.
    func stop(bot: String, actor: Actor, origin: CommandOrigin, reason: String, liquidate: Bool,
              idempotencyKey: String?, id: CommandID = .random()) async throws -> CommandRequestOutcome {
        if let idempotencyKey, let earlier = await journalled(bot: bot, issuedBy: actor.name, reason: reason, idempotencyKey: idempotencyKey) {
            return earlier
        }
        guard !liquidate else {
            throw HTTPError(.conflict, message: "the database is unreachable: whether \(bot) may liquidate is not known here, so a stop during the outage never liquidates; send it without \"liquidate\"")
        }
        guard let (botID, connectionID) = await connections.newest(bot: bot) else {
            let holder = await connections.lastKnownHolder(of: bot)
            throw HTTPError(.serviceUnavailable, headers: [.retryAfter: "5"],
                            message: "the database is unreachable and bot \(bot) is not connected to this replica (\(hubID)): send the stop to the replica holding its connection"
                                + (holder.map { " (last known: \($0))" } ?? " (none known here)"))
        }
        let now = clock.date
        let record = CommandRecord.breakGlass(bot: bot, origin: origin, issuedBy: actor.name, reason: reason, hub: hubID, at: now, id: id)
        let entry = BreakGlassJournal.Entry(record: record, botID: botID, actorKind: actor.kind.rawValue, remote: actor.remote,
                                            idempotencyKey: idempotencyKey, actions: CommandFrame.Actions.emergencyStop.rawValue)
        do {
            try await journal.add(entry)
        } catch {
            logger.error("break-glass stop of \(bot) not journalled: \(error)")
            throw HTTPError(.internalServerError, message: "the stop could not be written to this replica's disk (see its log); nothing was sent to \(bot)")
        }
        let sent = await connections.send(.command(frame(entry)), to: bot, connection: connectionID)
        logger.critical("BREAK GLASS: emergency stop of \(bot) by \(actor.kind.rawValue) \(actor.name) while the database is unreachable (command \(record.id), \(sent ? "sent" : "connection gone: sent when it reconnects")): \(reason)")
        return .created(record)
    }

    /// The stop this replica took by break glass under `idempotencyKey`, while it is in the journal (until the journal
    /// is written to the ledger): the same request again is that stop, another one with the key a conflict.
    func journalled(bot: String, issuedBy: String, reason: String, idempotencyKey: String) async -> CommandRequestOutcome? {
        guard let earlier = await journal.entry(issuedBy: issuedBy, idempotencyKey: idempotencyKey) else { return nil }
        return earlier.record.bot == bot && earlier.record.reason == reason ? .existing(earlier.record) : .idempotencyConflict
    }

    func frame(_ entry: BreakGlassJournal.Entry) -> CommandFrame {
        let now = clock.unsignedMs
        return CommandFrame(commandID: entry.record.id, botID: entry.record.bot,
                            issuedAtMs: UInt64(max(0, entry.record.createdAt.timeIntervalSince1970 * 1000)),
                            expiresAtMs: now + UInt64(max(0, frameTTL.wholeMilliseconds)), actions: CommandFrame.Actions(rawValue: entry.actions),
                            reason: entry.record.reason)
    }
}

/// Writes break-glass commands to the ledger whenever the database answers (and at start, for a journal left by
/// a replica that was killed).
struct BreakGlassReconciler: Service {
    let journal: BreakGlassJournal
    let ledger: CommandLedger
    let health: DatabaseHealth
    let hubID: String
    /// Alert transitions notified during the outage, written to the alert table as well.
    var alerts: OutageAlertStore?
    var interval: Duration = .seconds(1)

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                if health.isUp, await !journal.pending.isEmpty {
                    _ = await journal.reconcile(into: ledger, hub: hubID)
                }
                if health.isUp, let alerts, alerts.waiting > 0 { await alerts.reconcile() }
                try? await Task.sleep(for: interval)
            }
        }
    }
}
