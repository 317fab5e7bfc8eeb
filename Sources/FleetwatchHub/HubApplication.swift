import FleetwatchAlerting
import FleetwatchIngest
import FleetwatchNotify
import FleetwatchProtocol
import FleetwatchStorage
import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import HummingbirdWebSocket
import NIOSSL
import Logging
import PostgresNIO
import ServiceLifecycle

/// The hub process: PostgreSQL client, migrations, partition upkeep, and the HTTP/WebSocket server.
public struct HubApplication: Sendable {
    public let configuration: HubConfiguration
    public let logger: Logger
    public let counters = IngestCounters()
    /// Extra alert channels registered by code that embeds the hub (called like any other channel).
    public var alertHandlers: [any Notifier] = []

    public init(configuration: HubConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// A connected bot is stale after three heartbeat intervals without a stored batch, and a second more: its row's
    /// `last_seen_at` is written at most once a second by the batches (`WriteGroup`).
    static func staleAfter(_ configuration: HubConfiguration) -> Duration {
        configuration.ingest.heartbeatInterval * 3 + .seconds(1)
    }

    /// Registers a custom alert handler (the reference system's `register_dashboard_callback`).
    public mutating func registerAlertHandler(name: String, minimumLevel: AlertLevel = .info,
                                              _ handler: @escaping @Sendable (AlertEvent) async throws -> Void) {
        alertHandlers.append(CallbackNotifier(name: name, minimumLevel: minimumLevel, handler))
    }

    /// Runs until SIGTERM/SIGINT (or `shutdown` is triggered). `onListening` gets the bound port.
    public func run(onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        for warning in configuration.warnings { logger.warning("configuration: \(warning)") }
        let database = try await HubDatabase.open(configuration, logger: logger)
        defer { database.close() }
        logger.info("using PostgreSQL at \(database.url)")
        // Migrations on a client of their own, without the statement timeout (a migration may take long).
        let logger = self.logger
        let (applied, offered) = try await withRunningClient(try database.makeClient(maxConnections: 1, logger: logger)) { client in
            (try await Migrator(client: client, logger: logger).migrate(),
             try await ServerFacts(client: client, logger: logger).toastCompressions())
        }
        if !applied.isEmpty { logger.info("applied migrations \(applied)") }
        // Checked before the pool starts: a value the server refuses would fail every connection.
        let compression = try configuration.toastCompression.sessionValue(offered: offered)
        logger.info("large batches are compressed with \(compression ?? "the server's default_toast_compression") as they arrive, merged minutes with pglz")
        // The pool follows the writable primary when the address names several hosts (DatabaseHealth moves it).
        let client = try DatabaseClient(url: database.url, maxConnections: configuration.databaseConnections,
                                        statementTimeout: configuration.databaseStatementTimeout,
                                        sessionSettings: compression.map { [("default_toast_compression", $0)] } ?? [],
                                        endpoint: database.endpoint, logger: logger)
        let clientTask = Task { await client.run() }
        defer { clientTask.cancel() }
        // The operators' pool: the API, the dashboard and stop requests wait only behind each other. Sharing the pool
        // above, a token check waited seconds behind a reconnect storm of 5,000 agents (`fleetwatch-bench load`).
        let operators = try client.beside(maxConnections: configuration.operatorDatabaseConnections)
        let operatorsTask = Task { await operators.run() }
        defer { operatorsTask.cancel() }
        await client.started()
        await operators.started()
        await HubDatabase.warnIfPrivileged(client, logger: logger)
        let partitions = PartitionMaintainer(client: client, logger: logger)
        try await partitions.ensureWindow()

        try await ThresholdAdmin(client: client, logger: logger).applyConfigurationProfile(configuration)
        let store = PostgresIngestStore(client: client, logger: logger, autoRegister: configuration.autoRegister,
                                        maxNamesPerBot: configuration.ingest.maxMetricNamesPerBot,
                                        maxNames: configuration.ingest.maxMetricNames, hubID: configuration.ingest.hubID,
                                        statementDeadline: client.answerDeadline)
        let health = DatabaseHealth(url: database.url, client: client, followers: [operators], logger: logger)
        let ingestStore = OutageIngestStore(inner: store, health: health, credentialMaxAge: configuration.outageCredentialMaxAge)
        let metrics = HubMetrics()
        counters.observeStoreDurations { metrics.batchStored(in: $0) }
        let alerting = makeAlerting(client: client, metrics: metrics, health: health)
        let ledger = CommandLedger(client: client, logger: logger)
        let connections = LiveConnections()
        let live = LiveFleet()
        do { try await live.seed(client: client, logger: logger) } catch {
            logger.warning("cannot load the newest values for the dashboard (they arrive with the next batches): \(String(reflecting: error))")
        }
        let publisher = LivePublisher(client: client, interval: .milliseconds(200), logger: logger, local: live)
        let viewers = ViewerRegistry()
        if configuration.dashboardEnabled { try await createFirstAdmin(client: client) }
        let audit = AuditLog(client: operators, logger: logger)
        let refusals = RefusalAudit(audit: audit)
        let journal = try BreakGlassJournal(directory: Self.outageDirectory(configuration), logger: logger)
        // What a previous run of this replica kept through an outage reaches the tables before any agent is let in.
        _ = await journal.reconcile(into: ledger, hub: configuration.ingest.hubID)
        await alerting.outage?.reconcile()
        let breakGlass = BreakGlass(journal: journal, connections: connections, health: health, hubID: configuration.ingest.hubID,
                                    frameTTL: configuration.emergency.frameTTL, logger: logger)
        alerting.breakGlass.set(breakGlass)
        let reads = try await openReads(primary: client)
        defer { reads.1?.cancel() }
        let ticker = ConnectionTicker(heartbeatInterval: configuration.ingest.heartbeatInterval)
        let app = try makeApplication(client: operators, store: ingestStore, breakGlass: breakGlass, reads: reads.0, alerting: alerting, ledger: ledger, connections: connections,
                                      ticker: ticker, metrics: metrics, live: live, publisher: publisher, viewers: viewers, audit: audit,
                                      refusals: refusals, health: health, onListening: onListening)
        // Every notification channel on one LISTEN connection.
        let (commandWakes, wakeDispatcher) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let feed = alerting.feed, engine = alerting.engine
        var subscriptions: [NotificationListener.Subscription] = [
            // Alert events from any replica, for this replica's dashboard feed.
            .init(channel: AlertFeed.channel) { payload in
                if let event = AlertFeed.decode(payload) { await feed.append(event) }
            },
            // Newest values stored by any replica, for this replica's API and dashboard viewers.
            .init(channel: LivePublisher.channel) { [origin = publisher.origin] payload in
                let updates = LivePublisher.decode(payload, skipping: origin)
                if !updates.isEmpty { await live.apply(updates) }
            },
            // Sign-out on any replica closes the session's WebSockets here.
            .init(channel: Sessions.channel) { payload in
                if let id = Int64(payload) { await viewers.close(session: id) }
            },
            // A revoked or rotated bot token closes every connection of the bot, on every replica.
            .init(channel: BotRegistry.tokenChannel) { bot in
                ingestStore.forget(bot: bot)
                await connections.revoke(bot: bot)
            },
            // A bot's metric-name limit changed: re-read what it may use.
            .init(channel: PostgresIngestStore.metricLimitChannel) { payload in
                if let id = Int32(payload) { await store.forgetMetricNames(botID: id) }
            },
            // A bot's lease moved to a new connection: its older connections, here or on another replica, end (4007).
            // Once listening, the replicas holding bots now, for a stop sent here while the database is down (a
            // notification sent before the LISTEN, e.g. while this replica started, is never delivered).
            .init(channel: PostgresIngestStore.leaseChannel, listening: {
                // Move numbers heard from another database (before a failover) must not judge this one's moves.
                do {
                    await connections.rebaseMoveNumbers(latest: try await store.latestLeaseMove())
                } catch {
                    await connections.rebaseMoveNumbers(latest: nil)
                    logger.warning("could not read the latest lease move: \(String(reflecting: error))")
                }
                do {
                    await connections.learnHolders(try await store.connectedHubs())
                } catch {
                    logger.warning("could not read which replicas hold the bots: \(String(reflecting: error))")
                }
            }) { payload in
                if let move = PostgresIngestStore.leaseMove(payload) {
                    await connections.replaced(bot: move.bot, by: move.connectionID, order: move.order, hub: move.hub)
                }
            },
            // A command was written: the replica holding the bot sends it.
            .init(channel: CommandLedger.channel) { _ in wakeDispatcher.yield() },
        ]
        if let engine {
            // Threshold changes from any replica: re-read the rules before the next batch.
            subscriptions.append(.init(channel: ThresholdAdmin.channel) { bot in await engine.invalidate(bot: bot == "*" ? nil : bot) })
        }
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: health),
            // Early in the list, so it stops late: connections still draining keep their heartbeats.
            .init(service: ticker),
            // Early in the list, so it stops late: the alerts raised while the others stop still go out.
            .init(service: DispatcherService(dispatcher: alerting.dispatcher)),
            .init(service: reads.0),
            .init(service: partitions),
            .init(service: NotificationListener(client: client, logger: logger, subscriptions: subscriptions)),
            .init(service: ReviewMaintainer(client: client, settings: configuration.retention, logger: logger)),
            .init(service: publisher),
            .init(service: AuditPruner(audit: audit, retentionDays: configuration.auditRetentionDays, interval: .seconds(3600), logger: logger)),
        ]
        if let watcher = alerting.watcher { services.append(.init(service: watcher)) }
        // The periodic health check (monitoring.health_check_interval), one replica per interval.
        let fleetView = FleetView(client: client, live: live, staleAfter: Self.staleAfter(configuration), logger: logger)
        services.append(.init(service: HealthChecker(fleet: fleetView, store: HealthCheckStore(client: client, logger: logger),
                                                     alertStore: alerting.alertStore, sink: alerting.alertStore == nil ? nil : alerting.dispatcher,
                                                     interval: .milliseconds(Int64(configuration.monitoring.healthCheckInterval * 1000)),
                                                     hubID: configuration.ingest.hubID, logger: logger)))
        services.append(.init(service: NameLimitWatcher(client: client, alerts: alerting.nameLimits, interval: .seconds(60), logger: logger)))
        // Before the engine, so it stops after it: a stop the engine fires while it drains is named too.
        services.append(.init(service: WaitingStopsService(stops: alerting.waitingStops)))
        if let engine { services.append(.init(service: AlertEngineService(engine: engine))) }
        if let notifier = alerting.alertmanager { services.append(.init(service: AlertmanagerResender(notifier: notifier))) }
        if configuration.memoryTrimInterval > .zero {
            services.append(.init(service: MemoryTrimmer(interval: configuration.memoryTrimInterval, logger: logger)))
        }
        services.append(.init(service: LeaseChecker(connections: connections, store: store, interval: .seconds(5), logger: logger)))
        services.append(.init(service: CommandDispatcher(ledger: ledger, connections: connections, wakes: commandWakes,
                                                         hubID: configuration.ingest.hubID, configuration: configuration.emergency,
                                                         logger: logger)))
        services.append(.init(service: BreakGlassReconciler(journal: journal, ledger: ledger, health: health, hubID: configuration.ingest.hubID,
                                                            alerts: alerting.outage)))
        services.append(.init(service: CommandWatchdog(ledger: ledger, alerts: alerting.emergencyAlerts,
                                                       configuration: configuration.emergency, logger: logger)))
        services.append(.init(service: app))
        services.append(.init(service: ConnectionDrainer(connections: connections, timeout: .seconds(10), logger: logger)))
        // Last, so it stops first: the refusals counted so far are written the moment the hub is asked to stop.
        services.append(.init(service: refusals))
        let group = ServiceGroup(configuration: .init(
            services: services,
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        try await group.run()
        logger.info("hub stopped")
    }

    /// The read replica of `hub.read_database_url` (its pool running in the returned task), or the primary.
    func openReads(primary: any PostgresQuerying) async throws -> (ReadDatabase, Task<Void, Never>?) {
        guard let string = configuration.readDatabaseURL else { return (ReadDatabase(client: primary, isReplica: false, logger: logger), nil) }
        var url = try DatabaseURL(string)
        if url.password == nil { url.password = configuration.databasePassword }
        do {
            let standby = try await DatabaseProbe.connectOnce(url, logger: logger)
            logger.notice("history and reports read from \(url)\(standby ? " (a standby)" : " (not a standby: it takes the reads all the same)")")
        } catch {
            logger.warning("the read replica \(url) does not answer yet (history charts answer 503 until it does): \(error)")
        }
        let client = try DatabaseClient(url: url, maxConnections: 8, statementTimeout: configuration.databaseStatementTimeout, logger: logger)
        let task = Task { await client.run() }
        await client.started()
        return (ReadDatabase(client: client, isReplica: true, logger: logger), task)
    }

    /// - Parameter requests: the ledger of operators' stop and resume requests; by default on `client`, the operators'
    ///   pool (tests give it a pool of its own to exhaust).
    func makeApplication(client: any PostgresQuerying, store: any IngestStore, breakGlass: BreakGlass? = nil, reads: ReadDatabase? = nil,
                         alerting: Alerting, ledger: CommandLedger, requests: CommandLedger? = nil,
                         connections: LiveConnections, ticker: ConnectionTicker, metrics: HubMetrics, live: LiveFleet, publisher: LivePublisher,
                         viewers: ViewerRegistry, audit: AuditLog, refusals: RefusalAudit, health: DatabaseHealth,
                         onListening: @escaping @Sendable (Int) async -> Void) throws -> some ApplicationProtocol {
        let router = Router(context: HubRequestContext.self)
        let tokens = AccessTokens(client: client, logger: logger)
        let sessions = Sessions(client: client, logger: logger, idleTimeout: configuration.dashboard.sessionIdleTimeout)
        // Per-route request counts and durations (route patterns, not paths: no cardinality from bot names).
        router.add(middleware: RouteMetrics(registry: metrics.registry))
        router.add(middleware: ForwardedHeaders(trusted: configuration.http.trustedProxies, directTLS: configuration.tlsCertificatePath != nil))
        router.add(middleware: APIErrors(logger: logger))
        router.add(middleware: DatabaseGate(health: health))
        router.add(middleware: AuthMiddleware(tokens: tokens, sessions: sessions, refusals: refusals, logger: logger,
                                              health: health, recent: VerifiedCredentials(maxAge: configuration.outageCredentialMaxAge),
                                              guardsMetrics: configuration.metricsAuth == .token))
        let fleet = FleetView(client: client, live: live, staleAfter: Self.staleAfter(configuration), logger: logger)
        HubRoutes(client: client, counters: counters, fleet: fleet, health: health, logger: logger).register(on: router)
        let gate = ViewerGate(tokens: tokens, sessions: sessions, allowedOrigins: configuration.dashboard.allowedOrigins)
        let viewerSocket = ViewerSocket(live: live, feed: alerting.feed, status: FleetStatusCache(view: fleet), sessions: sessions, tokens: tokens,
                                        registry: viewers, updateInterval: configuration.dashboard.updateInterval,
                                        pingInterval: configuration.dashboard.pingInterval,
                                        checkInterval: configuration.dashboard.sessionCheckInterval, logger: logger)
        let dashboard = configuration.dashboardEnabled
        if dashboard {
            SessionRoutes(accounts: UserAccounts(client: client, logger: logger), sessions: sessions, audit: audit, refusals: refusals,
                          limiter: LoginLimiter(perMinute: configuration.dashboard.loginAttemptsPerMinute),
                          secureCookie: configuration.tlsCertificatePath != nil, logger: logger).register(on: router)
            DashboardRoutes(chartJSPath: configuration.dashboard.chartJSPath).register(on: router)
            // Reached only when the upgrade was refused (or a plain GET): say why.
            router.get("/ws") { request, _ -> Response in
                var head = HTTPRequest(method: .get, scheme: nil, authority: request.head.authority, path: request.uri.description)
                head.headerFields = request.headers
                if case .failure(let refusal) = await gate.check(head) { throw HTTPError(refusal.status, message: refusal.message) }
                throw HTTPError(.badRequest, message: "/ws is a WebSocket endpoint: connect with a WebSocket client")
            }
        }
        let counters = self.counters, metricsLogger = self.logger
        let backlog = alerting.ingestBacklog
        router.get("/metrics") { _, _ -> Response in
            let text = await metrics.render(counters: counters, connections: connections, backlog: backlog, client: client,
                                            engine: alerting.engine, logger: metricsLogger)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        AlertRoutes(client: client, feed: alerting.feed, logger: logger).register(on: router)
        ThresholdRoutes(client: client, logger: logger).register(on: router)
        let metricsRoutes = MetricsRoutes(client: client, fleet: fleet, logger: logger, reads: reads)
        metricsRoutes.register(on: router)
        BotExposition(client: client, fleet: fleet, snapshot: { try await metricsRoutes.snapshot(bot: nil) }, logger: logger).register(on: router)
        // Stop requests on the router's pool (the operators'), delivery to the bots on the ledger's.
        CommandRoutes(ledger: requests ?? CommandLedger(client: client, logger: logger), audit: audit, refusals: refusals, alerts: alerting.emergencyAlerts,
                      limiter: RequestLimiter(perMinute: configuration.emergency.requestsPerMinute), logger: logger,
                      breakGlass: breakGlass).register(on: router)
        let commands = LedgerCommandChannel(ledger: ledger, alerts: alerting.emergencyAlerts, hubID: configuration.ingest.hubID,
                                            frameTTL: configuration.emergency.frameTTL, breakGlass: breakGlass)
        // Only what was stored: series over the bot's name limit are gone from `batch` already.
        let engine = alerting.engine, nameLimits = alerting.nameLimits
        let outageAlerts = alerting.outage
        let onStored: @Sendable (BotSession, ValidatedBatch) -> Void = { session, batch in
            // A batch deferred during an outage was evaluated when it arrived; its resend is not evaluated again.
            if outageAlerts?.firstEvaluation(bot: session.botName, epoch: batch.epoch, sequence: batch.sequence) ?? true {
                if let engine {
                    backlog.submitted()
                    engine.submit(bot: session.botName, series: batch.series)
                }
            }
            publisher.record(bot: session.botName, series: batch.series)
            if batch.overLimitSamples > 0 { nameLimits.refused(bot: session.botName, batch: batch) }
        }
        let handler = AgentWebSocketHandler(configuration: configuration.ingest, store: store, counters: counters,
                                            logger: logger, onStored: onStored, commands: commands, connections: connections,
                                            backlog: backlog, ticker: ticker, databaseUp: { health.isUp })
        ticker.afterEachTick { handler.logStalls() }
        let ws = WebSocketServerConfiguration(maxFrameSize: configuration.ingest.maxFrameBytes * 2,
                                              autoPing: .enabled(timePeriod: .seconds(30)),
                                              closeTimeout: .seconds(5))
        let logger = self.logger
        let limits = configuration.http
        let idle = TimeAmount.nanoseconds(Int64(limits.idleTimeout.inSeconds * 1e9))
        let channelConfiguration = HTTP1WebSocketUpgradeChannel.Configuration(
            http1: .init(idleTimeout: idle,
                         httpDecoderConfiguration: .init(maxHeaderFieldSize: limits.maxHeaderBytes, maxHeaderListSize: limits.maxHeaderBytes,
                                                         maxHeaderFieldCount: 200)),
            ws: ws)
        let shouldUpgrade: @Sendable (HTTPRequest, any Channel, Logger) async throws
            -> ShouldUpgradeResult<WebSocketDataHandler<HTTP1WebSocketUpgradeChannel.Context>> = { head, channel, _ in
            let path = head.path?.split(separator: "?").first.map(String.init)
            if dashboard, path == "/ws" {
                guard case .success(let viewer) = await gate.check(head) else { return .dontUpgrade }
                return .upgrade([:]) { inbound, outbound, _ in
                    await viewerSocket.serve(viewer, inbound: inbound, outbound: outbound)
                }
            }
            guard path == WireProtocol.agentPath else {
                return .dontUpgrade
            }
            let remote = limits.trustedProxies.origin(
                peerIP: channel.remoteAddress?.ipAddress ?? "unknown", peerPort: channel.remoteAddress?.port ?? 0,
                forwardedFor: head.headerFields[values: ForwardedHeaders.forwardedFor].joined(separator: ","),
                forwardedProto: head.headerFields[ForwardedHeaders.forwardedProto], directTLS: false).remote
            return .upgrade([:]) { inbound, outbound, _ in
                try await handler.handle(inbound: inbound, outbound: outbound, remote: remote)
            }
        }
        // The first request head is guarded too (time and size); later ones by the decoder and the idle timeout.
        let headTimeout = TimeAmount.nanoseconds(Int64(limits.headTimeout.inSeconds * 1e9))
        let addresses = AddressConnections(maxPerAddress: limits.maxConnectionsPerAddress, exempt: limits.trustedProxies)
        let plain = HTTPServerBuilder { responder in
            GuardedChildChannel(base: HTTP1WebSocketUpgradeChannel(responder: responder, configuration: channelConfiguration,
                                                                   shouldUpgrade: shouldUpgrade),
                                maxHeadBytes: limits.maxHeaderBytes, timeout: headTimeout, addresses: addresses)
        }
        let server = try configuration.tlsConfiguration().map { try HTTPServerBuilder.tls(plain, tlsConfiguration: $0) } ?? plain
        let scheme = configuration.tlsCertificatePath == nil ? ("http", "ws") : ("https", "wss")
        return Application(
            router: router,
            server: server,
            // Past `maxConnections` open connections, new ones wait in the listen backlog until one ends.
            configuration: .init(address: .hostname(configuration.host, port: configuration.port),
                                 serverName: "fleetwatch-hub",
                                 availableConnectionsDelegate: MaximumAvailableConnections(limits.maxConnections, logger: logger)),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                logger.info("hub listening on \(scheme.0)://\(configuration.host):\(port) (agents: \(scheme.1)://\(configuration.host):\(port)\(WireProtocol.agentPath))")
                await onListening(port)
            },
            logger: logger)
    }
}

extension HubApplication {
    /// No default password: on the first start (no user at all) creates the operator `dashboard.admin_user`
    /// with `dashboard.admin_password`, or with a generated password that is never logged: printed once when
    /// standard output is a terminal, otherwise (a service, a container, a redirected log) written to
    /// `dashboard.admin_password_file` (default `<data dir>/initial-admin-password`), created mode 0600.
    /// Replicas starting together create it once.
    func createFirstAdmin(client: any PostgresQuerying) async throws {
        let d = configuration.dashboard
        let password = d.adminPassword ?? PasswordHash.generatePassword()
        guard try await UserAccounts(client: client, logger: logger).createFirstAdmin(name: d.adminUser, password: password) else { return }
        if d.adminPassword == nil, isatty(STDOUT_FILENO) == 0 {
            let path = d.adminPasswordFile ?? configuration.dataDirectory + "/initial-admin-password"
            do {
                try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try SecretFile.write(password + "\n", to: path)
                logger.notice("""
                    created the dashboard user '\(d.adminUser)' (operator); its password is in \(path) (mode 0600). \
                    Sign in, change it (monitor-hub users passwd \(d.adminUser)) and delete the file.
                    """)
            } catch {
                logger.error("""
                    created the dashboard user '\(d.adminUser)' but could not write its password to \(path) (\(error)): \
                    set one with monitor-hub users passwd \(d.adminUser)
                    """)
            }
        } else if d.adminPassword == nil {
            FileHandle.standardOutput.write(Data("""

                ================================================================
                 fleetwatch: created the dashboard user '\(d.adminUser)' (operator).
                 Password (shown once on this terminal, not logged): \(password)
                 Change it with: monitor-hub users passwd \(d.adminUser)
                ================================================================

                """.utf8))
        } else {
            logger.notice("created the dashboard user '\(d.adminUser)' (operator) with the configured password")
        }
    }
}

extension HubConfiguration {
    /// The server's TLS configuration from the PEM files, nil without them.
    func tlsConfiguration() throws -> TLSConfiguration? {
        guard let cert = tlsCertificatePath, let key = tlsKeyPath else { return nil }
        do {
            let chain = try NIOSSLCertificate.fromPEMFile(cert).map { NIOSSLCertificateSource.certificate($0) }
            let privateKey = try NIOSSLPrivateKey(file: key, format: .pem)
            return TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(privateKey))
        } catch {
            throw ConfigurationError("cannot load the TLS certificate \(cert) or key \(key): \(error). Give PEM files (--tls-cert, --tls-key).")
        }
    }
}
