import FleetwatchProtocol
import Foundation

/// A bot's authenticated connection, as the store knows it.
public struct BotSession: Sendable, Equatable {
    /// The bot's row id.
    public var botID: Int32
    /// The bot id agents send (the bot's name).
    public var botName: String
    /// This connection; the store refuses batches from a connection that lost the bot's lease.
    public var connectionID: UUID
    /// The epoch of the hello.
    public var epoch: UInt64
    /// Highest stored sequence of that epoch when the connection started (0: none).
    public var storedSequence: UInt64
    /// Let in while the database was unreachable, on a token this replica had verified recently: it holds no
    /// lease, nothing it sends is stored (its batches are evaluated and deferred), and it is asked to reconnect
    /// once the database is back.
    public var provisional: Bool
    /// Whether the bot may have commands to be sent on connect (open, or its latched emergency stop); false when
    /// the store saw none as it let the bot in, so the command ledger is not read for it.
    public var commandsWaiting: Bool
    /// The number of the lease move that gave this connection the bot (`bots.lease_order`); nil when the store
    /// numbers none (a provisional session, the in-memory store). A notification of a later move closes it; one of
    /// an earlier move, delivered late, does not.
    public var leaseOrder: Int64?

    public init(botID: Int32, botName: String, connectionID: UUID, epoch: UInt64, storedSequence: UInt64,
                provisional: Bool = false, commandsWaiting: Bool = true, leaseOrder: Int64? = nil) {
        self.botID = botID
        self.botName = botName
        self.connectionID = connectionID
        self.epoch = epoch
        self.storedSequence = storedSequence
        self.provisional = provisional
        self.commandsWaiting = commandsWaiting
        self.leaseOrder = leaseOrder
    }
}

/// Whether a hello is let in.
public enum AuthOutcome: Sendable, Equatable {
    case accepted(BotSession)
    /// Unknown bot, wrong or revoked token; the reason goes into the hub's log, not to the agent.
    case refused(String)
}

/// What storing a batch did.
public enum StoreOutcome: Sendable, Equatable {
    /// Stored now, in one transaction with its ledger row.
    case stored
    /// Its (bot, epoch, sequence) was stored before; nothing was written.
    case duplicate
    /// Another connection holds the bot's lease; nothing was written.
    case leaseLost
    /// The database is unreachable: nothing was written and nothing is acknowledged; the agent keeps the batch
    /// and sends it again when asked to reconnect. The batch was still evaluated for alerts. Also the answer for a
    /// run handed over behind one of its connection's earlier runs that was not stored (`IngestStore.submit`).
    case deferred
}

/// A batch checked by `BatchValidator` and admitted by the store: what remains to store and what was refused.
public struct ValidatedBatch: Sendable, Equatable {
    public var epoch: UInt64
    public var sequence: UInt64
    /// Samples the agent sent.
    public var sentSamples: Int
    /// Series left after refusing non-finite values, out-of-window timestamps and names over the bot's limit.
    public var series: [Series]
    /// Samples refused, for every reason.
    public var refusedSamples: Int
    /// Earliest timestamp kept (unix ms), nil if nothing is kept.
    public var firstTimestampMs: Int64?
    /// Of `refusedSamples`, those whose metric name was over the bot's (or the fleet's) name limit.
    public var overLimitSamples = 0
    /// Names refused for the limit, at most `maxReportedNames` of them (for the log and the alert).
    public var overLimitNames: [String] = []
    /// How many distinct names were refused for the limit.
    public var overLimitNameCount = 0
    /// The store's id of each series' metric name, in `series` order (set by `IngestStore.admit`).
    public var metricIDs: [Int32] = []
    /// Whether the store gave every series its id (`IngestStore.admit` ran on it): storing it needs no admission.
    public var isAdmitted: Bool { metricIDs.count == series.count }

    /// Most refused names a batch keeps for messages.
    public static let maxReportedNames = 10

    public init(epoch: UInt64, sequence: UInt64, sentSamples: Int, series: [Series], refusedSamples: Int,
                firstTimestampMs: Int64?) {
        self.epoch = epoch
        self.sequence = sequence
        self.sentSamples = sentSamples
        self.series = series
        self.refusedSamples = refusedSamples
        self.firstTimestampMs = firstTimestampMs
    }

    public var storedSamples: Int { sentSamples - refusedSamples }

    /// Samples refused for a bad value or timestamp.
    public var invalidSamples: Int { refusedSamples - overLimitSamples }

    /// Why samples were refused, as the v2 ack reports it.
    public var refusalReasons: Ack.Refusals {
        var r: Ack.Refusals = []
        if invalidSamples > 0 { r.insert(.invalidValue) }
        if overLimitSamples > 0 { r.insert(.metricNameLimit) }
        return r
    }

    /// This batch with every name admitted (a bot's normal batch): the series stay as they are; `ids` in
    /// `series` order.
    public func admittingEvery(ids: [Int32]) -> ValidatedBatch {
        precondition(ids.count == series.count, "one id per series")
        var out = self
        out.metricIDs = ids
        return out
    }

