import FleetwatchStorage
import FleetwatchAlerting
import Logging
import PostgresNIO
import ServiceLifecycle

/// The no-data rule: a registered bot that has reported before and then stays silent for `silentAfter`
/// raises a CRITICAL "bot silent" alert; its next stored batch resolves it (see `HubApplication`).
struct SilentBotWatcher: Service {
    static let rule = Rule(id: "bot_silent", kind: .above(metric: "seconds_since_last_report"), limit: 0, level: .critical,
                           summary: "Bot stopped reporting")
    let client: any PostgresQuerying
    let store: any AlertStore
    let sink: any AlertSink
    let silentAfter: Duration
    let interval: Duration
    let logger: Logger

    func run() async throws {
        let seconds = silentAfter.inSeconds
        let rule = { var r = Self.rule; r.limit = seconds; return r }()
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    for (bot, silentFor) in try await AlertScans(client: client, logger: logger).silentBots(after: seconds, rule: rule.id) {
                        if var event = try await store.fire(bot: bot, rule: rule, value: silentFor.rounded(), state: nil) {
                            event.silenced = try await store.isSilenced(bot: bot, metric: rule.metric)
                            await sink.deliver(event)
                        }
                    }
                } catch {
                    logger.error("no-data check failed: \(String(reflecting: error))")
                }
                try? await Task.sleep(for: interval)
            }
        }
    }
}
