@testable import FleetwatchAgent
import CoreMetrics
import FleetwatchProtocol
import Foundation
import Testing

@Suite struct RecordingTests {
    static func agent(_ configure: (inout AgentConfiguration) -> Void = { _ in }) throws -> MonitorAgent {
        var c = AgentConfiguration(hubURL: "ws://127.0.0.1:1/agent/v1", botID: "bot", token: "t")
        c.processCollector = false
        configure(&c)
        return try MonitorAgent(configuration: c)
    }

    @Test func snapshotReadsEveryKind() throws {
        let agent = try Self.agent()
        agent.counter("trades_executed").increment(by: 3)
        agent.counter("trades_executed").increment()
        agent.counter("ignored_negative").increment(by: -5)
        agent.gauge("daily_pnl").set(-12.5)
        agent.gauge("never_set")
        agent.gauge("nan").set(.nan)
        agent.duration("trade_execution_time").record(milliseconds: 12.5)
        agent.duration("trade_execution_time").record(.milliseconds(7))
        agent.state("websocket_status").set("connected")
        let (series, refused) = agent.registry.snapshot(nowMs: 1000)
        let byName = Dictionary(uniqueKeysWithValues: series.map { ($0.name, $0) })
        #expect(byName["trades_executed"]?.values == [4])
        #expect(byName["ignored_negative"]?.values == [0])
        #expect(byName["daily_pnl"]?.values == [-12.5])
        #expect(byName["never_set"] == nil)
        #expect(byName["nan"] == nil)
        #expect(refused == 1)
        #expect(byName["trade_execution_time"]?.values == [12.5, 7])
        #expect(byName["websocket_status"]?.states == ["connected"])
        // Durations drain; an unchanged state is not repeated before its interval.
        let again = agent.registry.snapshot(nowMs: 2000).series.map(\.name)
        #expect(!again.contains("trade_execution_time"))
        #expect(!again.contains("websocket_status"))
        #expect(agent.registry.snapshot(nowMs: 1000 + 60_000).series.contains { $0.name == "websocket_status" })
    }

    @Test func durationRingOverflowIsCountedNotGrown() throws {
        let agent = try Self.agent { $0.durationCapacity = 4 }
        let d = agent.duration("d")
        for i in 0..<10 { d.record(milliseconds: Double(i)) }
        let (series, refused) = agent.registry.snapshot(nowMs: 1)
        #expect(series.first { $0.name == "d" }?.values == [0, 1, 2, 3])
        #expect(refused == 6)
    }

    @Test func namesAreSanitizedForTheWire() throws {
        let agent = try Self.agent()
        #expect(agent.counter("api errors/sec (kraken)").name == "api_errors/sec__kraken_")
        #expect(agent.counter("").name == "_")
    }

    @Test func swiftMetricsBackendRecordsIntoTheAgent() throws {
        let agent = try Self.agent()
        let factory = agent.metricsFactory
        Counter(label: "orders_placed", dimensions: [("venue", "kraken")], factory: factory).increment(by: 2)
        Gauge(label: "balance_usd", factory: factory).record(1234.5)
        CoreMetrics.Timer(label: "order_latency", factory: factory).recordMilliseconds(15)
        let names = Dictionary(uniqueKeysWithValues: agent.registry.snapshot(nowMs: 1).series.map { ($0.name, $0.values) })
        #expect(names["orders_placed.kraken"] == [2])
        #expect(names["balance_usd"] == [1234.5])
        #expect(names["order_latency"] == [15])
    }

    @Test func throwingAndHangingCollectorsNeverBlockTheOthers() async throws {
        let agent = try Self.agent { $0.collectorTimeout = .milliseconds(200) }
        struct Boom: Error {}
        agent.register(ClosureCollector(name: "throws") { throw Boom() })
        agent.register(ClosureCollector(name: "hangs") {
            try? await Task.sleep(for: .seconds(30))
            return [.gauge("late", 1)]
        })
        agent.register(ClosureCollector(name: "good") { [.gauge("custom_metric_1", 42), .state("custom_metric_2", "healthy")] })
        let start = ContinuousClock.now
        let series = await agent.collectors.collect(nowMs: 5)
        // Far less than the hung collector's 30 s (the bound is loose: on a loaded two-core machine 5 s was missed).
        #expect(ContinuousClock.now - start < .seconds(15))
        #expect(Set(series.map(\.name)) == ["custom_metric_1", "custom_metric_2"])
        // The hung collector is still running: the next flush skips it instead of piling up.
        let again = await agent.collectors.collect(nowMs: 6)
        #expect(Set(again.map(\.name)) == ["custom_metric_1", "custom_metric_2"])
    }

    @Test func processCollectorReadsProc() async throws {
        let log = NSTemporaryDirectory() + "fw-log-\(UUID().uuidString)"
        try Data(count: 2 * 1_048_576).write(to: URL(fileURLWithPath: log))
        defer { try? FileManager.default.removeItem(atPath: log) }
        let c = ProcessCollector(logFilePath: log)
        _ = try await c.collect()
        let values = try await c.collect()
        let byName = Dictionary(uniqueKeysWithValues: values.map { ($0.name, $0.value) })
        guard case .number(let mem)? = byName["memory_usage_mb"] else { Issue.record("no memory"); return }
        #expect(mem > 1 && mem < 10_000)
        #expect(byName["cpu_usage_percent"] != nil)
        #expect(byName["log_file_size_mb"] == .number(2))
    }
}