    /// This batch without the series whose id is nil (names over the limit); `ids` in `series` order.
    public func admitting(ids: [Int32?]) -> ValidatedBatch {
        if !ids.contains(nil) { return admittingEvery(ids: ids.map { $0! }) }
        var out = self
        out.series = []
        out.metricIDs = []
        out.series.reserveCapacity(series.count)
        out.metricIDs.reserveCapacity(series.count)
        var first = Int64.max
        for (s, id) in zip(series, ids) {
            if let id {
                out.series.append(s)
                out.metricIDs.append(id)
                if let t = s.timestamps.min() { first = min(first, t) }
            } else {
                out.overLimitSamples += s.count
                out.refusedSamples += s.count
                out.overLimitNameCount += 1
                if out.overLimitNames.count < Self.maxReportedNames { out.overLimitNames.append(s.name) }
            }
        }
        if out.overLimitSamples > overLimitSamples { out.firstTimestampMs = first == .max ? nil : first }
        return out
    }
}

/// The store refused one batch for its data (PostgreSQL could not take it): the batch can never be stored, the
/// agent must drop it (close 4005), and the store itself is fine.
public struct BatchRefusedByStore: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Where ingest keeps bots and batches. PostgreSQL in production, memory in unit tests.
public protocol IngestStore: Sendable {
    /// Checks a hello's bot id and token and takes the bot's lease for `connectionID`.
    func authenticate(_ hello: Hello, connectionID: UUID, hub: String) async throws -> AuthOutcome
    /// Leaves out the series whose metric names are over the bot's or the fleet's name limit (counted in the
    /// batch's refusals) and sets the ids of the rest. Limits are the store's, the same for every replica.
    func admit(_ batch: ValidatedBatch, session: BotSession) async throws -> ValidatedBatch
    /// `admit`'s answer when the store has it at hand (a bot's usual batch: the names of its last one, all admitted),
    /// without a task, an await or a round trip; nil when `admit` must be asked. `admit` tries this first, so the two
    /// cannot disagree; stores that wrap another ask the inner one here without their own database steps.
    func admitWithoutWaiting(_ batch: ValidatedBatch, session: BotSession) -> ValidatedBatch?
    /// Stores an admitted batch and its ledger row in one transaction, exactly once per (bot, epoch, sequence).
    func store(_ batch: ValidatedBatch, session: BotSession) async throws -> StoreOutcome
    /// Stores a run of admitted batches that waited on one connection together: one epoch, increasing
    /// sequences (gaps allowed), in order. One outcome per batch, in order; each batch exactly once, as `store` would.
    func store(run batches: [ValidatedBatch], session: BotSession) async throws -> [StoreOutcome]
    /// Hands a run to the store and returns once it is queued, so that a connection can hand over its next run
    /// while this one is written; `answer` is called once, from any thread, with what `store(run:)` would return or
    /// throw. Runs handed over by one caller are queued in call order.
    ///
    /// `after`: the last sequence of the run this connection handed over before, of the same epoch, when its answer
    /// has not come yet. The run is then stored only if that run was (or had been stored before): otherwise nothing of
    /// it is written and each of its batches is answered `.deferred`, and the agent sends them again. A run can never be
    /// stored ahead of an earlier one that failed, which would move the stream's high-water mark past batches not
    /// stored (they would count as duplicates when sent again). A store may ignore `after` for a run whose batches are
    /// not all admitted: the ingest session hands such a run over only when no other is in flight.
    func submit(run batches: [ValidatedBatch], session: BotSession, after: UInt64?,
                answer: @escaping @Sendable (Result<[StoreOutcome], any Error>) -> Void) async
    /// Gives the lease back when the connection ends (if this connection still holds it).
    func release(_ session: BotSession) async
}

extension IngestStore {
    /// Nothing at hand: `admit` is always asked.
    public func admitWithoutWaiting(_ batch: ValidatedBatch, session: BotSession) -> ValidatedBatch? { nil }

    /// Stores the run before returning (stores that do not queue): the caller never has two runs handed over at
    /// once, so `after` always holds.
    public func submit(run batches: [ValidatedBatch], session: BotSession, after: UInt64?,
                       answer: @escaping @Sendable (Result<[StoreOutcome], any Error>) -> Void) async {
        await storing(run: batches, session: session, answer: answer)
    }

    /// `store(run:)` before returning, its result handed to `answer`: `submit` for a run a store does not queue.
    public func storing(run batches: [ValidatedBatch], session: BotSession,
                        answer: @Sendable (Result<[StoreOutcome], any Error>) -> Void) async {
        do { answer(.success(try await store(run: batches, session: session))) } catch { answer(.failure(error)) }
    }

    /// One batch at a time (stores that have nothing to gain from runs).
    public func store(run batches: [ValidatedBatch], session: BotSession) async throws -> [StoreOutcome] {
        var outcomes: [StoreOutcome] = []
        for batch in batches { outcomes.append(try await store(batch, session: session)) }
        return outcomes
    }
}
