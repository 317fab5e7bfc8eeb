import FleetwatchAlerting
import FleetwatchControl
import FleetwatchNotify
import FleetwatchProtocol
import FleetwatchStorage
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

extension HubApplication {
    /// The alerting pieces of one replica.
    struct Alerting {
        let engine: AlertEngine?
        let dispatcher: Dispatcher
        let feed: AlertFeed
        let watcher: SilentBotWatcher?
        let emergencyAlerts: EmergencyAlerts
        let nameLimits: NameLimitAlerts
        /// The alert store when alerting is on (health check, name limits).
        let alertStore: (any AlertStore)?
        /// Transitions notified while the database was unreachable, for the table once it answers.
        var outage: OutageAlertStore? = nil
        /// Where automatic shutdowns go while the database is unreachable (set once the replica's journal is open).
        var breakGlass = BreakGlassBox()
        /// The Alertmanager channel, whose firing alerts are re-posted by a service.
        var alertmanager: AlertmanagerNotifier? = nil
        /// Received messages and unevaluated batches of every connection: the engine gives each batch back here
        /// once evaluated, and the agent connections' readers wait on it.
        var ingestBacklog: IngestBacklog
        /// Automatic stops waiting for the database, abandoned (and named in the log) when the hub stops.
        var waitingStops: WaitingStops
    }

    /// The break-glass stop, known after alerting is built.
    final class BreakGlassBox: Sendable {
        private let value = Mutex<BreakGlass?>(nil)
        func set(_ b: BreakGlass) { value.withLock { $0 = b } }
        var current: BreakGlass? { value.withLock { $0 } }
    }

    /// This replica's own directory for what it must keep through a database outage (break-glass journal,
    /// alert transitions).
    static func outageDirectory(_ configuration: HubConfiguration) -> String {
        "\(configuration.dataDirectory)/break-glass/\(configuration.ingest.hubID)"
    }

