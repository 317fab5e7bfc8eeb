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
final class LivePublisher: Service, Sendable {
    static let channel = "fleetwatch_live"
    static let payloadLimit = 7600

    private let pending = Mutex<[String: LiveUpdate]>([:])
    let client: any PostgresQuerying
    let interval: Duration
    let logger: Logger

    init(client: any PostgresQuerying, interval: Duration, logger: Logger) {
        self.client = client
        self.interval = interval
        self.logger = logger
    }

    /// Merges a stored batch's newest values (last value of counters and gauges, mean of durations,
    /// last state) into the next flush.
    func record(bot: String, series: [Series]) {
        guard let update = Self.update(bot: bot, series: series) else { return }
        pending.withLock { p in
            if var existing = p[bot] {
                existing.numbers.merge(update.numbers) { _, new in new }
                existing.states.merge(update.states) { _, new in new }
                existing.at = max(existing.at, update.at)
                p[bot] = existing
            } else {
                p[bot] = update
            }
        }
    }

    static func update(bot: String, series: [Series]) -> LiveUpdate? {
        var numbers: [String: Double] = [:], states: [String: String] = [:]
        var newest: Int64 = .min
        for s in series where s.count > 0 {
            newest = max(newest, s.timestamps.max() ?? .min)
            switch s.kind {
            case .state: states[s.name] = s.states.last
            case .duration: numbers[s.name] = s.values.reduce(0, +) / Double(s.values.count)
            case .counter, .gauge: numbers[s.name] = s.values.last
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
        for payload in Self.pack(updates) {
            do {
                try await Broadcast(client: client, logger: logger).publish(Self.channel, payload)
            } catch {
                // Live values only: the next batch carries newer ones, and the tables hold everything.
                logger.debug("cannot publish live values: \(String(reflecting: error))")
            }
        }
    }

    /// JSON arrays of updates, each under the payload limit. An update too big for one notification (a bot
    /// with hundreds of metrics) is split into several of the same bot and time; replicas merge them.
    static func pack(_ updates: [LiveUpdate]) -> [String] {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .millisecondsSince1970
        var out: [String] = [], current: [String] = [], size = 2
        for u in updates.flatMap(split) {
            guard let data = try? encoder.encode(u), data.count + 2 <= payloadLimit else { continue }
            let json = String(decoding: data, as: UTF8.self)
            if size + json.utf8.count + 1 > payloadLimit, !current.isEmpty {
                out.append("[" + current.joined(separator: ",") + "]")
                current = []
                size = 2
            }
            current.append(json)
            size += json.utf8.count + 1
        }
        if !current.isEmpty { out.append("[" + current.joined(separator: ",") + "]") }
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

    static func decode(_ payload: String) -> [LiveUpdate] {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .millisecondsSince1970
        return (try? decoder.decode([LiveUpdate].self, from: Data(payload.utf8))) ?? []
    }
}
