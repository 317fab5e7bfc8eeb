/// Where alert state lives (PostgreSQL in the hub). Every transition is conditional, so when several hub
/// replicas observe the same bot only one of them gets the event back and notifies.
public protocol AlertStore: Sendable {
    /// Opens an alert unless one is already firing for (bot, rule); returns the event if this call opened it.
    func fire(bot: String, rule: Rule, value: Double, state: String?) async throws -> AlertEvent?
    /// Marks a repeat if the last notification is older than `cooldownMs`; returns the event if this call did.
    func repeatIfDue(bot: String, rule: Rule, value: Double, state: String?, cooldownMs: Int64) async throws -> AlertEvent?
    /// Resolves the firing alert of (bot, rule), if any; returns the event if this call resolved it.
    func resolve(bot: String, rule: Rule, value: Double, state: String?) async throws -> AlertEvent?
    /// Rules with a firing alert for `bot`.
    func firingRules(bot: String) async throws -> Set<String>
    /// Whether a silence covers `bot` (and `metric`) now.
    func isSilenced(bot: String, metric: String) async throws -> Bool
}

/// Receives every alert event (the fan-out dispatcher, or a test double).
public protocol AlertSink: Sendable {
    func deliver(_ event: AlertEvent) async
}