    func makeAlerting(client: any PostgresQuerying, metrics: HubMetrics? = nil, health: DatabaseHealth? = nil) -> Alerting {
        let a = configuration.alerts
        let backlog = IngestBacklog(limit: configuration.ingest.maxPendingBytesTotal, maxUnevaluated: configuration.ingest.maxUnevaluatedBatches)
        let feed = AlertFeed()
        var notifiers: [any Notifier] = []
        if a.console { notifiers.append(ConsoleNotifier(minimumLevel: AlertLevel(rawValue: a.consoleMinimumLevel) ?? .info)) }
        if a.log { notifiers.append(LogNotifier(logger: logger)) }
        if a.log, let path = a.logFile { notifiers.append(LogFileNotifier(path: path, maxBytes: a.logFileMaxBytes, keep: a.logFileKeep)) }
        if a.dashboard { notifiers.append(DashboardNotifier(minimumLevel: .info, client: client, logger: logger)) }
        if a.webhook, let url = a.webhookURL {
            var w = WebhookNotifier.Configuration(url: url, secret: a.webhookSecret)
            w.timeout = a.webhookTimeout
            w.minimumLevel = AlertLevel(rawValue: a.webhookMinimumLevel) ?? .warning
            w.format = WebhookFormat(rawValue: a.webhookFormat) ?? .fleetwatch
            w.chatID = a.webhookChatID
            notifiers.append(WebhookNotifier(configuration: w))
        }
        if a.email, let host = a.emailHost {
            var e = EmailNotifier.Configuration(host: host, from: a.emailFrom, to: a.emailTo)
            e.port = a.emailPort
            e.security = a.emailSecurity
            e.username = a.emailUsername
            e.password = a.emailPassword
            e.verifyCertificate = a.emailVerifyCertificate
            e.minimumLevel = AlertLevel(rawValue: a.emailMinimumLevel) ?? .critical
            notifiers.append(EmailNotifier(configuration: e))
        }
        var alertmanager: AlertmanagerNotifier?
        if a.alertmanager, let url = a.alertmanagerURL {
            var m = AlertmanagerNotifier.Configuration(url: url, hubID: configuration.ingest.hubID)
            m.minimumLevel = AlertLevel(rawValue: a.alertmanagerMinimumLevel) ?? .info
            m.timeout = a.alertmanagerTimeout
            m.resendInterval = a.alertmanagerResendInterval
            m.dashboardURL = configuration.publicURL
            let notifier = AlertmanagerNotifier(configuration: m)
            notifiers.append(notifier)
            alertmanager = notifier
        }
        notifiers += alertHandlers
        let dispatcher = Dispatcher(notifiers: notifiers,
                                    ledger: FailFastNotificationLedger(inner: PostgresNotificationLedger(client: client, hubID: configuration.ingest.hubID,
                                                                                                         health: health, logger: logger, metrics: metrics),
                                                                       health: health),
                                    logger: logger)
        let tableStore = PostgresAlertStore(client: client, logger: logger)
        let outageDirectory = Self.outageDirectory(configuration)
        try? SecretFile.privateDirectory(outageDirectory)
        let outage = health.map { [logger = self.logger] in
            OutageAlertStore(inner: tableStore, health: $0, path: "\(outageDirectory)/alert-transitions.pending", logger: logger)
        }
        let store: any AlertStore = outage ?? tableStore
        let profiles = FailFastProfiles(inner: PostgresProfileSource(client: client, logger: logger), health: health)
        var cooldowns = Cooldowns()
        cooldowns.infoMs = Int64(a.cooldownInfo * 1000)
        cooldowns.warningMs = Int64(a.cooldownWarning * 1000)
        cooldowns.criticalMs = Int64(a.cooldownCritical * 1000)
        let noDataMs = Int64(a.noDataSeconds * 1000)
        let emergencyAlerts = EmergencyAlerts(store: a.enabled ? store : nil, sink: a.enabled ? dispatcher : nil, logger: logger)
        let ledger = CommandLedger(client: client, logger: logger)
        let logger = self.logger
        let hubID = configuration.ingest.hubID
        let breakGlass = BreakGlassBox()
        let waitingStops = WaitingStops(logger: logger)
        let autoStop = AutomaticStop(ledger: ledger, breakGlass: breakGlass, emergencyAlerts: emergencyAlerts, hubID: hubID,
                                     logger: logger, waiting: waitingStops)
        let engine = a.enabled
            ? AlertEngine(store: store, sink: dispatcher, profiles: { try await profiles.profile($0) }, cooldowns: cooldowns,
                          noDataRule: SilentBotWatcher.rule, noDataMs: noDataMs, logger: logger,
                          emergency: { await autoStop(bot: $0, rule: $1, value: $2) },
                          evaluated: { backlog.evaluated() })
            : nil
        let watcher = a.enabled
            ? SilentBotWatcher(client: client, store: store, sink: dispatcher, silentAfter: .milliseconds(noDataMs),
                               interval: .milliseconds(max(1000, noDataMs / 4)), logger: logger)
            : nil
        return Alerting(engine: engine, dispatcher: dispatcher, feed: feed,
                        watcher: watcher, emergencyAlerts: emergencyAlerts,
                        nameLimits: NameLimitAlerts(store: a.enabled ? store : nil, sink: a.enabled ? dispatcher : nil,
                                                    limit: configuration.ingest.maxMetricNamesPerBot, logger: logger),
                        alertStore: a.enabled ? store : nil, outage: outage, breakGlass: breakGlass, alertmanager: alertmanager,
                        ingestBacklog: backlog, waitingStops: waitingStops)
    }
}

/// Keeps the firing alerts alive in Alertmanager until the hub stops.
struct AlertmanagerResender: Service {
    let notifier: AlertmanagerNotifier

    func run() async throws {
        await cancelWhenGracefulShutdown { await notifier.run() }
    }
}

/// Runs the alert engine in the service group; on shutdown it stops taking batches and drains.
/// Runs the alert fan-out; it stops after the services that raise alerts (it is listed before them), so their
/// last events still go out, and retries end with it.
struct DispatcherService: Service {
    let dispatcher: Dispatcher

    func run() async throws {
        await withGracefulShutdownHandler {
            await dispatcher.run()
        } onGracefulShutdown: {
            dispatcher.finish()
        }
    }
}

struct AlertEngineService: Service {
    let engine: AlertEngine

    func run() async throws {
        await withGracefulShutdownHandler {
            await engine.run()
        } onGracefulShutdown: {
            engine.finish()
        }
        await engine.idle()
    }
}
