import FleetwatchIngest
import FleetwatchSchema
import FleetwatchStorage
import Foundation
import Hummingbird
import Logging
import PostgresNIO

/// HTTP endpoints of the foundation: health, the fleet overview and ingest counters.
struct HubRoutes: Sendable {
    let client: any PostgresQuerying
    let counters: IngestCounters
    let fleet: FleetView
    let health: DatabaseHealth
    let logger: Logger

    struct IngestStats: ResponseEncodable {
        let batchesStored: Int64
        let samplesStored: Int64
        let samplesRefused: Int64
        let samplesOverNameLimit: Int64
        let duplicateBatches: Int64
        let closesByCode: [String: Int64]
    }

    func register(on router: Router<HubRequestContext>) {
        router.get("/health/live") { _, _ in HTTPResponse.Status.ok }
        router.get("/health/ready") { _, _ -> Response in
            // Known down (the health probe, once a second): no need to wait.
            if case .down = health.current {
                return Response(status: .serviceUnavailable, body: .init(byteBuffer: ByteBuffer(string: "database unavailable\n")))
            }
            // Bounded: a load balancer must get an answer even while connections to PostgreSQL hang.
            let version: Int? = await firstWithin(.seconds(2)) {
                try? await ServerFacts(client: client, logger: logger).schemaVersion()
            }
            guard let version else {
                return Response(status: .serviceUnavailable, body: .init(byteBuffer: ByteBuffer(string: "database unavailable\n")))
            }
            // Batches failing to store (a full disk, a read-only database, a broken partition) while the
            // connection itself still answers: a balancer should send agents elsewhere.
            if counters.storeFailing(within: .seconds(15)) {
                return Response(status: .serviceUnavailable, body: .init(byteBuffer: ByteBuffer(string: "cannot store batches\n")))
            }
            guard version >= Schema.latestVersion else {
                return Response(status: .serviceUnavailable, body: .init(byteBuffer: ByteBuffer(string: "migrations pending\n")))
            }
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "ready\n")))
        }
        router.get("/api/bots") { _, _ -> BotSummaryList in BotSummaryList(summaries: try await fleet.summaries(bot: nil)) }
        router.get("/api/bots/:bot") { _, context -> FleetView.BotSummary in
            try await fleet.summaries(bot: try context.parameters.require("bot"))[0]
        }
        router.get("/api/ingest") { _, _ -> IngestStats in
            let s = counters.snapshot
            return IngestStats(batchesStored: s.batchesStored, samplesStored: s.samplesStored,
                               samplesRefused: s.samplesRefused, samplesOverNameLimit: s.samplesOverNameLimit, duplicateBatches: s.duplicates,
                               closesByCode: Dictionary(uniqueKeysWithValues: s.closes.map { (String($0.key), $0.value) }))
        }
    }
}
