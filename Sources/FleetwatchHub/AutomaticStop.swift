import FleetwatchAlerting
import FleetwatchControl
import FleetwatchStorage
import Logging

/// Automatic emergency shutdown: a rule with `emergencyStop` fired on this replica (exactly one replica opens an
/// alert), so this replica writes the stop into the ledger, with the rule as the issuer. While the database is
/// unreachable the stop takes the break-glass path, as an operator's does, also when the outage is noticed while the
/// stop is waiting for a database connection: it is then abandoned (never written later) and sent by break glass,
/// instead of waiting for the pool to fail and leaving a runaway bot trading.
struct AutomaticStop: Sendable {
    let ledger: CommandLedger
    let breakGlass: HubApplication.BreakGlassBox
    let emergencyAlerts: EmergencyAlerts
    let hubID: String
    let logger: Logger

    /// Stops `bot` because `rule` saw `value`; what was done, or nil when it could not be recorded (logged).
    @discardableResult
    func callAsFunction(bot: String, rule: Rule, value: Double) async -> CommandRequestOutcome? {
        let reason = "\(rule.summary) (value \(AlertEvent.format(value)), limit \(AlertEvent.format(rule.limit)))"
        let actor = Actor(name: rule.id, kind: .rule, remote: hubID)
        do {
            let outcome: CommandRequestOutcome
            if let glass = breakGlass.current {
                do {
                    guard !glass.databaseDown else { throw DatabaseUnavailable(state: glass.health.current) }
                    outcome = try await glass.ledgerCall { [ledger] in
                        try await ledger.requestStop(bot: bot, actor: actor, origin: .rule, reason: reason, liquidate: false)
                    }
                } catch is DatabaseUnavailable {
                    outcome = try await glass.stop(bot: bot, actor: actor, origin: .rule, reason: reason, liquidate: false,
                                                   idempotencyKey: nil)
                }
            } else {
                outcome = try await ledger.requestStop(bot: bot, actor: actor, origin: .rule, reason: reason, liquidate: false)
            }
            if case .created(let record) = outcome {
                logger.critical("automatic emergency shutdown of \(bot): \(reason) (command \(record.id))")
                await emergencyAlerts.latched(record)
            }
            return outcome
        } catch {
            logger.critical("automatic emergency shutdown of \(bot) could not be recorded: \(String(reflecting: error))")
            return nil
        }
    }
}
