import FleetwatchStorage
import FleetwatchProtocol
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// Publishes the newest values of stored batches to every replica's `LiveFleet` with `pg_notify`.
/// `record` is called on the ingest path and only merges into a dictionary under a lock; the service
/// flushes every `interval`, packing several bots into each notification (PostgreSQL caps a payload
/// at 8000 bytes), so 1,000 bots cost a few notifications per flush, not one per batch.
///
/// A payload is `ORIGIN<TAB>[updates as JSON]`, `ORIGIN` this publisher's random id: the replica that
/// published applies its updates to its own `LiveFleet` directly and skips them when they come back.
final class LivePublisher: Service, Sendable {
    static let channel = "fleetwatch_live"
    static let payloadLimit = 7600

    private let pending = Mutex<[String: PendingLive]>([:])
    let client: any PostgresQuerying
    let interval: Duration
    let logger: Logger
    /// This replica's values, updated at each flush without the round trip through PostgreSQL.
    let local: LiveFleet?
    /// Marks this publisher's notifications (unique per process, unlike a hub id an operator may repeat).
    let origin = UUID().uuidString

    init(client: any PostgresQuerying, interval: Duration, logger: Logger, local: LiveFleet? = nil) {
        self.client = client
        self.interval = interval
        self.logger = logger
        self.local = local
    }

    /// Keeps a stored batch for the next flush, which publishes its newest values (last value of counters and
    /// gauges, mean of durations, last state) merged with the bot's other batches since the last flush. On the
    /// ingest path this is one lookup, a comparison of names with the bot's last batch and an append or a replacement
    /// under the lock (what the batch's samples say is read before it); the values are worked out at the flush, once
    /// per bot, however many batches it sent meanwhile.
    func record(bot: String, series: [Series]) {
        guard !series.isEmpty else { return }
        let facts = PendingLive.Facts(series)
        pending.withLock { p in p[bot, default: PendingLive()].add(series, bot: bot, facts: facts) }
    }

    static func update(bot: String, series: [Series]) -> LiveUpdate? {
        var numbers = [String: Double](minimumCapacity: series.count), states: [String: String] = [:]
        var newest: Int64 = .min
        // Read in place, not copied (see `RuleEvaluator.evaluate`).
        for i in series.indices where series[i].count > 0 {
            newest = max(newest, series[i].timestamps.max() ?? .min)
            switch series[i].kind {
            case .state: states[series[i].name] = series[i].states.last
            case .duration: numbers[series[i].name] = series[i].values.reduce(0, +) / Double(series[i].values.count)
            case .counter, .gauge: numbers[series[i].name] = series[i].values.last
            }
        }
        guard newest != .min else { return nil }
        return LiveUpdate(bot: bot, at: Date(timeIntervalSince1970: Double(newest) / 1000), numbers: numbers, states: states)
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: self.interval)
                await self.flush()
            }
        }
    }

    func flush() async {
        let waiting = pending.withLock { p -> [String: PendingLive] in
            defer { p.removeAll(keepingCapacity: true) }
            return p
        }
        let updates = waiting.compactMap { bot, entry in entry.update(bot: bot) }
        guard !updates.isEmpty else { return }
        await local?.apply(updates)
        for payload in Self.pack(updates, origin: origin) {
            do {
                try await Broadcast(client: client, logger: logger).publish(Self.channel, payload)
            } catch {
                // Live values only: the next batch carries newer ones, and the tables hold everything.
                logger.debug("cannot publish live values: \(String(reflecting: error))")
            }
        }
    }

    /// `ORIGIN<TAB>` and a JSON array of updates, each payload under the payload limit. An update too big for
    /// one notification (a bot with hundreds of metrics) is split into several of the same bot and time;
    /// replicas merge them.
    static func pack(_ updates: [LiveUpdate], origin: String = "") -> [String] {
        let prefix = origin.isEmpty ? "" : origin + "\t"
        let limit = payloadLimit - prefix.utf8.count
        var out: [String] = [], current: [String] = [], size = 2
        for u in updates.flatMap(split) {
            let json = LiveUpdateJSON.encode(u)
            guard json.utf8.count + 2 <= limit else { continue }
            if size + json.utf8.count + 1 > limit, !current.isEmpty {
                out.append(prefix + "[" + current.joined(separator: ",") + "]")
                current = []
                size = 2
            }
            current.append(json)
            size += json.utf8.count + 1
        }
        if !current.isEmpty { out.append(prefix + "[" + current.joined(separator: ",") + "]") }
        return out
    }

    /// `update` in parts whose JSON stays under the payload limit (each value counted at its worst case).
    static func split(_ update: LiveUpdate) -> [LiveUpdate] {
        let budget = payloadLimit - 200 - update.bot.utf8.count
        var parts: [LiveUpdate] = []
        var part = LiveUpdate(bot: update.bot, at: update.at, numbers: [:], states: [:])
        var size = 0
        func add(_ cost: Int) {
            if size + cost > budget, !(part.numbers.isEmpty && part.states.isEmpty) {
                parts.append(part)
                part = LiveUpdate(bot: update.bot, at: update.at, numbers: [:], states: [:])
                size = 0
            }
            size += cost
        }
        for (name, value) in update.numbers {
            add(name.utf8.count + 32)
            part.numbers[name] = value
        }
        for (name, value) in update.states {
            add(name.utf8.count + 6 * value.utf8.count + 8)
            part.states[name] = value
        }
        if !(part.numbers.isEmpty && part.states.isEmpty) || parts.isEmpty { parts.append(part) }
        return parts
    }

    /// The updates of a payload; none if it is `skipping`'s own (or not a payload at all).
    static func decode(_ payload: String, skipping origin: String? = nil) -> [LiveUpdate] {
        var json = Substring(payload)
        if let tab = payload.firstIndex(of: "\t") {
            if let origin, payload[..<tab] == origin { return [] }
            json = payload[payload.index(after: tab)...]
        }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .millisecondsSince1970
        return (try? decoder.decode([LiveUpdate].self, from: Data(json.utf8))) ?? []
    }
}

