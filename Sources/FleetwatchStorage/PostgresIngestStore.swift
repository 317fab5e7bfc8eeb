import FleetwatchIngest
import FleetwatchProtocol
import Foundation
import Logging
import PostgresNIO

/// Ingest storage in PostgreSQL: bot authentication and leases, and exactly-once batch storage.
public final class PostgresIngestStore: IngestStore {
    let client: PostgresClient
    let logger: Logger
    let autoRegister: Bool
    let metrics: MetricDictionary
    let partitions: PartitionMaintainer
    let writer: BatchWriter

    /// - Parameter autoRegister: let an unknown bot register itself with the token it presents
    ///   (trust on first use, for demos); otherwise bots must be added with `monitor-hub bots add`.
    /// - Parameters:
    ///   - hubID: this replica's name, recorded with each stored batch.
    ///   - maxGroup: most batches written by one statement.
    public init(client: PostgresClient, logger: Logger, autoRegister: Bool = false, maxMetrics: Int = 10_000,
                hubID: String = "hub", maxGroup: Int = 64) {
        self.client = client
        self.logger = logger
        self.autoRegister = autoRegister
        metrics = MetricDictionary(client: client, logger: logger, maxMetrics: maxMetrics)
        partitions = PartitionMaintainer(client: client, logger: logger)
        writer = BatchWriter(client: client, logger: logger, hubID: hubID, partitions: partitions, maxGroup: maxGroup)
    }

    public func authenticate(_ hello: Hello, connectionID: UUID, hub: String) async throws -> AuthOutcome {
        var row = try await client.query("SELECT id, token_hash FROM bots WHERE name = \(hello.botID)", logger: logger)
            .decode((Int32, ByteBuffer?).self).first { _ in true }
        if row == nil, autoRegister {
            let hash = BotToken.hash(hello.token)
            try await client.query("""
                INSERT INTO bots (name, token_hash, token_issued_at) VALUES (\(hello.botID), \(hash), now())
                ON CONFLICT (name) DO NOTHING
                """, logger: logger)
            logger.notice("auto-registered bot \(hello.botID)")
            row = try await client.query("SELECT id, token_hash FROM bots WHERE name = \(hello.botID)", logger: logger)
                .decode((Int32, ByteBuffer?).self).first { _ in true }
        }
        guard let (botID, storedHash) = row else { return .refused("unknown bot id") }
        guard let storedHash else { return .refused("no token issued or token revoked") }
        guard BotToken.matches(hello.token, hash: storedHash) else { return .refused("wrong token") }

        let epoch = Int64(hello.bootEpoch)
        let previous = try await client.query("""
            WITH old AS (SELECT connection_id, connected_hub FROM bots WHERE id = \(botID) FOR UPDATE)
            UPDATE bots SET connection_id = \(connectionID), connected_hub = \(hub), connected_at = now(),
                   last_seen_at = now(), first_seen_at = COALESCE(first_seen_at, now()),
                   agent_version = \(hello.agentVersion), current_epoch = \(epoch)
            WHERE id = \(botID)
            RETURNING (SELECT connection_id FROM old), (SELECT connected_hub FROM old)
            """, logger: logger).decode((UUID?, String?).self).first { _ in true }
        if let (oldConnection, oldHub) = previous, let oldConnection {
            logger.notice("bot \(hello.botID): new connection \(connectionID) replaces \(oldConnection) held by \(oldHub ?? "?")")
        }
        let stored = try await client.query("""
            SELECT COALESCE(max(stored_through), 0) FROM ingest_streams WHERE bot_id = \(botID) AND epoch = \(epoch)
            """, logger: logger).decode(Int64.self).first { _ in true } ?? 0
        return .accepted(BotSession(botID: botID, botName: hello.botID, connectionID: connectionID,
                                    epoch: hello.bootEpoch, storedSequence: UInt64(stored)))
    }

    public func store(_ batch: ValidatedBatch, session: BotSession) async throws -> StoreOutcome {
        let rows = try await SampleRows(batch: batch, ids: metrics.ids(for: batch.series))
        return try await writer.store(rows, batch: batch, session: session)
    }

    public func release(_ session: BotSession) async {
        do {
            try await client.query("""
                UPDATE bots SET connection_id = NULL, connected_hub = NULL
                WHERE id = \(session.botID) AND connection_id = \(session.connectionID)
                """, logger: logger)
        } catch {
            logger.warning("could not mark bot \(session.botName) offline: \(error)")
        }
    }
}

/// A batch flattened into the column arrays of one `samples` row.
struct SampleRows {
    var start: Date
    var metricIDs: [Int16] = []
    var offsets: [Int32] = []
    var values: [Double] = []
    var stateMetricIDs: [Int16]?
    var stateOffsets: [Int32]?
    var states: [String]?
    var count = 0

    init(batch: ValidatedBatch, ids: [Int16?]) {
        let t0 = batch.firstTimestampMs ?? 0
        start = Date(timeIntervalSince1970: Double(t0) / 1000)
        let n = batch.storedSamples
        metricIDs.reserveCapacity(n)
        offsets.reserveCapacity(n)
        values.reserveCapacity(n)
        for (s, id) in zip(batch.series, ids) {
            guard let id else { continue }
            if s.kind == .state {
                if states == nil { states = []; stateMetricIDs = []; stateOffsets = [] }
                for (t, v) in zip(s.timestamps, s.states) {
                    stateMetricIDs!.append(id)
                    stateOffsets!.append(Int32(truncatingIfNeeded: t - t0))
                    states!.append(v)
                }
            } else {
                for (t, v) in zip(s.timestamps, s.values) {
                    metricIDs.append(id)
                    offsets.append(Int32(truncatingIfNeeded: t - t0))
                    values.append(v)
                }
            }
            count += s.count
        }
    }
}
