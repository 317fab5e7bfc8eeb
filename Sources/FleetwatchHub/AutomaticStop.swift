import FleetwatchAlerting
import FleetwatchControl
import FleetwatchProtocol
import FleetwatchStorage
import Foundation
import Logging

/// Automatic emergency shutdown: a rule with `emergencyStop` fired on this replica (exactly one replica opens an
/// alert), so this replica writes the stop into the ledger, with the rule as the issuer. While the database is
/// unreachable the stop takes the break-glass path, as an operator's does, also when the outage is noticed while the
/// stop is waiting for a database connection, or when the stop's own statement loses its connection: it is then
/// abandoned (never written later) and sent by break glass, instead of waiting for the pool to fail and leaving a
/// runaway bot trading. A stop break glass cannot send (the bot is not connected to this replica) is written to the
/// ledger as soon as the database answers, for the replica holding the bot to send, unless the bot has had a stop or
/// resume since the rule fired; a hub that stops before then says which stops were not recorded (`WaitingStops`).
struct AutomaticStop: Sendable {
    let ledger: CommandLedger
    let breakGlass: HubApplication.BreakGlassBox
    let emergencyAlerts: EmergencyAlerts
    let hubID: String
    let logger: Logger
    /// The stops waiting for the database (`writeWhenUp`).
    let waiting: WaitingStops
    /// How often a stop waiting for the database tries again, and for how long.
    var retryInterval: Duration = .seconds(1)
    var retryFor: Duration = .seconds(3600)

    /// Stops `bot` because `rule` saw `value`: what was done, or nil when it is left to `writeWhenUp` or could not be
    /// recorded (logged).
    @discardableResult
    func callAsFunction(bot: String, rule: Rule, value: Double) async -> CommandRequestOutcome? {
        let stop = Pending(bot: bot, actor: Actor(name: rule.id, kind: .rule, remote: hubID),
                           reason: "\(rule.summary) (value \(AlertEvent.format(value)), limit \(AlertEvent.format(rule.limit)))",
                           firedAt: Date())
        guard let glass = breakGlass.current else {
            do {
                return await done(try await request(stop), stop)
            } catch {
                logger.critical("automatic emergency shutdown of \(bot) could not be recorded: \(String(reflecting: error))")
                return nil
            }
        }
        do {
            guard !glass.databaseDown else { throw DatabaseUnavailable(state: glass.health.current) }
            return await done(try await glass.ledgerCall { try await request(stop) }, stop)
        } catch let error where error is DatabaseUnavailable || DatabaseHealth.isConnectionLoss(error) {
            if !(error is DatabaseUnavailable) {
                glass.health.observed(failure: "the automatic stop's statement lost its connection: \(String(describing: error).prefix(200))")
            }
            do {
                return await done(try await glass.stop(bot: bot, actor: stop.actor, origin: .rule, reason: stop.reason, liquidate: false,
                                                       idempotencyKey: nil, id: stop.id), stop)
            } catch {
                logger.critical("automatic emergency shutdown of \(bot) cannot be sent by this replica while the database is unreachable (\(String(describing: error))): it is written to the ledger as soon as the database answers, for the replica holding the bot to send")
                waiting.start(id: stop.id, bot: bot, reason: stop.reason) { settled in await writeWhenUp(glass, stop, settled: settled) }
                return nil
            }
        } catch {
            logger.critical("automatic emergency shutdown of \(bot) could not be recorded: \(String(reflecting: error))")
            return nil
        }
    }

    /// A stop decided by a rule: one id for its ledger call and its break-glass fallback, so that a statement that
    /// commits after it was given up on and its twin are one command.
    struct Pending: Sendable {
        var bot: String
        var actor: Actor
        var reason: String
        var firedAt: Date
        var id = CommandID.random()
    }

    /// Writes the stop to the ledger whenever the database is up, until it is there or `retryFor` has passed. Found
    /// there already (a statement given up on that committed after all): that is the stop. Not written when the bot
    /// has had another stop or a resume since the rule fired: an operator's decision since then stands. `settled` is
    /// called as soon as the ledger answered one of these, before the rest (the alert) is done.
    @discardableResult
    func writeWhenUp(_ glass: BreakGlass, _ stop: Pending, settled: @Sendable () -> Void = {}) async -> CommandRequestOutcome? {
        let deadline = ContinuousClock.now + retryFor
        var failures = 0
        while !Task.isCancelled, ContinuousClock.now < deadline {
            if !glass.databaseDown {
                do {
                    if let record = try await glass.ledgerCall({ try await ledger.command(id: stop.id) }) {
                        settled()
                        return await done(.created(record), stop)
                    }
                    // Cancelled (the hub stopping named it as not recorded): nothing more is written.
                    guard !Task.isCancelled else { return nil }
                    if try await glass.ledgerCall({ try await ledger.commandCount(bot: stop.bot, since: stop.firedAt) }) > 0 {
                        settled()
                        logger.warning("automatic emergency shutdown of \(stop.bot) not written: the bot has had a stop or a resume since the rule fired")
                        return nil
                    }
                    guard !Task.isCancelled else { return nil }
                    let outcome = try await glass.ledgerCall { try await request(stop) }
                    settled()
                    return await done(outcome, stop)
                } catch is DatabaseUnavailable {
                } catch {
                    failures += 1
                    if failures == 1 { logger.error("automatic emergency shutdown of \(stop.bot) not written yet, trying again: \(String(reflecting: error))") }
                }
            }
            try? await Task.sleep(for: retryInterval)
        }
        if !Task.isCancelled {
            settled()   // given up on, and said so here
            logger.critical("automatic emergency shutdown of \(stop.bot) could not be recorded within \(retryFor): stop it by hand")
        }
        return nil
    }

    private func request(_ stop: Pending) async throws -> CommandRequestOutcome {
        try await ledger.requestStop(bot: stop.bot, actor: stop.actor, origin: .rule, reason: stop.reason, liquidate: false, id: stop.id)
    }

    private func done(_ outcome: CommandRequestOutcome, _ stop: Pending) async -> CommandRequestOutcome {
        if case .created(let record) = outcome {
            logger.critical("automatic emergency shutdown of \(stop.bot): \(stop.reason) (command \(record.id))")
            await emergencyAlerts.latched(record)
        }
        return outcome
    }
}