/// One bot's stored batches since the last flush, oldest first, and what was folded of older ones.
struct PendingLive {
    /// Batches kept before they are folded into `folded`: a bot sending many batches a second holds at most this
    /// many between flushes.
    static let maxBatches = 8

    /// A kept batch and its newest sample time (unix ms; nil: no sample), worked out once.
    struct Kept {
        var series: [Series]
        var newestMs: Int64?
    }

    var folded: LiveUpdate?
    var batches: [Kept] = []
    /// The newest sample time (unix ms) of batches replaced by a newer one with their names (`add`): all they still add.
    var coveredAtMs: Int64?

    /// What `add` needs of a batch besides its names, read before the publisher's lock is taken.
    struct Facts {
        /// Its newest sample time, unix ms (nil: no sample).
        var newestMs: Int64?
        /// Every series has a sample: the batch sets a value for each of its names.
        var complete: Bool

        init(_ series: [Series]) {
            var newest: Int64 = .min
            for i in series.indices { newest = max(newest, series[i].timestamps.max() ?? .min) }
            newestMs = newest == .min ? nil : newest
            complete = !series.isEmpty && series.allSatisfy { $0.count > 0 }
        }
    }

    /// Keeps `series` for the flush. A bot sends the same names batch after batch: a batch with the names and kinds
    /// of the one before it and a sample in every series replaces that one, which would add nothing but its time.
    mutating func add(_ series: [Series], bot: String, facts: Facts? = nil) {
        let facts = facts ?? Facts(series)
        let kept = Kept(series: series, newestMs: facts.newestMs)
        if let last = batches.last, facts.complete, series.hasSameNamesAndKinds(as: last.series) {
            if let ms = last.newestMs { coveredAtMs = max(coveredAtMs ?? ms, ms) }
            batches[batches.count - 1] = kept
            return
        }
        batches.append(kept)
        if batches.count >= Self.maxBatches {
            folded = update(bot: bot)
            batches.removeAll(keepingCapacity: true)
            coveredAtMs = nil
        }
    }

    /// The newest value of each metric over `folded` and `batches`, as if each batch's values had been merged
    /// into the last in turn (a later batch wins, and within a batch a later series of the same name). A batch with
    /// the same names in the same order as a newer one whose every series has samples adds nothing but its time,
    /// and costs no lookup.
    func update(bot: String) -> LiveUpdate? {
        var result: LiveUpdate?
        var reference: [Series]?
        for kept in batches.reversed() {
            let series = kept.series
            if let reference, series.hasSameNamesAndKinds(as: reference) {
                if let newest = kept.newestMs.map(Self.date), var r = result {
                    r.at = max(r.at, newest)
                    result = r
                }
                continue
            }
            guard let older = LivePublisher.update(bot: bot, series: series) else { continue }
            result = Self.merge(newer: result, older: older)
            if reference == nil, series.allSatisfy({ $0.count > 0 }) { reference = series }
        }
        if let coveredAtMs, var r = result {
            r.at = max(r.at, Self.date(coveredAtMs))
            result = r
        }
        if let folded { result = Self.merge(newer: result, older: folded) }
        return result
    }

    private static func merge(newer: LiveUpdate?, older: LiveUpdate) -> LiveUpdate {
        guard var r = newer else { return older }
        r.numbers.merge(older.numbers) { current, _ in current }
        r.states.merge(older.states) { current, _ in current }
        r.at = max(r.at, older.at)
        return r
    }

    private static func date(_ ms: Int64) -> Date { Date(timeIntervalSince1970: Double(ms) / 1000) }
}
