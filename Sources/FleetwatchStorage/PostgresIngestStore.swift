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

    /// - Parameter autoRegister: let an unknown bot register itself with the token it presents
    ///   (trust on first use, for demos); otherwise bots must be added with `monitor-hub bots add`.
    public init(client: PostgresClient, logger: Logger, autoRegister: Bool = false, maxMetrics: Int = 10_000) {
        self.client = client
        self.logger = logger
        self.autoRegister = autoRegister
        metrics = MetricDictionary(client: client, logger: logger, maxMetrics: maxMetrics)
        partitions = PartitionMaintainer(client: client, logger: logger)
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
            SELECT COALESCE(max(seq), 0) FROM ingest_batches WHERE bot_id = \(botID) AND epoch = \(epoch)
            """, logger: logger).decode(Int64.self).first { _ in true } ?? 0
        return .accepted(BotSession(botID: botID, botName: hello.botID, connectionID: connectionID,
                                    epoch: hello.bootEpoch, storedSequence: UInt64(stored)))
    }

    public func store(_ batch: ValidatedBatch, session: BotSession) async throws -> StoreOutcome {
        let rows = try await SampleRows(batch: batch, ids: metrics.ids(for: batch.series))
        do {
            return try await insert(batch, rows: rows, session: session)
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23514" {
            // No partition for the batch's day yet: create it and try once more.
            try await partitions.ensure(dayOf: rows.start)
            return try await insert(batch, rows: rows, session: session)
        }
    }

    private func insert(_ batch: ValidatedBatch, rows: SampleRows, session: BotSession) async throws -> StoreOutcome {
        let epoch = Int64(batch.epoch), seq = Int64(batch.sequence)
        let sent = Int32(batch.sentSamples), kept = Int32(rows.count)
        let firstTs: Date? = rows.count > 0 ? rows.start : nil
        let result = try await client.query("""
            WITH lease AS (
                UPDATE bots SET last_seen_at = now()
                WHERE id = \(session.botID) AND connection_id = \(session.connectionID) RETURNING id
            ), b AS (
                INSERT INTO ingest_batches (bot_id, epoch, seq, sample_count, stored_count, first_ts, hub)
                SELECT id, \(epoch), \(seq), \(sent), \(kept), \(firstTs), connected_hub FROM lease JOIN bots USING (id)
                ON CONFLICT DO NOTHING RETURNING bot_id
            ), s AS (
                INSERT INTO samples (bot_id, t_start, epoch, seq, metric_ids, offsets_ms, vals,
                                     state_metric_ids, state_offsets_ms, states)
                SELECT bot_id, \(rows.start), \(epoch), \(seq), \(rows.metricIDs), \(rows.offsets), \(rows.values),
                       \(rows.stateMetricIDs), \(rows.stateOffsets), \(rows.states)
                FROM b WHERE \(kept) > 0
            )
            SELECT (SELECT count(*) FROM lease), (SELECT count(*) FROM b)
            """, logger: logger).decode((Int64, Int64).self).first { _ in true }
        guard let (owned, inserted) = result, owned > 0 else { return .leaseLost }
        return inserted > 0 ? .stored : .duplicate
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
