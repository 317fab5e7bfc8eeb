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
                    let rows = try await client.query("""
                        SELECT b.name, EXTRACT(EPOCH FROM now() - b.last_seen_at)::float8 FROM bots b
                        WHERE b.token_hash IS NOT NULL AND b.last_seen_at < now() - \(seconds) * interval '1 second'
                          AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.bot_id = b.id AND a.rule_id = 'bot_silent' AND a.state = 'firing')
                        """, logger: logger)
                    for try await (bot, silentFor) in rows.decode((String, Double).self) {
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
