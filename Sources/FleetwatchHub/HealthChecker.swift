import FleetwatchAlerting
import FleetwatchStorage
import Foundation
import Logging
import ServiceLifecycle

/// The reference system's periodic health check, fleet-wide: every `monitoring.health_check_interval` one
/// replica (whichever claims the interval in PostgreSQL) assesses every bot — emergency latch, firing alerts,
/// stale or offline, never reported — and records each bot's status and message (`/api/status`, the dashboard).
/// A bot connected but silent for longer than it should be gets the INFO alert `bot_stale`, resolved once data
/// flows again. On top of this, rules are evaluated as batches arrive and the no-data rule has its own watcher.
struct HealthChecker: Service {
    static let staleRule = Rule(id: "bot_stale", kind: .above(metric: "seconds_since_last_report"), limit: 0, level: .info,
                                summary: "Bot connected but its data is late")
    let fleet: FleetView
    let store: HealthCheckStore
    let alertStore: (any AlertStore)?
    let sink: (any AlertSink)?
    let interval: Duration
    let hubID: String
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                guard !Task.isCancelled else { return }
                do {
                    if try await store.claim(interval: interval, hub: hubID) { try await check() }
                } catch {
                    logger.warning("health check failed: \(String(reflecting: error))")
                }
            }
        }
    }

    /// One check of every bot.
    func check() async throws {
        let rows = try await fleet.rows(bot: nil)
        let now = Date()
        var results: [(bot: String, status: String, message: String)] = []
        for r in rows {
            let (word, message) = HealthAssessment.bot(FleetView.facts(r), now: now)
            results.append((r.name, word.rawValue, message))
            if let alertStore, let sink {
                if r.state == "stale" {
                    let silent = r.last.map { now.timeIntervalSince($0).rounded() } ?? 0
                    if var e = try await alertStore.fire(bot: r.name, rule: Self.staleRule, value: silent, state: nil) {
                        e.silenced = try await alertStore.isSilenced(bot: r.name, metric: Self.staleRule.metric)
                        await sink.deliver(e)
                    }
                } else if r.firing.info.contains(Self.staleRule.id),
                          let e = try await alertStore.resolve(bot: r.name, rule: Self.staleRule, value: 0, state: nil) {
                    await sink.deliver(e)
                }
            }
        }
        try await store.record(results)
        let (word, message) = HealthAssessment.fleet(results.map { ($0.bot, HealthAssessment.Word(rawValue: $0.status) ?? .healthy, $0.message) })
        logger.info("health check: \(word.rawValue): \(message)")
    }
}
