import FleetwatchIngest
import FleetwatchProtocol
import Foundation
import Logging
import PostgresNIO

/// Ingest storage in PostgreSQL: bot authentication and leases, and exactly-once batch storage.
public final class PostgresIngestStore: IngestStore {
    /// NOTIFY channel of lease moves; the payload is `CONNECTION-ID<TAB>BOT<TAB>ORDER<TAB>HUB` (see `leaseMove(_:)`).
    public static let leaseChannel = "fleetwatch_leases"

    /// NOTIFY channel of a bot's changed metric-name limit; the payload is the bot's row id.
    public static let metricLimitChannel = "fleetwatch_metric_limits"

    /// A lease-move notification: the bot, its new connection, the number of the move (`bots.lease_order`) and
    /// the replica holding it.
    public struct LeaseMove: Sendable, Equatable {
        public var bot: String
        public var connectionID: UUID
        /// nil from a replica older than schema 13 (its payload is `CONNECTION-ID<TAB>BOT<TAB>HUB`).
        public var order: Int64?
        public var hub: String?
    }

    /// The lease move a notification on `leaseChannel` tells of, nil for anything else.
    public static func leaseMove(_ payload: String) -> LeaseMove? {
        let parts = payload.split(separator: "\t", maxSplits: 3, omittingEmptySubsequences: false)
        guard parts.count >= 2, let id = UUID(uuidString: String(parts[0])) else { return nil }
        let bot = String(parts[1])
        if parts.count == 4, let order = Int64(parts[2]) {
            return LeaseMove(bot: bot, connectionID: id, order: order, hub: String(parts[3]))
        }
        // The payload of an older replica: everything after the bot is the hub's name.
        let hub = parts.count > 2 ? parts[2...].joined(separator: "\t") : nil
        return LeaseMove(bot: bot, connectionID: id, order: nil, hub: hub)
    }

    let client: any PostgresQuerying
    let logger: Logger
    let autoRegister: Bool
    let metrics: MetricAdmission
    let partitions: PartitionMaintainer
    let writer: BatchWriter
    let leases: LeaseTaker

    /// - Parameters:
    ///   - autoRegister: let an unknown bot register itself with the token it presents (trust on first use,
    ///     for demos); otherwise bots must be added with `monitor-hub bots add`.
    ///   - maxNamesPerBot: distinct metric names a bot may use unless it has its own limit.
    ///   - maxNames: distinct metric names in the whole fleet.
    ///   - hubID: this replica's name, recorded with each stored batch.
    ///   - maxGroup: most connections' runs written by one statement (a run is one batch, or up to
    ///     `IngestSession.maxRun` batches that waited on one connection together).
    ///   - statementDeadline: a batch statement unanswered this long is given up on (`StatementWatch`; the batch
    ///     is not acknowledged); nil: only when its connection closes.
    ///   - hellos: most hellos let in by one statement, and most such statements at a time (`LeaseTaker`).
    public init(client: any PostgresQuerying, logger: Logger, autoRegister: Bool = false, maxNamesPerBot: Int = 1_000,
                maxNames: Int = 50_000, hubID: String = "hub", maxGroup: Int = 128, statementDeadline: Duration? = nil,
                hellos: (group: Int, concurrent: Int) = (LeaseTaker.defaultGroup, LeaseTaker.defaultConcurrent)) {
        self.client = client
        self.logger = logger
        self.autoRegister = autoRegister
        metrics = MetricAdmission(client: client, logger: logger,
                                  limits: .init(perBot: maxNamesPerBot, fleet: maxNames))
        partitions = PartitionMaintainer(client: client, logger: logger)
        leases = LeaseTaker(client: client, logger: logger, maxGroup: hellos.group, maxConcurrent: hellos.concurrent)
        writer = BatchWriter(client: client, logger: logger, hubID: hubID, partitions: partitions, maxGroup: maxGroup,
                             watch: StatementWatch(deadline: statementDeadline))
    }

