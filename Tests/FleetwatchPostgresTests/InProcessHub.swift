@testable import FleetwatchHub
import FleetwatchSchema
import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import PostgresNIO

/// The hub's real router and middleware chain (HubApplication.makeApplication) in this process, on a fresh database
/// of the test server: no listener, no service group (DatabaseHealth is never probed: it stays up unless a test
/// calls `health.observed(failure:)`).
struct InProcessHub: Sendable {
    let client: PostgresClient
    /// The command ledger's client: `client`, or a pool of its own (`ledgerConnections`) a test can exhaust, counting
    /// the calls the ledger asks of it.
    let ledgerClient: CountingClient
    let health: DatabaseHealth
    /// The agents' connections the hub knows (none unless a test adds them), and break glass if the test asked for it.
    let connections: LiveConnections
    let breakGlass: BreakGlass?
    let logger: Logger
    let dataDirectory: String

    /// An API token as `monitor-hub tokens add` makes it, as request headers.
    func token(_ name: String, _ role: AccessTokens.Role) async throws -> HTTPFields {
        let secret = try await AccessTokens(client: client, logger: logger).add(name: name, role: role)
        return [.authorization: "Bearer \(secret)"]
    }

    /// - Parameters:
    ///   - ledgerConnections: gives the command ledger (delivery and operators' requests) a pool of its own of this
    ///     many connections.
    ///   - breakGlass: stops while the database is down go through break glass, as in `HubApplication.run`.
    static func run<T: Sendable>(migrations: [Migration] = Schema.migrations, ledgerConnections: Int? = nil, breakGlass: Bool = false,
                                 configure: (inout HubConfiguration) -> Void = { _ in },
                                 _ body: @escaping @Sendable (InProcessHub, any TestClientProtocol) async throws -> T) async throws -> T {
        let db = try await TestDatabase.create()
        let dataDirectory = NSTemporaryDirectory() + "fw-inproc-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dataDirectory) }
        var configuration = HubConfiguration()          // defaults only: no env, no file
        configuration.dataDirectory = dataDirectory     // makeAlerting creates <dir>/break-glass/<hubID>
        configuration.alerts.console = false            // no alert lines on the test's stdout
        configure(&configuration)
        let config = configuration
        @Sendable func start(_ client: PostgresClient, ledgerClient: PostgresClient) async throws -> T {
            var logger = Logger(label: "test.hub")
            logger.logLevel = .warning
            try await Migrator(client: client, logger: logger, migrations: migrations).migrate()
            let hub = HubApplication(configuration: config, logger: logger)
            // As HubApplication.run builds them (HubApplication.swift:53-83), minus the services.
            let health = DatabaseHealth(url: db.url, logger: logger)
            let metrics = HubMetrics()
            let alerting = hub.makeAlerting(client: client, metrics: metrics, health: health)
            let store = PostgresIngestStore(client: client, logger: logger, autoRegister: config.autoRegister,
                                            maxNamesPerBot: config.ingest.maxMetricNamesPerBot,
                                            maxNames: config.ingest.maxMetricNames, hubID: config.ingest.hubID)
            let audit = AuditLog(client: client, logger: logger)
            let connections = LiveConnections()
            var glass: BreakGlass?
            if breakGlass {
                let journal = try BreakGlassJournal(directory: HubApplication.outageDirectory(config), logger: logger)
                glass = BreakGlass(journal: journal, connections: connections, health: health, hubID: config.ingest.hubID,
                                   frameTTL: config.emergency.frameTTL, logger: logger)
                alerting.breakGlass.set(glass!)
            }
            let counting = CountingClient(ledgerClient)
            let ledger = CommandLedger(client: counting, logger: logger)
            let app = try hub.makeApplication(
                client: client,
                store: OutageIngestStore(inner: store, health: health, credentialMaxAge: config.outageCredentialMaxAge),
                breakGlass: glass, reads: ReadDatabase(client: client, isReplica: false, logger: logger),
                alerting: alerting, ledger: ledger, requests: ledger, connections: connections,
                ticker: ConnectionTicker(heartbeatInterval: config.ingest.heartbeatInterval), metrics: metrics, live: LiveFleet(),
                publisher: LivePublisher(client: client, interval: .milliseconds(200), logger: logger),
                viewers: ViewerRegistry(), audit: audit, refusals: RefusalAudit(audit: audit), health: health,
                onListening: { _ in })
            let env = InProcessHub(client: client, ledgerClient: counting, health: health, connections: connections, breakGlass: glass,
                                   logger: logger,
                                   dataDirectory: dataDirectory)
            return try await app.test(.router) { http in try await body(env, http) }
        }

        return try await db.withClient { client in
            guard let ledgerConnections else { return try await start(client, ledgerClient: client) }
            return try await db.withClient(maxConnections: ledgerConnections) { try await start(client, ledgerClient: $0) }
        }
    }
}

/// Hummingbird's error body: {"error":{"message":"…"}} (HTTPError.response).
struct APIError: Decodable {
    struct Body: Decodable { let message: String }
    let error: Body
}

func json<T: Decodable>(_ type: T.Type, _ response: TestResponse) throws -> T {
    try JSONDecoder().decode(T.self, from: Data(String(buffer: response.body).utf8))
}
