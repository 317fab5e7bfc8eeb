import ArgumentParser
import FleetwatchAgent
import FleetwatchProcesses
import FleetwatchProtocol
import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Hummingbird
import Logging
import NIOCore
import Synchronization
import WSClient

/// Time from a batch reaching the hub to the webhook receiving the alert it causes (fired and resolved).
struct AlertLatencyBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "alert-latency", abstract: "Batch arrival → webhook received, p50/p99.")

    @Option(help: "PostgreSQL server URL (a fresh database is created on it).") var databaseURL: String
    @Option(help: "Alert transitions to measure (half fired, half resolved).") var transitions = 400
    @Option(help: "Pause between batches, ms.") var gapMs = 50

    final class Arrivals: Sendable {
        let times = Mutex<[String: ContinuousClock.Instant]>([:])
        func record(_ key: String) { times.withLock { $0[key] = .now } }
        func get(_ key: String) -> ContinuousClock.Instant? { times.withLock { $0[key] } }
    }

    func run() async throws {
        var logger = Logger(label: "bench")
        logger.logLevel = .warning
        let db = try await BenchDatabase.create(server: databaseURL, bots: ["latency-bot"], token: "bench-token", logger: logger)
        let arrivals = Arrivals()
        let router = Router()
        router.post("/hook") { request, _ -> HTTPResponse.Status in
            let body = try await request.body.collect(upTo: 1 << 16)
            let json = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] ?? [:]
            if let event = json["event"] as? String, let value = json["value"] as? Double {
                arrivals.record("\(event)/\(value)")
            }
            return .ok
        }
        let hookPort = try freeTCPPort()
        let receiver = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: hookPort)), logger: logger)
        let receiverTask = Task { try await receiver.runService(gracefulShutdownSignals: []) }
        defer { receiverTask.cancel() }

        let config = NSTemporaryDirectory() + "fleetwatch-latency.json"
        try """
            {"alerts": {"console_alerts": false, "log_alerts": false, "webhook_notifications": true,
                        "webhook": {"url": "http://127.0.0.1:\(hookPort)/hook", "min_level": "WARNING"}}}
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let port = try freeTCPPort()
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let hub = try ChildProcess(dir.appendingPathComponent("monitor-hub").path,
                                   ["serve", "--database-url", db.url.urlString, "--port", "\(port)", "--log-level", "warning",
                                    "--config", config], logPath: NSTemporaryDirectory() + "fleetwatch-latency-hub.log")
        defer { kill(hub.pid, SIGKILL) }
        for _ in 0..<300 where !LoopbackPort.accepts(port) || !LoopbackPort.accepts(hookPort) { try await Task.sleep(for: .milliseconds(100)) }

        let sentLog = Mutex<[(String, ContinuousClock.Instant)]>([])
        let transitions = self.transitions, gap = self.gapMs
        let hello = Frame.hello(Hello(botID: "latency-bot", token: "bench-token", agentVersion: "bench", bootEpoch: 1, lastAckedSequence: 0)).encoded()
        try await WebSocketClient.connect(url: "ws://127.0.0.1:\(port)/agent/v1", configuration: .init(maxFrameSize: 1 << 20),
                                                 logger: logger) { inbound, outbound, _ in
            try await outbound.write(.binary(hello))
            var iterator = inbound.messages(maxSize: 1 << 20).makeAsyncIterator()
            _ = try await iterator.next()   // welcome
            let reader = Task { while let _ = try await iterator.next() {} }
            defer { reader.cancel() }
            for i in 0..<transitions {
                // Even: memory above 500 MB fires; odd: back under the hysteresis band resolves. Values are unique.
                let fire = i % 2 == 0
                let value = fire ? 600 + Double(i) / 1000 : 100 + Double(i) / 1000
                let now = Int64(Date().timeIntervalSince1970 * 1000)
                let payload = BatchPayload(series: [Series(name: "memory_usage_mb", kind: .gauge, timestamps: [now], values: [value])])
                let frame = Frame.batch(try BatchFrame.make(bootEpoch: 1, sequence: UInt64(i + 1), payload: payload)).encoded()
                let at = ContinuousClock.now
                try await outbound.write(.binary(frame))
                sentLog.withLock { $0.append(("\(fire ? "fired" : "resolved")/\(value)", at)) }
                try await Task.sleep(for: .milliseconds(Int64(gap)))
            }
            try await Task.sleep(for: .seconds(2))
            try await outbound.close(.normalClosure, reason: nil)
        }
        let sent = sentLog.withLock { $0 }
        try await Task.sleep(for: .seconds(1))
        var latencies: [Double] = []
        var missing = 0
        for (key, at) in sent {
            guard let received = arrivals.get(key) else { missing += 1; continue }
            let (s, a) = (received - at).components
            latencies.append(Double(s) * 1000 + Double(a) / 1e15)
        }
        latencies.sort()
        func pct(_ p: Double) -> Double { latencies.isEmpty ? .nan : latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] }
        print("alert latency: \(latencies.count) transitions measured, \(missing) missing")
        report("batch arrival → webhook received p50", pct(0.50), "ms")
        report("batch arrival → webhook received p99", pct(0.99), "ms")
        report("batch arrival → webhook received max", latencies.last ?? .nan, "ms")
    }
}
