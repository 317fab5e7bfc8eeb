import FleetwatchAlerting
import FleetwatchNotify
import FleetwatchStorage
import Synchronization

/// The notification ledger without waiting on a dead database: while PostgreSQL is unreachable an attempt is
/// not recorded (the alert was still sent), and retries are never held up by the ledger. The ledger's writer gives
/// up on a statement the moment the database goes down (`NotificationLedgerWriter`).
struct FailFastNotificationLedger: NotificationLedger {
    let inner: any NotificationLedger
    let health: DatabaseHealth?

    func record(_ event: AlertEvent, channel: String, attempt: Int, outcome: String, error: String?, durationMs: Double) async {
        if let health, case .down = health.current { return }
        await inner.record(event, channel: channel, attempt: attempt, outcome: outcome, error: error, durationMs: durationMs)
    }

    func flush() async { await inner.flush() }
}

/// Each bot's thresholds, and while PostgreSQL is unreachable the last ones read for it (the rules do not
/// change during an outage: nobody can change them).
final class FailFastProfiles: Sendable {
    let inner: PostgresProfileSource
    let health: DatabaseHealth?
    private let last = Mutex<[String: ThresholdProfile]>([:])

    init(inner: PostgresProfileSource, health: DatabaseHealth?) {
        self.inner = inner
        self.health = health
    }

    func profile(_ bot: String) async throws -> ThresholdProfile {
        do {
            let p: ThresholdProfile
            if let health { p = try await health.failFast { [inner] in try await inner.profile(bot: bot) } } else { p = try await inner.profile(bot: bot) }
            last.withLock { $0[bot] = p }
            return p
        } catch let unavailable as DatabaseUnavailable {
            guard let known = last.withLock({ $0[bot] }) else { throw unavailable }
            return known
        }
    }
}
