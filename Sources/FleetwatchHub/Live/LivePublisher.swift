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

    private let pending = Mutex<[String: LiveUpdate]>([:])
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

    /// Merges a stored batch's newest values (last value of counters and gauges, mean of durations,
    /// last state) into the next flush.
    func record(bot: String, series: [Series]) {
        guard let update = Self.update(bot: bot, series: series) else { return }
        pending.withLock { p in
            // Taken out of the dictionary, the pending update is merged in place rather than copied.
            guard var existing = p.removeValue(forKey: bot) else {
                p[bot] = update
                return
            }
            existing.numbers.merge(update.numbers) { _, new in new }
            existing.states.merge(update.states) { _, new in new }
            existing.at = max(existing.at, update.at)
            p[bot] = existing
        }
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
        let updates = pending.withLock { p -> [LiveUpdate] in
            defer { p.removeAll(keepingCapacity: true) }
            return Array(p.values)
        }
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
