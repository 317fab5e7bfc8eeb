import FleetwatchStorage
import Foundation
import Logging
import PostgresNIO

/// A generated week of review data with known answers: nine metrics, two samples a minute per bot, an outage
/// for bot 1 and a restart (new epoch) for bot 2; `load` writes it as stored batches, `expected` computes the
/// figures the review must show straight from the ticks.
public enum ReviewWeek {
    public static let metrics: [(String, String)] = [
        ("trades_executed", "counter"), ("trades_failed", "counter"), ("api_calls", "counter"), ("api_errors", "counter"),
        ("nonce_failures", "counter"), ("websocket_reconnects", "counter"), ("total_pnl", "gauge"), ("daily_pnl", "gauge"),
        ("memory_usage_mb", "gauge"),
    ]

    /// One generated sample of every metric.
    public struct Tick: Sendable {
        public var at: Date
        public var epoch: Int64
        public var values: [Double]   // in `metrics` order (counters cumulative)
    }

    /// A bot's week: two samples a minute (at :10 and :40), an outage for bot 1, a restart (new epoch) for bot 2.
    public static func generate(bot b: Int, weekStart: Date) -> [Tick] {
        var ticks: [Tick] = []
        var cumulative = [Double](repeating: 0, count: 6)
        var pnl = 0.0, dayStartPnl = 0.0, day = -1
        var epoch: Int64 = 1
        var lcg: UInt64 = 12345 &+ UInt64(b) &* 7919
        for i in 0..<(7 * 1440) {
            if b == 1 && (2 * 1440 + 600..<2 * 1440 + 780).contains(i) { continue }   // 3 hours offline
            if b == 2 && i == 4 * 1440 + 100 && epoch == 1 {                           // restarted: counters from 0
                epoch = 2
                cumulative = [Double](repeating: 0, count: 6)
            }
            if i / 1440 != day { day = i / 1440; dayStartPnl = pnl }
            for k in 0..<2 {
                cumulative[0] += Double((i * 7 + k * 3 + b) % 5)
                if (i + k + b) % 11 == 0 { cumulative[1] += 1 }
                cumulative[2] += Double((i + b) % 4 + 1)
                if (i * 3 + k + b) % 97 == 0 { cumulative[3] += 1 }
                if (i + 2 * k + b) % 503 == 0 { cumulative[4] += 1 }
                if k == 0 && (i + b * 17) % 720 == 0 { cumulative[5] += 1 }
                lcg = lcg &* 6364136223846793005 &+ 1442695040888963407
                pnl = ((pnl + Double(Int((lcg >> 33) % 201) - 100) / 100 * Double(b + 1)) * 100).rounded() / 100
                let memory = 200 + Double(b) * 50 + Double(i % 300) * 0.1 + (k == 1 && i % 1000 == 0 ? 400 : 0)
                ticks.append(Tick(at: weekStart.addingTimeInterval(Double(i * 60 + 10 + 30 * k)), epoch: epoch,
                                  values: cumulative + [pnl, ((pnl - dayStartPnl) * 100).rounded() / 100, memory]))
            }
        }
        return ticks
    }

    /// The figures computed straight from the ticks, for the ticks in [from, to).
    public struct Expected: Equatable, Sendable {
        public var trades = 0.0, failed = 0.0, calls = 0.0, errors = 0.0, nonce = 0.0, reconnects = 0.0
        public var totalPnl = 0.0, periodPnl = 0.0, drawdown = 0.0, peakMemory = -Double.infinity, minutes = 0
    }

    public static func expected(_ ticks: [Tick], from: Date, to: Date) -> Expected {
        var e = Expected()
        var previous: Tick?
        var peak = -Double.infinity
        var lastDaily: [Int: Double] = [:]
        var minutes = Set<Int>()
        for t in ticks {
            defer { previous = t }
            guard t.at >= from && t.at < to else { continue }
            let increments = (0..<6).map { m -> Double in
                guard let p = previous, p.epoch == t.epoch, t.values[m] >= p.values[m] else { return t.values[m] }
                return t.values[m] - p.values[m]
            }
            e.trades += increments[0]; e.failed += increments[1]; e.calls += increments[2]
            e.errors += increments[3]; e.nonce += increments[4]; e.reconnects += increments[5]
            e.totalPnl = t.values[6]
            peak = max(peak, t.values[6])
            e.drawdown = max(e.drawdown, peak - t.values[6])
            lastDaily[Int(t.at.timeIntervalSince1970) / 86_400] = t.values[7]
            e.peakMemory = max(e.peakMemory, t.values[8])
            minutes.insert(Int(t.at.timeIntervalSince1970) / 60)
        }
        e.periodPnl = lastDaily.values.reduce(0, +)
        e.minutes = minutes.count
        return e
    }

