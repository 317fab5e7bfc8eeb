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

    public init(botID: Int32, botName: String, connectionID: UUID, epoch: UInt64, storedSequence: UInt64) {
        self.botID = botID
        self.botName = botName
        self.connectionID = connectionID
        self.epoch = epoch
        self.storedSequence = storedSequence
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
}

/// A batch checked by `BatchValidator`: what remains to store and what was refused.
public struct ValidatedBatch: Sendable, Equatable {
    public var epoch: UInt64
    public var sequence: UInt64
    /// Samples the agent sent.
    public var sentSamples: Int
    /// Series left after refusing non-finite values and out-of-window timestamps.
    public var series: [Series]
    /// Samples refused.
    public var refusedSamples: Int
    /// Earliest timestamp kept (unix ms), nil if nothing is kept.
    public var firstTimestampMs: Int64?

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
}

/// Where ingest keeps bots and batches. PostgreSQL in production, memory in unit tests.
public protocol IngestStore: Sendable {
    /// Checks a hello's bot id and token and takes the bot's lease for `connectionID`.
    func authenticate(_ hello: Hello, connectionID: UUID, hub: String) async throws -> AuthOutcome
    /// Stores a batch and its ledger row in one transaction, exactly once per (bot, epoch, sequence).
    func store(_ batch: ValidatedBatch, session: BotSession) async throws -> StoreOutcome
    /// Gives the lease back when the connection ends (if this connection still holds it).
    func release(_ session: BotSession) async
}
