import FleetwatchProtocol
import FleetwatchStorage
import FleetwatchAlerting
import FleetwatchIngest
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// The WARNING alert "bot exceeds its metric-name limit": fired by the replica that refused a bot's names
/// (at most one attempt per bot a minute), resolved by any replica ten minutes after the bot's last refusal
/// (`bots.metric_names_refused_at`, written by the ingest store).
final class NameLimitAlerts: Sendable {
    static let rule = Rule(id: "metric_name_limit", kind: .above(metric: "metric_names_refused"), limit: 0, level: .warning,
                           summary: "Bot exceeds its metric-name limit")
    /// How long after the last refusal the alert resolves.
    static let quietPeriod: Duration = .seconds(600)

    let store: (any AlertStore)?
    let sink: (any AlertSink)?
    let limit: Int
    let logger: Logger
    /// Bots whose alert was attempted lately, with when; bounded by the number of registered bots.
    private let attempted = Mutex<[String: ContinuousClock.Instant]>([:])

    init(store: (any AlertStore)?, sink: (any AlertSink)?, limit: Int, logger: Logger) {
        self.store = store
        self.sink = sink
        self.limit = limit
        self.logger = logger
    }

    /// `batch` of `bot` had names over the limit. Returns at once; the alert is raised in the background.
    func refused(bot: String, batch: ValidatedBatch) {
        let now = ContinuousClock.now
        let due = attempted.withLock { seen -> Bool in
            if let last = seen[bot], now - last < .seconds(60) { return false }
            seen[bot] = now
            return true
        }
        guard due else { return }
        var rule = Self.rule
        let names = batch.overLimitNames.prefix(3).joined(separator: ", ")
        rule.summary = "Bot exceeds its metric-name limit (hub.max_metric_names_per_bot, \(limit), or its own): refused "
            + "\(batch.overLimitSamples) samples of \(batch.overLimitNameCount) new names such as \(names)"
        let value = Double(batch.overLimitNameCount)
        let (store, sink, logger) = (self.store, self.sink, self.logger)
        Task {
            guard let store, let sink else {
                logger.warning("[WARNING] \(bot): \(rule.summary) (alerting is disabled)")
                return
            }
            do {
                if var event = try await store.fire(bot: bot, rule: rule, value: value, state: nil) {
                    event.silenced = try await store.isSilenced(bot: bot, metric: rule.metric)
                    await sink.deliver(event)
                }
            } catch {
                logger.error("cannot raise the metric-name alert of \(bot): \(String(reflecting: error))")
            }
        }
    }
}

/// Resolves "bot exceeds its metric-name limit" once the bot has sent no name over its limit for
/// `NameLimitAlerts.quietPeriod`, whichever replica raised it.
struct NameLimitWatcher: Service {
    let client: any PostgresQuerying
    let alerts: NameLimitAlerts
    let interval: Duration
    let logger: Logger

    func run() async throws {
        guard let store = alerts.store, let sink = alerts.sink else { return }
        let quiet = NameLimitAlerts.quietPeriod.inSeconds
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    let scans = AlertScans(client: client, logger: logger)
                    for bot in try await scans.quietNameLimitBots(rule: NameLimitAlerts.rule.id, quietFor: quiet) {
                        if let event = try await store.resolve(bot: bot, rule: NameLimitAlerts.rule, value: 0, state: nil) {
                            await sink.deliver(event)
                        }
                    }
                } catch {
                    logger.error("metric-name limit check failed: \(String(reflecting: error))")
                }
                try? await Task.sleep(for: interval)
            }
        }
    }
}
