import FleetwatchAlerting
import FleetwatchControl
import FleetwatchStorage
import Logging

/// The CRITICAL alerts around emergency stops, through the same alert store and channels as every rule:
/// `emergency_mode` while a bot is latched (fired by the stop, resolved by the resume) and
/// `command_unacknowledged` while a command waits too long for the bot's acknowledgement.
struct EmergencyAlerts: Sendable {
    static let latchedRule = Rule(id: "emergency_mode", kind: .above(metric: "emergency_mode"), limit: 0, level: .critical,
                                  summary: "Bot in emergency mode")
    static let unacknowledgedRule = Rule(id: "command_unacknowledged", kind: .above(metric: "command_unacknowledged_seconds"),
                                         limit: 0, level: .critical, summary: "Emergency command not acknowledged by the bot")
    let store: (any AlertStore)?
    let sink: (any AlertSink)?
    let logger: Logger

    /// A stop latched `record.bot` (by an operator, a rule or the bot itself).
    func latched(_ record: CommandRecord) async {
        var rule = Self.latchedRule
        let who = record.origin == CommandOrigin.operator.rawValue ? "operator \(record.issuedBy)"
            : record.origin == CommandOrigin.rule.rawValue ? "automatic shutdown (\(record.issuedBy))" : "the bot itself"
        rule.summary = "Emergency stop by \(who): \(record.reason)"
        await fire(bot: record.bot, rule: rule, value: 1)
    }

    /// An operator resumed `bot`.
    func resumed(bot: String, by: String) async {
        guard let store, let sink else { return }
        do {
            if let event = try await store.resolve(bot: bot, rule: Self.latchedRule, value: 0, state: nil) { await sink.deliver(event) }
        } catch {
            logger.error("cannot resolve the emergency alert of \(bot): \(String(reflecting: error))")
        }
    }

    /// A command to `bot` has not been acknowledged for `seconds`.
    func unacknowledged(bot: String, seconds: Double, state: String) async {
        var rule = Self.unacknowledgedRule
        rule.summary = "Emergency command still \(state) after \(Int(seconds)) s: the bot has not acknowledged it"
        await fire(bot: bot, rule: rule, value: seconds)
    }

    /// `bot` has no overdue command any more.
    func acknowledged(bot: String) async {
        guard let store, let sink else { return }
        do {
            if let event = try await store.resolve(bot: bot, rule: Self.unacknowledgedRule, value: 0, state: nil) { await sink.deliver(event) }
        } catch {
            logger.error("cannot resolve the unacknowledged-command alert of \(bot): \(String(reflecting: error))")
        }
    }

    private func fire(bot: String, rule: Rule, value: Double) async {
        guard let store, let sink else {
            logger.critical("[CRITICAL] \(bot): \(rule.summary) (alerting is disabled)")
            return
        }
        do {
            if var event = try await store.fire(bot: bot, rule: rule, value: value, state: nil) {
                event.silenced = try await store.isSilenced(bot: bot, metric: rule.metric)
                await sink.deliver(event)
            }
        } catch {
            logger.error("cannot raise the \(rule.id) alert of \(bot): \(String(reflecting: error))")
        }
    }
}