    public static func load(_ db: TestDatabase, bots: [String], weekStart: Date) async throws -> [String: [Tick]] {
        var all: [String: [Tick]] = [:]
        try await db.withClient { client in
            let logger = Logger(label: "test")
            try await Migrator(client: client, logger: logger).migrate()
            for (name, kind) in Self.metrics {
                try await client.query("INSERT INTO metrics (name, kind) VALUES (\(name), \(kind)) ON CONFLICT DO NOTHING", logger: logger)
            }
            for d in 0..<7 {
                try await client.query("SELECT fleetwatch_ensure_sample_partition(\(weekStart.addingTimeInterval(Double(d) * 86_400))::date)",
                                       logger: logger)
            }
        }
        let ids = try await db.withClient { client in
            var ids: [String: Int32] = [:]
            for try await (name, id) in try await client.query("SELECT name, id FROM metrics", logger: Logger(label: "test"))
                .decode((String, Int32).self) { ids[name] = id }
            return ids
        }
        let metricIDs = Self.metrics.map { ids[$0.0]! }
        for (b, bot) in bots.enumerated() {
            let ticks = Self.generate(bot: b, weekStart: weekStart)
            all[bot] = ticks
            // One samples row per minute of ticks (its two samples of every metric), inserted a day at a time.
            var byMinute: [(start: Date, epoch: Int64, ticks: [Tick])] = []
            for t in ticks {
                let minute = Date(timeIntervalSince1970: (t.at.timeIntervalSince1970 / 60).rounded(.down) * 60)
                if let last = byMinute.last, last.start == minute, last.epoch == t.epoch {
                    byMinute[byMinute.count - 1].ticks.append(t)
                } else {
                    byMinute.append((minute, t.epoch, [t]))
                }
            }
            let minutes = byMinute
            try await db.withClient { client in
                let logger = Logger(label: "test")
                let byMinute = minutes
                let botID = try await client.query("SELECT id FROM bots WHERE name = \(bot)", logger: logger)
                    .decode(Int32.self).first { _ in true }!
                for chunk in stride(from: 0, to: byMinute.count, by: 1440) {
                    let rows = byMinute[chunk..<min(chunk + 1440, byMinute.count)]
                    var starts: [Date] = [], epochs: [Int64] = [], seqs: [Int64] = [], counts: [Int32] = []
                    var mids: [Int32] = [], offsets: [Int32] = [], values: [Double] = []
                    for (n, row) in rows.enumerated() {
                        starts.append(row.start); epochs.append(row.epoch); seqs.append(Int64(chunk + n + 1))
                        counts.append(Int32(row.ticks.count * metricIDs.count))
                        for t in row.ticks {
                            for (m, id) in metricIDs.enumerated() {
                                mids.append(id)
                                offsets.append(Int32((t.at.timeIntervalSince(row.start) * 1000).rounded()))
                                values.append(t.values[m])
                            }
                        }
                    }
                    try await client.query("""
                        WITH x AS (SELECT t, e, s, c, sum(c) OVER (ORDER BY n) - c AS o
                                   FROM unnest(\(starts)::timestamptz[], \(epochs)::int8[], \(seqs)::int8[], \(counts)::int4[])
                                        WITH ORDINALITY AS u(t, e, s, c, n))
                        INSERT INTO samples (bot_id, t_start, epoch, seq, metric_ids, offsets_ms, vals)
                        SELECT \(botID), t, e, s, (\(mids)::int4[])[o + 1 : o + c], (\(offsets)::int4[])[o + 1 : o + c],
                               (\(values)::float8[])[o + 1 : o + c]
                        FROM x
                        """, logger: logger)
                }
            }
        }
        return all
    }
}
