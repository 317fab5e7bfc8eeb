import FleetwatchProtocol
import Logging
import PostgresNIO

/// The fleet-wide metric name → 2-byte id dictionary, cached in memory; unknown names are inserted.
actor MetricDictionary {
    private var ids: [String: Int16] = [:]
    private let client: PostgresClient
    private let logger: Logger
    private let maxMetrics: Int

    init(client: PostgresClient, logger: Logger, maxMetrics: Int) {
        self.client = client
        self.logger = logger
        self.maxMetrics = min(maxMetrics, Int(Int16.max))
    }

    /// Ids for `series` names; names beyond the dictionary's limit get nil (their samples are refused).
    func ids(for series: [Series]) async throws -> [Int16?] {
        var missing: [String] = []
        var kinds: [String] = []
        for s in series where ids[s.name] == nil && !missing.contains(s.name) {
            missing.append(s.name)
            kinds.append(s.kind.description)
        }
        if !missing.isEmpty { try await load(missing, kinds: kinds) }
        return series.map { ids[$0.name] }
    }

    private func load(_ names: [String], kinds: [String]) async throws {
        let room = maxMetrics - ids.count
        if room > 0 {
            let n = min(room, names.count)
            let newNames = Array(names.prefix(n)), newKinds = Array(kinds.prefix(n))
            try await client.query("""
                INSERT INTO metrics (name, kind) SELECT * FROM unnest(\(newNames)::text[], \(newKinds)::text[])
                ON CONFLICT (name) DO NOTHING
                """, logger: logger)
        }
        let rows = try await client.query("SELECT id, name FROM metrics WHERE name = ANY(\(names))", logger: logger)
        for try await (id, name) in rows.decode((Int16, String).self) {
            ids[name] = id
        }
        let unknown = names.filter { ids[$0] == nil }
        if !unknown.isEmpty {
            logger.warning("metric dictionary is full (\(maxMetrics) names); refusing samples of \(unknown.prefix(5).joined(separator: ", "))")
        }
    }
}