    public func authenticate(_ hello: Hello, connectionID: UUID, hub: String) async throws -> AuthOutcome {
        let hash = BotToken.hash(hello.token)
        let epoch = Int64(hello.bootEpoch)
        var found = try await takeLease(hello, hash: hash, epoch: epoch, connectionID: connectionID, hub: hub)
        if found == nil, autoRegister {
            try await client.query("""
                INSERT INTO bots (name, token_hash, token_issued_at) VALUES (\(hello.botID), \(hash), now())
                ON CONFLICT (name) DO NOTHING
                """, logger: logger)
            logger.notice("auto-registered bot \(hello.botID)")
            found = try await takeLease(hello, hash: hash, epoch: epoch, connectionID: connectionID, hub: hub)
        }
        guard let lease = found else { return .refused("unknown bot id") }
        guard lease.hasToken else { return .refused("no token issued or token revoked") }
        guard lease.taken else { return .refused("wrong token") }
        if let oldConnection = lease.oldConnection {
            logger.notice("bot \(hello.botID): new connection \(connectionID) replaces \(oldConnection) held by \(lease.oldHub ?? "?")")
        }
        return .accepted(BotSession(botID: lease.botID, botName: hello.botID, connectionID: connectionID,
                                    epoch: hello.bootEpoch, storedSequence: UInt64(lease.stored), commandsWaiting: lease.commandsWaiting,
                                    leaseOrder: lease.order))
    }

    /// One statement (one round trip, one commit) per hello, or per group of hellos waiting together
    /// (`LeaseTaker`): the token check, the lease move and what the connection starts from — the epoch's stored
    /// sequence and whether the bot has commands to be sent on connect (without any, the command ledger is not read:
    /// a restarted hub's whole fleet connects at once).
    private func takeLease(_ hello: Hello, hash: ByteBuffer, epoch: Int64, connectionID: UUID, hub: String) async throws -> LeaseTaker.Lease? {
        try await leases.take(.init(bot: hello.botID, tokenHash: Array(hash.readableBytesView), connectionID: connectionID,
                                    epoch: epoch, agentVersion: hello.agentVersion, hub: hub))
    }

    public func admit(_ batch: ValidatedBatch, session: BotSession) async throws -> ValidatedBatch {
        if let known = admitWithoutWaiting(batch, session: session) { return known }
        let admitted = switch try await metrics.ids(for: batch.series, botID: session.botID) {
        case .every(let ids): batch.admittingEvery(ids: ids)
        case .some(let ids): batch.admitting(ids: ids)
        }
        if admitted.overLimitSamples > 0 { await recordRefusal(session) }
        return admitted
    }

    public func admitWithoutWaiting(_ batch: ValidatedBatch, session: BotSession) -> ValidatedBatch? {
        metrics.recentIDs(for: batch.series, botID: session.botID).map { batch.admittingEvery(ids: $0) }
    }

    public func store(_ batch: ValidatedBatch, session: BotSession) async throws -> StoreOutcome {
        try await store(run: [batch], session: session)[0]
    }

    public func store(run batches: [ValidatedBatch], session: BotSession) async throws -> [StoreOutcome] {
        // Batches not admitted yet (a caller other than the ingest session) are admitted here.
        var admitted: [ValidatedBatch] = []
        admitted.reserveCapacity(batches.count)
        for b in batches { admitted.append(b.isAdmitted ? b : try await admit(b, session: session)) }
        do {
            return try await writer.store(run: admitted.map { SampleRows(batch: $0) }, batches: admitted, session: session)
        } catch {
            throw Self.refusal(error)
        }
    }

    /// Admitted batches (the ingest session's) are queued at once; others are admitted first, as `store(run:)` does.
    public func submit(run batches: [ValidatedBatch], session: BotSession, after: UInt64?,
                       answer: @escaping @Sendable (Result<[StoreOutcome], any Error>) -> Void) async {
        guard batches.allSatisfy(\.isAdmitted) else {
            return await storing(run: batches, session: session, answer: answer)
        }
        await writer.submit(run: batches.map { SampleRows(batch: $0) }, batches: batches, session: session, after: after) { result in
            answer(result.mapError(Self.refusal))
        }
    }

    /// PostgreSQL refusing a batch's data, as the ingest session knows it: the caller stores a run's batches one by one
    /// and so learns which one it was.
    static func refusal(_ error: any Error) -> any Error {
        guard let error = error as? PSQLError, BatchWriter.isBatchSpecific(error) else { return error }
        return BatchRefusedByStore("PostgreSQL refused the batch's data (SQLSTATE \(error.serverInfo?[.sqlState] ?? "?"))")
    }

