import ArgumentParser
import AsyncHTTPClient
import FleetwatchProcesses
import FleetwatchProtocol
import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// Response time of the fleet overview (`GET /api/bots`) and the fleet status (`GET /api/status`) with
/// `--bots` bots, each with 15 numeric metrics and 2 states from its newest batch, a fifth of them with a
/// firing alert, half of them connected: what the dashboard loads every 30 s and on every page view.
struct FleetAPIBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "fleet-api",
                                                    abstract: "GET /api/bots and /api/status with N bots: p50/p99 over sequential requests.")

    @Option(help: "PostgreSQL server URL (a fresh database is created on it).") var databaseURL: String
    @Option(help: "Bots in the fleet.") var bots = 500
    @Option(help: "Requests per endpoint (after 20 warm-up requests).") var requests = 300

    static let numeric = ["trades_executed", "trades_failed", "success_rate", "total_pnl", "daily_pnl", "memory_usage_mb",
                          "cpu_usage_percent", "log_file_size_mb", "api_errors", "api_calls", "nonce_failures",
                          "websocket_reconnects", "websocket_latency_ms", "trade_execution_time", "balance_check_time"]
    static let states = ["websocket_status", "balance_manager_health"]

    func run() async throws {
        let logger = { var l = Logger(label: "bench"); l.logLevel = .warning; return l }()
        let names = (0..<bots).map { String(format: "bot-%04d", $0) }
        let db = try await BenchDatabase.create(server: databaseURL, bots: names, token: "bench-token", logger: logger)
        let token = "fwv_bench-viewer"
        try await db.withClient(logger: logger) { client in
            try await client.query("""
                INSERT INTO api_tokens (name, role, token_hash) VALUES ('bench', 'viewer', \(BotToken.hash(token)))
                """, logger: logger)
            let kinds = Self.numeric.map { $0.hasSuffix("_time") ? "duration" : ($0.hasPrefix("trades") || $0.hasPrefix("api") || $0.hasPrefix("nonce") || $0.hasPrefix("websocket_reconnects") ? "counter" : "gauge") }
            try await client.query("""
                INSERT INTO metrics (name, kind) SELECT * FROM unnest(\(Self.numeric + Self.states)::text[], \(kinds + ["state", "state"])::text[])
                """, logger: logger)
            // The newest batch of every bot, as the ingest path stores it.
            try await client.query("""
                INSERT INTO samples (bot_id, t_start, epoch, seq, metric_ids, offsets_ms, vals, state_metric_ids, state_offsets_ms, states)
                SELECT b.id, now() - interval '2 seconds', 1, 1,
                       (SELECT array_agg(id ORDER BY id) FROM metrics WHERE kind <> 'state'),
                       array_fill(0, ARRAY[15]),
                       (SELECT array_agg(random() * 1000) FROM generate_series(1, 15)),
                       (SELECT array_agg(id ORDER BY id) FROM metrics WHERE kind = 'state'),
                       ARRAY[0, 0], ARRAY['connected', 'healthy']
                FROM bots b
                """, logger: logger)
            try await client.query("""
                UPDATE bots SET connection_id = gen_random_uuid(), connected_hub = 'hub-a', last_seen_at = now(), first_seen_at = now()
                WHERE id % 2 = 0
                """, logger: logger)
            try await client.query("""
                INSERT INTO alerts (bot_id, rule_id, metric, level, state, summary, limit_value, value)
                SELECT id, 'memory_usage_mb', 'memory_usage_mb', CASE WHEN id % 2 = 0 THEN 'WARNING' ELSE 'CRITICAL' END, 'firing',
                       'Memory above limit', 500, 812 FROM bots WHERE id % 5 = 0
                """, logger: logger)
            try await client.query("ANALYZE", logger: logger)
        }
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let port = try freeTCPPort()
        let hub = try ChildProcess(dir.appendingPathComponent("monitor-hub").path,
                                   ["serve", "--database-url", db.url.urlString, "--port", "\(port)", "--log-level", "warning",
                                    "--no-dashboard"], logPath: NSTemporaryDirectory() + "fleetwatch-fleet-api-bench.log")
        defer { kill(hub.pid, SIGKILL) }
        for _ in 0..<300 where !LoopbackPort.accepts(port) { try await Task.sleep(for: .milliseconds(100)) }

        print("fleet of \(bots) bots (15 metrics + 2 states each, \(bots / 5) firing alerts, half connected), \(requests) sequential requests")
        for path in ["/api/bots", "/api/status"] {
            var times: [Double] = []
            var size = 0
            for i in 0..<(requests + 20) {
                var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
                request.headers.add(name: "Authorization", value: "Bearer \(token)")
                let start = ContinuousClock.now
                let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
                let body = try await response.body.collect(upTo: 64 << 20)
                let elapsed = ContinuousClock.now - start
                guard response.status == .ok else { throw ValidationError("\(path) answered \(response.status)") }
                if path == "/api/bots", i == 0 {
                    let decoded = try JSONSerialization.jsonObject(with: Data(buffer: body)) as? [[String: Any]] ?? []
                    let withValues = decoded.filter { ($0["metrics"] as? [String: Any])?.count == 15 }.count
                    guard decoded.count == bots, withValues == bots else {
                        throw ValidationError("/api/bots returned \(decoded.count) bots, \(withValues) with all 15 values")
                    }
                }
                size = body.readableBytes
                if i >= 20 { times.append(elapsed.inMilliseconds) }
            }
            times.sort()
            func pct(_ p: Double) -> Double { times[min(times.count - 1, Int(Double(times.count) * p))] }
            print(String(format: "%@: p50 %.2f ms, p99 %.2f ms, max %.2f ms, %d bytes per response", path, pct(0.5), pct(0.99), times.last ?? 0, size))
        }
    }
}
