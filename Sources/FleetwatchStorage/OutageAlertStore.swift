import FleetwatchAlerting
import Foundation
import Logging
import FleetwatchProtocol
import Synchronization

/// Alerting that keeps going while PostgreSQL is unreachable: a transition the table cannot take is still
/// notified at once (console, log, webhook, mail) with a provisional (negative) alert id, and remembered; once the
/// database answers, `reconcile` writes each remembered transition to the alert table without notifying again.
/// Repeats wait for the database. A bot this replica had not evaluated before the outage starts with no firing
/// alerts known, so an alert already firing in the table may be notified once more for it.
///
/// A transition given up on while it waits for a pooled connection is cancelled (`DatabaseHealth.failFast`): left to
/// go on, it would write the table once the database is back, out of order with `reconcile` (a fire landing after the
/// outage's resolve would leave the alert firing for good).
public final class OutageAlertStore: AlertStore {
    struct Pending: Sendable, Codable {
        var kind: AlertEvent.Kind
        var bot: String
        var rule: Rule
        var value: Double
        var state: String?
    }
    let inner: any AlertStore
    let health: DatabaseHealth
    let logger: Logger
    private let pending = Mutex<[Pending]>([])
    private let silenced = Mutex<[String: Bool]>([:])
    /// Each bot's newest batch evaluated (epoch, sequence): batches deferred during an outage come again after it
    /// and must not be evaluated twice (an old value would resolve, and the new one fire, a second time).
    private let marks = Mutex<[String: Mark]>([:])
    struct Mark: Sendable, Codable { var epoch: UInt64; var sequence: UInt64 }
    struct Saved: Codable { var pending: [Pending]; var marks: [String: Mark] }
    /// Where the waiting transitions are kept (0600, rewritten at each change), so a replica killed during the
    /// outage writes them to the table at its next start instead of notifying them again.
    let path: String?

    public init(inner: any AlertStore, health: DatabaseHealth, path: String? = nil, logger: Logger) {
        self.inner = inner
        self.health = health
        self.logger = logger
        self.path = path
        if let path, let data = FileManager.default.contents(atPath: path) {
            do {
                let saved = try JSONDecoder().decode(Saved.self, from: data)
                let found = saved.pending
                pending.withLock { $0 = found }
                marks.withLock { $0 = saved.marks }
                if !found.isEmpty { logger.warning("alerting: \(found.count) alert transition(s) notified during a database outage wait for the alert table") }
            } catch {
                logger.error("alerting: cannot read \(path) (left in place): \(error)")
            }
        }
    }

    /// Whether a batch of `bot` is new to alerting (and notes it): false for one evaluated before, i.e. a batch
    /// deferred during an outage and sent again. Cheap: one lock per batch.
    public func firstEvaluation(bot: String, epoch: UInt64, sequence: UInt64) -> Bool {
        marks.withLock { m in
            if let last = m[bot], last.epoch == epoch, sequence <= last.sequence { return false }
            m[bot] = Mark(epoch: epoch, sequence: sequence)
            return true
        }
    }

    private func save(_ all: [Pending]) {
        guard let path else { return }
        do {
            // The marks of bots with batches deferred go along, for a restarted replica.
            let saved = Saved(pending: all, marks: all.isEmpty ? [:] : marks.withLock { $0 })
            try SecretFile.write(String(decoding: try JSONEncoder().encode(saved), as: UTF8.self), to: path)
        } catch {
            logger.error("alerting: cannot keep the outage's alert transitions on disk: \(error)")
        }
    }

    /// Transitions waiting for the alert table.
    public var waiting: Int { pending.withLock { $0.count } }

    private func provisional(_ kind: AlertEvent.Kind, bot: String, rule: Rule, value: Double, state: String?) -> AlertEvent {
        let all = pending.withLock { p -> [Pending] in
            p.append(Pending(kind: kind, bot: bot, rule: rule, value: value, state: state))
            return p
        }
        save(all)
        // Negative and random: never an id of the table, and not the same on two replicas (a receiver deduplicating
        // by alert id must not merge two bots' alerts).
        let id = -Int64.random(in: 1...Int64.max)
        let now = Date()
        logger.warning("alerting: database unreachable: \(kind.rawValue) \(bot) \(rule.id) notified now, written to the alert table when it answers")
        return AlertEvent(alertID: id, kind: kind, bot: bot, ruleID: rule.id, metric: rule.metric, level: rule.level, value: value,
                          limit: rule.limit, summary: rule.summary, firedAt: now, at: now, state: state)
    }

    public func fire(bot: String, rule: Rule, value: Double, state: String?) async throws -> AlertEvent? {
        do {
            return try await health.failFast { [inner] in try await inner.fire(bot: bot, rule: rule, value: value, state: state) }
        } catch is DatabaseUnavailable {
            return provisional(.fired, bot: bot, rule: rule, value: value, state: state)
        }
    }

    public func repeatIfDue(bot: String, rule: Rule, value: Double, state: String?, cooldownMs: Int64) async throws -> AlertEvent? {
        do {
            return try await health.failFast { [inner] in
                try await inner.repeatIfDue(bot: bot, rule: rule, value: value, state: state, cooldownMs: cooldownMs)
            }
        } catch is DatabaseUnavailable {
            return nil
        }
    }

    public func resolve(bot: String, rule: Rule, value: Double, state: String?) async throws -> AlertEvent? {
        do {
            return try await health.failFast { [inner] in try await inner.resolve(bot: bot, rule: rule, value: value, state: state) }
        } catch is DatabaseUnavailable {
            // Only what this replica fired during the outage, or knew firing: the engine asks for a rule it holds firing.
            return provisional(.resolved, bot: bot, rule: rule, value: value, state: state)
        }
    }

    public func firingRules(bot: String) async throws -> Set<String> {
        do {
            return try await health.failFast { [inner] in try await inner.firingRules(bot: bot) }
        } catch is DatabaseUnavailable {
            return []
        }
    }

    public func isSilenced(bot: String, metric: String) async throws -> Bool {
        let key = bot + "\u{1F}" + metric
        do {
            let answer = try await health.failFast { [inner] in try await inner.isSilenced(bot: bot, metric: metric) }
            silenced.withLock { s in
                if s.count > 50_000 { s.removeAll() }
                s[key] = answer
            }
            return answer
        } catch is DatabaseUnavailable {
            return silenced.withLock { $0[key] } ?? false
        }
    }

    /// Writes the transitions notified during the outage to the alert table, in order, without notifying again.
    /// Returns how many were written; stops at the first failure (the rest wait for the next call).
    @discardableResult
    public func reconcile() async -> Int {
        var done = 0
        while health.isUp, let next = pending.withLock({ $0.first }) {
            do {
                switch next.kind {
                case .fired: _ = try await health.failFast { [inner] in try await inner.fire(bot: next.bot, rule: next.rule, value: next.value, state: next.state) }
                case .resolved: _ = try await health.failFast { [inner] in try await inner.resolve(bot: next.bot, rule: next.rule, value: next.value, state: next.state) }
                case .repeated: break
                }
                save(pending.withLock { p -> [Pending] in
                    p.removeFirst()
                    return p
                })
                done += 1
            } catch {
                logger.warning("alerting: cannot write an outage's alert transitions yet: \(error)")
                break
            }
        }
        if done > 0 { logger.notice("alerting: \(done) alert transition(s) from the database outage written to the alert table (notified already)") }
        return done
    }
}
