import FleetwatchProtocol
import Logging
import PostgresNIO
import Synchronization

/// Which metric names each bot may store, and their ids. The limits — per bot (`bots.max_metric_names`, else
/// `perBot`) and for the fleet — are enforced by PostgreSQL (`fleetwatch_admit_metrics`), so every replica and
/// every restart agrees; this actor caches what was admitted, so a batch of known names costs no round trip.
/// A bot found at its limit has all its admitted names loaded, and is refused new names from the cache until
/// `recheckFull` has passed or its limit changes (an operator may raise it: NOTIFY, `forget`).
actor MetricAdmission {
    /// The limits and how often a full bot is asked about again.
    struct Limits: Sendable {
        /// Distinct metric names one bot may use, unless the bot has its own limit.
        var perBot = 1_000
        /// Distinct metric names in the whole fleet.
        var fleet = 50_000
        /// How long a bot found at its limit is refused new names without asking PostgreSQL again.
        var recheckFull: Duration = .seconds(30)
    }

    private struct BotNames {
        var admitted: Set<Int32> = []
        var fullSince: ContinuousClock.Instant?
    }

    /// The ids of a batch's metric names.
    enum Admitted: Sendable {
        /// Every name admitted (a bot's normal batch): the id of each series' name.
        case every([Int32])
        /// The id of each series' name, nil where the name is over the bot's or the fleet's limit.
        case some([Int32?])
    }

    private var ids: [String: Int32] = [:]
    /// The names of each bot's last batch answered from the cache, and their ids: a bot sends the same names batch
    /// after batch, and comparing them costs less than looking each one up. Readable without entering the actor
    /// (`recentIDs`); the one copy of them.
    private nonisolated let recent = Mutex<[Int32: (names: [String], ids: [Int32])]>([:])
    private var bots: [Int32: BotNames] = [:]
    private let client: any PostgresQuerying
    private let logger: Logger
    private let limits: Limits

    init(client: any PostgresQuerying, logger: Logger, limits: Limits) {
        self.client = client
        self.logger = logger
        self.limits = limits
    }

    /// The id of each series' name, nil where the name is over the bot's or the fleet's limit. The caller tries
    /// `recentIDs` first (a bot's usual batch); this looks each name up.
    func ids(for series: [Series], botID: Int32) async throws -> Admitted {
        if let known = cached(series, botID: botID) { return .every(known) }
        var missing: [String] = [], kinds: [String] = []
        var seen = Set<String>()
        let bot = bots[botID] ?? BotNames()
        for s in series where !(ids[s.name].map(bot.admitted.contains) ?? false) && seen.insert(s.name).inserted {
            missing.append(s.name)
            kinds.append(s.kind.description)
        }
        if let since = bot.fullSince, ContinuousClock.now - since < limits.recheckFull {
            return .some(series.map { s in ids[s.name].flatMap { bot.admitted.contains($0) ? $0 : nil } })
        }
        let rows = try await client.query("""
            SELECT metric, metric_id FROM fleetwatch_admit_metrics(\(botID), \(missing), \(kinds), \(Int32(clamping: limits.perBot)), \(Int32(clamping: limits.fleet)))
            """, logger: logger)
        var admitted: [(String, Int32)] = []
        for try await (name, id) in rows.decode((String, Int32).self) { admitted.append((name, id)) }
        // Re-read after the await: another connection of the bot may have admitted names meanwhile.
        var entry = bots[botID] ?? BotNames()
        for (name, id) in admitted {
            ids[name] = id
            entry.admitted.insert(id)
        }
        let refused = missing.count - Set(admitted.map(\.0)).intersection(missing).count
        if refused > 0 {
            // At its limit: learn every name the bot may use (admitted by any replica, before any restart), so
            // that while it is full a name missing from the cache really is new and can be refused without asking.
            for try await (name, id) in try await client.query("""
                SELECT m.name, m.id FROM bot_metrics bm JOIN metrics m ON m.id = bm.metric_id WHERE bm.bot_id = \(botID)
                """, logger: logger).decode((String, Int32).self) {
                ids[name] = id
                entry.admitted.insert(id)
            }
            entry.fullSince = ContinuousClock.now
        } else {
            entry.fullSince = nil
        }
        bots[botID] = entry
        return .some(series.map { s in ids[s.name].flatMap { entry.admitted.contains($0) ? $0 : nil } })
    }

    /// All ids from the cache, or nil if a name is not admitted for the bot here.
    private func cached(_ series: [Series], botID: Int32) -> [Int32]? {
        guard let bot = bots[botID] else { return nil }
        var out: [Int32] = []
        out.reserveCapacity(series.count)
        for i in series.indices {
            guard let id = ids[series[i].name], bot.admitted.contains(id) else { return nil }
            out.append(id)
        }
        let names = series.map(\.name)
        recent.withLock { $0[botID] = (names, out) }
        return out
    }

    /// The ids of a batch with the same names, in the same order, as the bot's last batch answered from the cache:
    /// a bot's usual batch, answered without a hop into the actor. Nil otherwise (`ids` answers).
    nonisolated func recentIDs(for series: [Series], botID: Int32) -> [Int32]? {
        recent.withLock { r -> [Int32]? in
            guard let last = r[botID], series.hasNames(last.names) else { return nil }
            return last.ids
        }
    }

    /// Forgets what this replica knows of `botID` (its limit changed).
    func forget(botID: Int32) {
        bots[botID] = nil
        recent.withLock { $0[botID] = nil }
    }
}
