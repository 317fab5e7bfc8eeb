import FleetwatchAlerting
import FleetwatchControl
import FleetwatchProtocol
import FleetwatchStorage
import Logging

/// Automatic emergency shutdown: a rule with `emergencyStop` fired on this replica (exactly one replica opens an
/// alert), so this replica writes the stop into the ledger, with the rule as the issuer. While the database is
/// unreachable the stop takes the break-glass path, as an operator's does, also when the outage is noticed while the
/// stop is waiting for a database connection: it is then abandoned (never written later) and sent by break glass,
/// instead of waiting for the pool to fail and leaving a runaway bot trading. A stop break glass cannot send (the bot
/// is not connected to this replica) is written to the ledger as soon as the database answers, for the replica
/// holding the bot to send.
struct AutomaticStop: Sendable {
    let ledger: CommandLedger
    let breakGlass: HubApplication.BreakGlassBox
    let emergencyAlerts: EmergencyAlerts
    let hubID: String
    let logger: Logger
    /// How often a stop waiting for the database tries again, and for how long.
    var retryInterval: Duration = .seconds(1)
    var retryFor: Duration = .seconds(3600)

    /// Stops `bot` because `rule` saw `value`: what was done, or nil when it is left to `writeWhenUp` or could not be
    /// recorded (logged).
    @discardableResult
    func callAsFunction(bot: String, rule: Rule, value: Double) async -> CommandRequestOutcome? {
        let reason = "\(rule.summary) (value \(AlertEvent.format(value)), limit \(AlertEvent.format(rule.limit)))"
        let actor = Actor(name: rule.id, kind: .rule, remote: hubID)
        // One id for the ledger call and its break-glass fallback: should the call's statement commit after it was
        // given up on, the two are one command.
        let id = CommandID.random()
        guard let glass = breakGlass.current else {
            do {
                return await done(try await request(bot, actor, reason, id), bot: bot, reason: reason)
            } catch {
                logger.critical("automatic emergency shutdown of \(bot) could not be recorded: \(String(reflecting: error))")
                return nil
            }
        }
        do {
            guard !glass.databaseDown else { throw DatabaseUnavailable(state: glass.health.current) }
            return await done(try await glass.ledgerCall { try await request(bot, actor, reason, id) }, bot: bot, reason: reason)
        } catch is DatabaseUnavailable {
            do {
                return await done(try await glass.stop(bot: bot, actor: actor, origin: .rule, reason: reason, liquidate: false,
                                                       idempotencyKey: nil, id: id), bot: bot, reason: reason)
            } catch {
                logger.critical("automatic emergency shutdown of \(bot) cannot be sent by this replica while the database is unreachable (\(String(describing: error))): it is written to the ledger as soon as the database answers, for the replica holding the bot to send")
                Task { await writeWhenUp(glass, bot: bot, actor: actor, reason: reason, id: id) }
                return nil
            }
        } catch {
            logger.critical("automatic emergency shutdown of \(bot) could not be recorded: \(String(reflecting: error))")
            return nil
        }
    }

    /// Writes the stop to the ledger whenever the database is up, until it is there or `retryFor` has passed. A
    /// rule's stop is never written twice: once the bot is latched, another is `alreadyInEmergency`.
    @discardableResult
    func writeWhenUp(_ glass: BreakGlass, bot: String, actor: Actor, reason: String, id: CommandID) async -> CommandRequestOutcome? {
        let deadline = ContinuousClock.now + retryFor
        var failures = 0
        while !Task.isCancelled, ContinuousClock.now < deadline {
            if !glass.databaseDown {
                do {
                    return await done(try await glass.ledgerCall { try await request(bot, actor, reason, id) }, bot: bot, reason: reason)
                } catch is DatabaseUnavailable {
                } catch {
                    failures += 1
                    if failures == 1 { logger.error("automatic emergency shutdown of \(bot) not written yet, trying again: \(String(reflecting: error))") }
                }
            }
            try? await Task.sleep(for: retryInterval)
        }
        logger.critical("automatic emergency shutdown of \(bot) could not be recorded within \(retryFor): stop it by hand")
        return nil
    }

    private func request(_ bot: String, _ actor: Actor, _ reason: String, _ id: CommandID) async throws -> CommandRequestOutcome {
        try await ledger.requestStop(bot: bot, actor: actor, origin: .rule, reason: reason, liquidate: false, id: id)
    }

    private func done(_ outcome: CommandRequestOutcome, bot: String, reason: String) async -> CommandRequestOutcome {
        if case .created(let record) = outcome {
            logger.critical("automatic emergency shutdown of \(bot): \(reason) (command \(record.id))")
            await emergencyAlerts.latched(record)
        }
        return outcome
    }
}