    /// Notes that `session`'s bot sent names over its limit (the alert resolves ten minutes after the last
    /// refusal); at most once a minute per bot.
    private func recordRefusal(_ session: BotSession) async {
        do {
            try await client.query("""
                UPDATE bots SET metric_names_refused_at = now()
                WHERE id = \(session.botID)
                  AND (metric_names_refused_at IS NULL OR metric_names_refused_at < now() - interval '1 minute')
                """, logger: logger)
        } catch {
            logger.warning("could not record the metric-name refusal of \(session.botName): \(error)")
        }
    }

    /// Which connection holds each of `bots`' leases now (nil: none, e.g. after its token was revoked).
    public func leaseHolders(bots: [String]) async throws -> [String: UUID?] {
        guard !bots.isEmpty else { return [:] }
        var out: [String: UUID?] = [:]
        for try await (name, connection) in try await client.query("""
            SELECT name, connection_id FROM bots WHERE name = ANY(\(bots))
            """, logger: logger).decode((String, UUID?).self) { out[name] = .some(connection) }
        return out
    }

    /// The replica holding each connected bot's lease (bot → hub id).
    public func connectedHubs() async throws -> [String: String] {
        var out: [String: String] = [:]
        for try await (name, hub) in try await client.query("""
            SELECT name, connected_hub FROM bots WHERE connected_hub IS NOT NULL
            """, logger: logger).decode((String, String).self) { out[name] = hub }
        return out
    }

    /// The number of the latest lease move this database handed out (sequence `lease_moves`), 0 before the first.
    public func latestLeaseMove() async throws -> Int64 {
        for try await (value, called) in try await client.query("SELECT last_value, is_called FROM lease_moves", logger: logger)
            .decode((Int64, Bool).self) { return called ? value : 0 }
        return 0
    }

