import FleetwatchIngest
import FleetwatchProtocol
import FleetwatchStorage
import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import PostgresNIO
import ServiceLifecycle

/// The hub process: PostgreSQL client, migrations, partition upkeep, and the HTTP/WebSocket server.
public struct HubApplication: Sendable {
    public let configuration: HubConfiguration
    public let logger: Logger
    public let counters = IngestCounters()

    public init(configuration: HubConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Runs until SIGTERM/SIGINT (or `shutdown` is triggered). `onListening` gets the bound port.
    public func run(onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let database = try await HubDatabase.open(configuration, logger: logger)
        defer { database.close() }
        logger.info("using PostgreSQL at \(database.url)")
        let client = database.makeClient(maxConnections: configuration.databaseConnections, logger: logger)
        let clientTask = Task { await client.run() }
        defer { clientTask.cancel() }

        let applied = try await Migrator(client: client, logger: logger).migrate()
        if !applied.isEmpty { logger.info("applied migrations \(applied)") }
        let partitions = PartitionMaintainer(client: client, logger: logger)
        try await partitions.ensureWindow()

        let store = PostgresIngestStore(client: client, logger: logger, autoRegister: configuration.autoRegister,
                                        hubID: configuration.ingest.hubID)
        let app = makeApplication(client: client, store: store, onListening: onListening)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: partitions), .init(service: app)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        try await group.run()
        logger.info("hub stopped")
    }

    func makeApplication(client: PostgresClient, store: any IngestStore,
                         onListening: @escaping @Sendable (Int) async -> Void) -> some ApplicationProtocol {
        let router = Router()
        HubRoutes(client: client, counters: counters, logger: logger).register(on: router)
        let handler = AgentWebSocketHandler(configuration: configuration.ingest, store: store, counters: counters,
                                            logger: logger)
        let ws = WebSocketServerConfiguration(maxFrameSize: configuration.ingest.maxFrameBytes * 2,
                                              autoPing: .enabled(timePeriod: .seconds(30)),
                                              closeTimeout: .seconds(5))
        let logger = self.logger
        return Application(
            router: router,
            server: .http1WebSocketUpgrade(configuration: .init(ws: ws)) { head, channel, _ in
                guard head.path?.split(separator: "?").first.map(String.init) == WireProtocol.agentPath else {
                    return .dontUpgrade
                }
                let remote = channel.remoteAddress?.description ?? "unknown"
                return .upgrade([:]) { inbound, outbound, _ in
                    try await handler.handle(inbound: inbound, outbound: outbound, remote: remote)
                }
            },
            configuration: .init(address: .hostname(configuration.host, port: configuration.port),
                                 serverName: "fleetwatch-hub"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                logger.info("hub listening on http://\(configuration.host):\(port) (agents: ws://\(configuration.host):\(port)\(WireProtocol.agentPath))")
                await onListening(port)
            },
            logger: logger)
    }
}
