import ArgumentParser
import FleetwatchAgent
import FleetwatchProcesses
import FleetwatchProtocol
import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import Synchronization
import WSClient

/// Time from an agent's flush to the dashboard WebSocket message carrying the new value, for a viewer on
/// the replica that holds the bot and for one on the other replica (the value crosses PostgreSQL NOTIFY).
struct LiveLatencyBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "live-latency",
                                                    abstract: "Agent flush → /ws metrics_update at a viewer, same and other replica, p50/p99.")

    @Option(help: "PostgreSQL server URL (a fresh database is created on it).") var databaseURL: String
    @Option(help: "Values to send.") var values = 200

    final class Viewer: @unchecked Sendable {
        let seen = Mutex<[Int: ContinuousClock.Instant]>([:])
        var task: Task<Void, Never>?
        func start(port: Int, token: String) {
            var config = WebSocketClientConfiguration()
            config.additionalHeaders[.authorization] = "Bearer \(token)"
            let logger = { var l = Logger(label: "viewer"); l.logLevel = .critical; return l }()
            task = Task {
                _ = try? await WebSocketClient.connect(url: "ws://127.0.0.1:\(port)/ws?bot=live-bot", configuration: config, logger: logger) { inbound, _, _ in
                    for try await message in inbound.messages(maxSize: 1 << 24) {
                        guard case .text(let text) = message, let json = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
                              let metrics = json["metrics"] as? [String: Any], let v = metrics["latency_probe"] as? NSNumber else { continue }
                        let now = ContinuousClock.now
                        self.seen.withLock { if $0[v.intValue] == nil { $0[v.intValue] = now } }
                    }
                }
            }
        }
    }

    func run() async throws {
        let logger = { var l = Logger(label: "bench"); l.logLevel = .warning; return l }()
        let db = try await BenchDatabase.create(server: databaseURL, bots: ["live-bot"], token: "bench-token", logger: logger)
        let token = "fwv_bench-live-viewer"
        try await db.withClient(logger: logger) { client in
            try await client.query("INSERT INTO api_tokens (name, role, token_hash) VALUES ('bench', 'viewer', \(BotToken.hash(token)))",
                                   logger: logger)
        }
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        var ports: [Int] = [], hubs: [ChildProcess] = []
        for name in ["hub-a", "hub-b"] {
            let port = try freeTCPPort()
            hubs.append(try ChildProcess(dir.appendingPathComponent("monitor-hub").path,
                                         ["serve", "--database-url", db.url.urlString, "--port", "\(port)", "--log-level", "warning",
                                          "--hub-id", name], logPath: NSTemporaryDirectory() + "fleetwatch-live-latency-\(name).log",
                                         environment: ["FLEETWATCH_ADMIN_PASSWORD": "live-latency-password"]))
            ports.append(port)
        }
        defer { hubs.forEach { kill($0.pid, SIGKILL) } }
        for port in ports { for _ in 0..<300 where !LoopbackPort.accepts(port) { try await Task.sleep(for: .milliseconds(100)) } }
        var c = AgentConfiguration(hubURL: "ws://127.0.0.1:\(ports[0])/agent/v1", botID: "live-bot", token: "bench-token")
        c.processCollector = false
        c.flushInterval = .seconds(3600)
        let agent = try MonitorAgent(configuration: c, logger: logger)
        let run = Task { try await agent.run() }
        defer { run.cancel() }
        for _ in 0..<300 where !(await agent.status.connected) { try await Task.sleep(for: .milliseconds(50)) }
        let same = Viewer(), other = Viewer()
        same.start(port: ports[0], token: token)
        other.start(port: ports[1], token: token)
        defer { same.task?.cancel(); other.task?.cancel() }
        try await Task.sleep(for: .seconds(2))

        let probe = agent.gauge("latency_probe")
        var sent: [Int: ContinuousClock.Instant] = [:]
        for i in 1...(values + 10) {
            probe.set(Double(i))
            sent[i] = ContinuousClock.now
            await agent.flush()
            let deadline = ContinuousClock.now + .seconds(5)
            while ContinuousClock.now < deadline, same.seen.withLock({ $0[i] }) == nil || other.seen.withLock({ $0[i] }) == nil {
                try await Task.sleep(for: .milliseconds(2))
            }
            try await Task.sleep(for: .milliseconds(Int64.random(in: 0...250)))   // not in step with the viewers' ticks
        }
        print("live latency: agent flush → /ws metrics_update with the new value, \(values) values (after 10 warm-up), update interval 250 ms")
        for (label, viewer) in [("viewer on the bot's replica", same), ("viewer on the other replica", other)] {
            let seen = viewer.seen.withLock { $0 }
            var ms: [Double] = []
            var missing = 0
            for i in 11...(values + 10) {
                guard let t0 = sent[i], let t1 = seen[i] else { missing += 1; continue }
                let d = t1 - t0
                ms.append(d.inMilliseconds)
            }
            ms.sort()
            func pct(_ p: Double) -> Double { ms.isEmpty ? .nan : ms[min(ms.count - 1, Int(Double(ms.count) * p))] }
            print(String(format: "%@: p50 %.1f ms, p99 %.1f ms, max %.1f ms, %d values not seen", label, pct(0.5), pct(0.99), ms.last ?? .nan, missing))
        }
    }
}