    /// Forgets what this replica cached of `botID`'s admitted names (its limit changed).
    public func forgetMetricNames(botID: Int32) async {
        await metrics.forget(botID: botID)
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

/// A batch's samples as `samples` rows: flat arrays (ids, offsets, values; states apart) and the parts they are
/// cut into, one row each.
///
/// A batch is one row unless its samples span more than a minute. Such a batch is cut into a row per minute for
/// the samples of the last `recentMs` (late data the rollups still reach) and ahead of now, and a row per UTC day
/// for older ones. A row longer than a minute is read by every rollup pass while it reaches into the pass's window:
/// a bot sending batches from a week ago to five minutes ahead (both allowed) made every pass of the fleet re-read
/// all of them. Cut, an old day's row ends before any pass of the newest minutes, and a recent minute's row is
/// read only by the passes over that minute. A batch makes at most about 140 rows (120 minutes, 6 ahead, 8 days).
struct SampleRows {
    /// One row: when its first and last samples are, and its slices of the flat arrays.
    struct Part: Equatable {
        var start: Date
        var end: Date
        var numbers: Range<Int>
        var states: Range<Int>
    }

    /// Samples younger than this are cut by minute, older ones by day.
    static let recentMs: Int64 = 2 * 3_600_000

    var start: Date
    var metricIDs: [Int32] = []
    var offsets: [Int32] = []
    var values: [Double] = []
    var stateMetricIDs: [Int32]?
    var stateOffsets: [Int32]?
    var states: [String]?
    var count = 0
    /// Milliseconds from `start` to the batch's last sample.
    var endOffset: Int32 = 0
    /// Bytes of the row's arrays, roughly (16 per number: id, offset and value; 8 plus its length per state string).
    var bytes = 0
    /// The rows of a batch cut by `cut` (each part's offsets from its own start); nil for one row, the usual case,
    /// which then costs no array.
    private var cutParts: [Part]?

    /// The rows to write: none for a batch with no samples left.
    func forEachPart(_ body: (Part) throws -> Void) rethrows {
        if let cutParts {
            for part in cutParts { try body(part) }
        } else if count > 0 {
            try body(Part(start: start, end: end, numbers: 0..<metricIDs.count, states: 0..<(stateMetricIDs?.count ?? 0)))
        }
    }

    /// When the batch's last sample is.
    var end: Date { start.addingTimeInterval(Double(endOffset) / 1000) }

    /// - Parameters:
    ///   - batch: an admitted batch (`metricIDs` set, one per series).
    ///   - nowMs: the hub's clock, for which samples are recent.
    init(batch: ValidatedBatch, nowMs: Int64 = SystemClock.wall.nowMs) {
        let t0 = batch.firstTimestampMs ?? 0
        start = Date(timeIntervalSince1970: Double(t0) / 1000)
        let n = batch.storedSamples
        metricIDs.reserveCapacity(n)
        offsets.reserveCapacity(n)
        values.reserveCapacity(n)
        // The series are read in place, not copied (see `RuleEvaluator.evaluate`).
        for i in batch.series.indices where i < batch.metricIDs.count {
            Self.append(batch.series, i, id: batch.metricIDs[i], t0: t0, to: &self)
        }
        if count > 0, endOffset > 60_000 { cut(t0: t0, nowMs: nowMs) }
    }

    /// Appends `all[i]`, read in place (passing the series on would retain its name and each of its arrays).
    private static func append(_ all: [Series], _ i: Int, id: Int32, t0: Int64, to rows: inout SampleRows) {
        let n = all[i].timestamps.count
        if all[i].kind == .state {
            if rows.states == nil { rows.states = []; rows.stateMetricIDs = []; rows.stateOffsets = [] }
            for j in 0..<min(n, all[i].states.count) {
                rows.stateMetricIDs!.append(id)
                let offset = Int32(truncatingIfNeeded: all[i].timestamps[j] - t0)
                rows.stateOffsets!.append(offset)
                if offset > rows.endOffset { rows.endOffset = offset }
                rows.states!.append(all[i].states[j])
                rows.bytes += 8 + all[i].states[j].utf8.count
            }
        } else {
            for j in 0..<min(n, all[i].values.count) {
                rows.metricIDs.append(id)
                let offset = Int32(truncatingIfNeeded: all[i].timestamps[j] - t0)
                rows.offsets.append(offset)
                if offset > rows.endOffset { rows.endOffset = offset }
                rows.values.append(all[i].values[j])
            }
            rows.bytes += 16 * n
        }
        rows.count += n
    }

    /// Which row a sample at `ms` goes to: its minute if recent or ahead, else its UTC day.
    private struct Key: Hashable {
        var unit: Int64
        var byDay: Bool
    }

    /// Regroups the samples into parts, in time order, each part's samples contiguous and in their batch order.
    private mutating func cut(t0: Int64, nowMs: Int64) {
        let recentFrom = nowMs - Self.recentMs
        func key(_ ms: Int64) -> Key {
            ms >= recentFrom ? Key(unit: ms / 60_000, byDay: false) : Key(unit: ms / 86_400_000, byDay: true)
        }
        var numbersOf: [Key: [Int]] = [:], statesOf: [Key: [Int]] = [:], first: [Key: Int64] = [:], last: [Key: Int64] = [:]
        func note(_ k: Key, _ ms: Int64) {
            first[k] = min(first[k] ?? ms, ms)
            last[k] = max(last[k] ?? ms, ms)
        }
        for i in offsets.indices {
            let ms = t0 + Int64(offsets[i]); let k = key(ms)
            numbersOf[k, default: []].append(i); note(k, ms)
        }
        for i in (stateOffsets ?? []).indices {
            let ms = t0 + Int64(stateOffsets![i]); let k = key(ms)
            statesOf[k, default: []].append(i); note(k, ms)
        }
        var ids: [Int32] = [], offs: [Int32] = [], vals: [Double] = []
        var sids: [Int32] = [], soffs: [Int32] = [], strs: [String] = []
        ids.reserveCapacity(metricIDs.count); offs.reserveCapacity(metricIDs.count); vals.reserveCapacity(metricIDs.count)
        var parts: [Part] = []
        for k in first.keys.sorted(by: { first[$0]! < first[$1]! }) {
            let from = first[k]!
            let (n0, s0) = (ids.count, sids.count)
            for i in numbersOf[k] ?? [] {
                ids.append(metricIDs[i]); offs.append(Int32(truncatingIfNeeded: t0 + Int64(offsets[i]) - from)); vals.append(values[i])
            }
            for i in statesOf[k] ?? [] {
                sids.append(stateMetricIDs![i]); soffs.append(Int32(truncatingIfNeeded: t0 + Int64(stateOffsets![i]) - from)); strs.append(states![i])
            }
            parts.append(Part(start: Date(timeIntervalSince1970: Double(from) / 1000), end: Date(timeIntervalSince1970: Double(last[k]!) / 1000),
                              numbers: n0..<ids.count, states: s0..<sids.count))
        }
        cutParts = parts
        metricIDs = ids; offsets = offs; values = vals
        if states != nil { stateMetricIDs = sids; stateOffsets = soffs; states = strs }
    }
}
