import FleetwatchIngest
import FleetwatchProtocol
import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import PostgresNIO
import Testing

/// A batch may hold samples from a week ago (`hub.max_sample_age`) to five minutes ahead (`hub.max_sample_future`).
/// Stored as one row it would be a row longer than a minute that every rollup pass of the newest minutes re-reads
/// whole while it reaches into the pass's window: a bot sending such batches made the whole fleet's rollups slower
/// with every batch. It is cut into a row per minute for recent samples and per day for older ones; every read
/// gives the same samples, and the rows the newest passes reach are a minute long at most.
@Suite(.enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct LongBatchTests {
    let logger = Logger(label: "test")

    @Test(.timeLimit(.minutes(2)))
    func aBatchSpanningAWeekIsCutIntoRowsTheNewestRollupsReadOnlyForTheirMinutes() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["bot-1"], token: "secret", in: db)
        do { try await db.withClient { (client: PostgresClient) async throws -> Void in
            let (store, _, session) = try await PostgresStoreTests().acceptedSession(client)
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            // 500 gauge samples from a week ago to four minutes ahead, and states at both ends and in between.
            let span = 7 * 86_400_000 + 4 * 60_000
            let times = (0..<500).map { now - 7 * 86_400_000 + Int64($0) * Int64(span / 499) }
            let gauges = Series(name: "daily_pnl", kind: .gauge, timestamps: times, values: times.indices.map { Double($0) / 4 })
            let stateTimes = [times[0], now - 3_600_000, now - 90_000, times[499]]
            let states = Series(name: "websocket_status", kind: .state, timestamps: stateTimes, states: ["a", "b", "c", "d"])
            let batch = ValidatedBatch(epoch: 5, sequence: 1, sentSamples: 504, series: [gauges, states], refusedSamples: 0,
                                       firstTimestampMs: times[0])
            #expect(try await store.store(batch, session: session) == .stored)
            #expect(try await store.store(batch, session: session) == .duplicate)

            // Sample for sample what was sent, through the documented view.
            struct Point: Hashable { var ms: Int64; var value: Double?; var state: String? }
            var stored: [Point] = []
            for try await (ms, value, state) in try await client.query("""
                SELECT (extract(epoch FROM ts) * 1000)::int8, value, state FROM sample_points WHERE bot = 'bot-1'
                """, logger: logger).decode((Int64, Double?, String?).self) {
                stored.append(Point(ms: ms, value: value, state: state))
            }
            let sent = zip(times, gauges.values).map { Point(ms: $0, value: $1, state: nil) }
                + zip(stateTimes, states.states).map { Point(ms: $0, value: nil, state: $1) }
            #expect(stored.count == sent.count)
            #expect(Set(stored) == Set(sent))

            // A row per recent minute, per older day: well under the number of samples, and nothing longer than a
            // minute reaches into the last two hours.
            let rows = try await client.query("SELECT count(*) FROM samples", logger: logger).decode(Int64.self).all()[0]
            #expect(rows > 8 && rows <= 140, "\(rows) rows")
            let longRecent = try await client.query("""
                SELECT count(*) FROM samples WHERE t_end - t_start > interval '1 minute' AND t_end >= now() - interval '2 hours'
                """, logger: logger).decode(Int64.self).all()[0]
            #expect(longRecent == 0)
            #expect(try await client.query("SELECT batches FROM ingest_streams", logger: logger).decode(Int64.self).all() == [1])

            // The newest minutes roll up from their own rows, as `sample_points` says.
            let from = Date(timeIntervalSince1970: (Double(now) / 60_000).rounded(.down) * 60 - 180)
            let to = from.addingTimeInterval(480)
            try await client.query("SELECT fleetwatch_rollup(\(from), \(to))", logger: logger)
            let rollup = try await client.query("""
                SELECT r.bucket::text || ' ' || r.samples || ' ' || r.sum FROM rollup_1m r JOIN metrics m ON m.id = r.metric_id
                WHERE m.name = 'daily_pnl' AND r.bucket >= \(from) AND r.bucket < \(to) ORDER BY r.bucket
                """, logger: logger).decode(String.self).all()
            let points = try await client.query("""
                SELECT minute::text || ' ' || count(*) || ' ' || sum(value)
                FROM (SELECT date_trunc('minute', ts) AS minute, value FROM sample_points
                      WHERE metric = 'daily_pnl' AND ts >= \(from) AND ts < \(to)) p
                GROUP BY minute ORDER BY minute
                """, logger: logger).decode(String.self).all()
            #expect(!points.isEmpty && rollup == points, "rollup \(rollup) vs points \(points)")
        } } catch { Issue.record("\(String(reflecting: error))") }   // PSQLError says what only when reflected
    }
}
