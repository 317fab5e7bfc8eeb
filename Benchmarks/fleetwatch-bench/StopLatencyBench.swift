import ArgumentParser
import AsyncHTTPClient
import FleetwatchAgent
import FleetwatchProcesses
import FleetwatchProtocol
import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// Time from an emergency-stop request (HTTP POST) to the bot's handler being invoked, with the request sent
/// to the replica holding the bot's connection and to the other replica (loopback, one PostgreSQL).
struct StopLatencyBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stop-latency",
                                                    abstract: "Emergency stop request → bot handler invoked, p50/p99, same and other replica.")

    @Option(help: "PostgreSQL server URL (a fresh database is created on it).") var databaseURL: String
    @Option(help: "Stops to measure per path.") var stops = 200

    /// Signals the benchmark each time the bot starts stopping trading, or the request failed.
    final class Handler: EmergencyHandler {
        /// The stop being measured (its number) and who waits for it.
        let waiter = Mutex<(Int, CheckedContinuation<ContinuousClock.Instant, any Error>)?>(nil)
        /// Ends the wait for stop `only` (any stop: nil) with `result`; later calls for it do nothing.
        func finish(_ result: Result<ContinuousClock.Instant, any Error>, only: Int? = nil) {
            let c = waiter.withLock { w -> CheckedContinuation<ContinuousClock.Instant, any Error>? in
                guard let (id, c) = w, only == nil || only == id else { return nil }
                w = nil
                return c
            }
            c?.resume(with: result)
        }
        func stopTrading() async throws -> String {
            finish(.success(ContinuousClock.now))
            return "stopped"
        }
        func cancelOpenOrders() async throws -> String { "none" }
        func setEmergencyMode() async throws -> String { "set" }
    }

    func run() async throws {
        let logger = { var l = Logger(label: "bench"); l.logLevel = .warning; return l }()
        let db = try await BenchDatabase.create(server: databaseURL, bots: ["stop-bot"], token: "bench-token", logger: logger)
        let operatorToken = "fwo_bench-operator"
        try await db.withClient(logger: logger) { client in
            try await client.query("""
                INSERT INTO api_tokens (name, role, token_hash) VALUES ('bench', 'operator', \(BotToken.hash(operatorToken)))
                """, logger: logger)
        }
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        // The per-token stop limit (emergency.requests_per_minute, 30 by default) would answer 429 after the first
        // few dozen stops: the benchmark's replicas allow its pace (one stop every ~25 ms).
        let config = NSTemporaryDirectory() + "fleetwatch-stop-latency-\(UUID().uuidString.prefix(8)).json"
        try #"{"emergency": {"requests_per_minute": 100000}}"#.write(toFile: config, atomically: true, encoding: .utf8)
        var ports: [Int] = []
        var hubs: [ChildProcess] = []
        for name in ["hub-a", "hub-b"] {
            let port = try freeTCPPort()
            hubs.append(try ChildProcess(dir.appendingPathComponent("monitor-hub").path,
                                         ["serve", "--database-url", db.url.urlString, "--port", "\(port)", "--log-level", "warning",
                                          "--hub-id", name, "--config", config], logPath: NSTemporaryDirectory() + "fleetwatch-stop-latency-\(name).log"))
            ports.append(port)
        }
        defer { hubs.forEach { kill($0.pid, SIGKILL) } }
        for (port, hub) in zip(ports, hubs) {
            for _ in 0..<300 where !LoopbackPort.accepts(port) { try await Task.sleep(for: .milliseconds(100)) }
            guard LoopbackPort.accepts(port) else { throw BenchFailure("a hub did not start within 30 s: \(hub.log.suffix(2000))") }
        }

        var c = AgentConfiguration(hubURL: "ws://127.0.0.1:\(ports[0])/agent/v1", botID: "stop-bot", token: "bench-token")
        c.processCollector = false
        c.flushInterval = .seconds(3600)
        let agent = try MonitorAgent(configuration: c, logger: logger)
        let handler = Handler()
        await agent.setEmergencyHandler(handler)
        let agentTask = Task { try await agent.run() }
        defer { agentTask.cancel() }
        for _ in 0..<300 where !(await agent.status.connected) { try await Task.sleep(for: .milliseconds(50)) }
        guard await agent.status.connected else { throw BenchFailure("the agent did not connect within 15 s: \(await agent.status)") }

        for (label, port) in [("same replica", ports[0]), ("other replica", ports[1])] {
            var latencies: [Double] = []
            for i in 0..<(stops + 5) {
                let sent = ContinuousClock.now
                // Fails loudly, with the answer it got, on anything but 202 and a handler call within 10 s.
                let invoked: ContinuousClock.Instant = try await withCheckedThrowingContinuation { continuation in
                    handler.waiter.withLock { $0 = (i, continuation) }
                    Task {
                        do {
                            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/api/bots/stop-bot/emergency-stop")
                            request.method = .POST
                            request.headers.add(name: "Authorization", value: "Bearer \(operatorToken)")
                            request.headers.add(name: "Content-Type", value: "application/json")
                            request.body = .bytes(ByteBuffer(string: #"{"reason": "latency benchmark \#(i)"}"#))
                            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
                            let body = try await response.body.collect(upTo: 1 << 20)
                            if response.status != .accepted {
                                handler.finish(.failure(BenchFailure("stop \(i) (\(label)) answered \(response.status.code): \(String(buffer: body))")), only: i)
                            }
                        } catch {
                            handler.finish(.failure(BenchFailure("stop \(i) (\(label)) failed: \(error)")), only: i)
                        }
                    }
                    Task {
                        try? await Task.sleep(for: .seconds(10))
                        handler.finish(.failure(BenchFailure("stop \(i) (\(label)): the bot's handler was not called within 10 s")), only: i)
                    }
                }
                if i >= 5 {   // the first few warm up connections and caches
                    let (s, a) = (invoked - sent).components
                    latencies.append(Double(s) * 1000 + Double(a) / 1e15)
                }
                try await Task.sleep(for: .milliseconds(20))
            }
            latencies.sort()
            func pct(_ p: Double) -> Double { latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] }
            print("stop latency, \(label): \(latencies.count) stops")
            report("request → handler invoked, \(label), p50", pct(0.50), "ms")
            report("request → handler invoked, \(label), p99", pct(0.99), "ms")
            report("request → handler invoked, \(label), max", latencies.last ?? .nan, "ms")
        }
    }
}
