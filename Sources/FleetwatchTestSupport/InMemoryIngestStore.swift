import FleetwatchIngest
import FleetwatchProtocol
import Foundation

/// An `IngestStore` in memory, for unit tests: bots with tokens, leases, and the stored batches.
public actor InMemoryIngestStore: IngestStore {
    public struct StoredBatch: Sendable, Equatable {
        public let bot: String
        public let batch: ValidatedBatch
    }
    private var tokens: [String: String]
    private var leases: [String: UUID] = [:]
    private var keys: Set<String> = []
    public private(set) var stored: [StoredBatch] = []
    /// When set, `store` throws (PostgreSQL down).
    public var failing = false
    /// Distinct metric names each bot may use.
    public let maxNamesPerBot: Int
    private var names: [String: [String: Int32]] = [:]
    private var nextID: Int32 = 1

    public init(tokens: [String: String], maxNamesPerBot: Int = 1_000) {
        self.tokens = tokens
        self.maxNamesPerBot = maxNamesPerBot
    }

    public func setFailing(_ value: Bool) { failing = value }

    /// When set, `store` answers `.deferred` (PostgreSQL noticed down by the health probe).
    public var deferring = false
    public func setDeferring(_ value: Bool) { deferring = value }

    public func authenticate(_ hello: Hello, connectionID: UUID, hub: String) async throws -> AuthOutcome {
        guard let token = tokens[hello.botID] else { return .refused("unknown bot id") }
        guard token == hello.token else { return .refused("wrong token") }
        leases[hello.botID] = connectionID
        let high = stored.filter { $0.bot == hello.botID && $0.batch.epoch == hello.bootEpoch }.map(\.batch.sequence).max() ?? 0
        return .accepted(BotSession(botID: 1, botName: hello.botID, connectionID: connectionID,
                                    epoch: hello.bootEpoch, storedSequence: high))
    }

    public func admit(_ batch: ValidatedBatch, session: BotSession) async throws -> ValidatedBatch {
        var known = names[session.botName, default: [:]]
        let ids = batch.series.map { s -> Int32? in
            if let id = known[s.name] { return id }
            guard known.count < maxNamesPerBot else { return nil }
            defer { nextID += 1 }
            known[s.name] = nextID
            return nextID
        }
        names[session.botName] = known
        return batch.admitting(ids: ids)
    }

    public func store(_ batch: ValidatedBatch, session: BotSession) async throws -> StoreOutcome {
        struct Down: Error {}
        if failing { throw Down() }
        if deferring { return .deferred }
        guard leases[session.botName] == session.connectionID else { return .leaseLost }
        let key = "\(session.botName)/\(batch.epoch)/\(batch.sequence)"
        guard keys.insert(key).inserted else { return .duplicate }
        stored.append(StoredBatch(bot: session.botName, batch: batch))
        return .stored
    }

    /// The sequences of every run of several batches stored through `store(run:)`, in order.
    public private(set) var runs: [[UInt64]] = []

    public func store(run batches: [ValidatedBatch], session: BotSession) async throws -> [StoreOutcome] {
        if batches.count > 1 { runs.append(batches.map(\.sequence)) }
        var outcomes: [StoreOutcome] = []
        for batch in batches { outcomes.append(try await store(batch, session: session)) }
        return outcomes
    }

    public func release(_ session: BotSession) async {
        if leases[session.botName] == session.connectionID { leases[session.botName] = nil }
    }
}
