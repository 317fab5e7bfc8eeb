import Foundation
import Logging
import PostgresNIO

/// What the metrics API reads: the newest stored minute of each series, and history at the resolution a range
/// calls for (raw samples, minute or hour rollups). Works on the primary or on a read replica.
public struct MetricHistory: Sendable {
    let client: any PostgresQuerying
    let logger: Logger

    public init(client: any PostgresQuerying, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// What history points are.
    public enum Resolution: String, Sendable {
        case raw
        case minute = "1m"
        case hour = "1h"

        /// Raw samples for up to an hour, minute rollups up to a day, hour rollups beyond.
        public init(rangeSeconds: Double) {
            self = rangeSeconds <= 3600 ? .raw : rangeSeconds <= 86_400 ? .minute : .hour
        }
    }

    public struct NewestMinute: Sendable, Equatable {
        public let bot: String
        public let metric: String
        public let minute: Date
        public let last: Double
    }

    public struct Point: Sendable, Equatable {
        public let bot: String
        public let metric: String
        public let at: Date
        public let avg: Double?
        public let min: Double?
        public let max: Double?
        public let last: Double?
        /// Counter increase in the bucket (nil for raw samples).
        public let increase: Double?
    }

    /// The newest minute of each (bot, metric) within the last day, of one bot or all.
    public func newestMinutes(bot: String?) async throws -> [NewestMinute] {
        let rows = try await client.query("""
            SELECT DISTINCT ON (r.bot_id, r.metric_id) b.name, m.name, r.bucket, r.last
            FROM rollup_1m r JOIN bots b ON b.id = r.bot_id JOIN metrics m ON m.id = r.metric_id
            WHERE r.bucket > now() - interval '1 day' AND (\(bot)::text IS NULL OR b.name = \(bot))
            ORDER BY r.bot_id, r.metric_id, r.bucket DESC
            """, logger: logger)
        var out: [NewestMinute] = []
        for try await (name, metric, bucket, last) in rows.decode((String, String, Date, Double).self) {
            out.append(NewestMinute(bot: name, metric: metric, minute: bucket, last: last))
        }
        return out
    }

    public func botExists(_ bot: String) async throws -> Bool {
        try await client.query("SELECT 1 FROM bots WHERE name = \(bot)", logger: logger).decode(Int.self).first { _ in true } != nil
    }

    /// Points since `since` of one bot or all, one metric or all, ordered by bot then time (every column is
    /// the value for raw samples; rollups carry avg, min, max, last and the counter increase).
    public func points(bot: String?, metric: String?, since: Date, resolution: Resolution) async throws -> [Point] {
        let rows: PostgresRowSequence
        switch resolution {
        case .raw:
            rows = try await client.query("""
                SELECT bot, metric, ts, value, value, value, value, NULL::float8 FROM sample_points
                WHERE ts >= \(since) AND value IS NOT NULL AND (\(bot)::text IS NULL OR bot = \(bot))
                  AND (\(metric)::text IS NULL OR metric = \(metric))
                ORDER BY bot, ts
                """, logger: logger)
        case .minute:
            rows = try await client.query("""
                SELECT bot, metric, minute, avg, min, max, last, increase FROM review_metric_minute
                WHERE minute >= \(since) AND (\(bot)::text IS NULL OR bot = \(bot)) AND (\(metric)::text IS NULL OR metric = \(metric))
                ORDER BY bot, minute
                """, logger: logger)
        case .hour:
            rows = try await client.query("""
                SELECT bot, metric, hour, avg, min, max, last, increase FROM review_metric_hour
                WHERE hour >= \(since) AND (\(bot)::text IS NULL OR bot = \(bot)) AND (\(metric)::text IS NULL OR metric = \(metric))
                ORDER BY bot, hour
                """, logger: logger)
        }
        var out: [Point] = []
        for try await r in rows.decode((String, String, Date, Double?, Double?, Double?, Double?, Double?).self) {
            out.append(Point(bot: r.0, metric: r.1, at: r.2, avg: r.3, min: r.4, max: r.5, last: r.6, increase: r.7))
        }
        return out
    }
}
