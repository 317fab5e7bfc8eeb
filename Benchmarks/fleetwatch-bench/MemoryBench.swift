import ArgumentParser
import FleetwatchAgent
import FleetwatchTestSupport
import Foundation
import Logging

/// Agent memory overhead: resident memory of a bot process with an agent reporting 50 metrics to a hub,
/// minus the same process without the agent.
struct MemoryBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "memory", abstract: "Agent memory overhead (RSS).")

    @Option(help: "PostgreSQL server URL (a fresh database is created on it).") var databaseURL: String
    @Option(help: "Seconds each process runs before its memory is read.") var seconds = 30.0
    @Option(help: "Metrics the simulated bot updates.") var metrics = 50

    func run() async throws {
        var logger = Logger(label: "bench")
        logger.logLevel = .warning
        let db = try await BenchDatabase.create(server: databaseURL, bots: ["mem-bot"], token: "bench-token", logger: logger)
        let port = try freeTCPPort()
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let hub = try ChildProcess(dir.appendingPathComponent("monitor-hub").path,
                                   ["serve", "--database-url", db.url.urlString, "--port", "\(port)", "--log-level", "warning"],
                                   logPath: NSTemporaryDirectory() + "fleetwatch-bench-mem-hub.log")
        defer { kill(hub.pid, SIGKILL) }
        try await Task.sleep(for: .seconds(3))
        var results: [String: Double] = [:]
        for mode in ["baseline", "agent"] {
            let out = NSTemporaryDirectory() + "fleetwatch-mem-\(mode).txt"
            try? FileManager.default.removeItem(atPath: out)
            let child = try ChildProcess(CommandLine.arguments[0],
                                         ["memory-child", "--mode", mode, "--seconds", "\(seconds)", "--metrics", "\(metrics)",
                                          "--hub", "ws://127.0.0.1:\(port)/agent/v1", "--out", out],
                                         logPath: NSTemporaryDirectory() + "fleetwatch-mem-\(mode).log")
            while child.isRunning { try await Task.sleep(for: .milliseconds(200)) }
            results[mode] = Double((try String(contentsOfFile: out, encoding: .utf8)).trimmingCharacters(in: .whitespacesAndNewlines)) ?? .nan
        }
        report("bot process RSS without agent", results["baseline"]! / 1024, "MB")
        report("bot process RSS with agent (\(metrics) metrics, connected, \(Int(seconds)) s)", results["agent"]! / 1024, "MB")
        report("agent memory overhead", (results["agent"]! - results["baseline"]!) / 1024, "MB")
    }
}

/// The measured process: a busy loop updating `metrics` values, with or without an agent.
struct MemoryChild: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "memory-child", shouldDisplay: false)
    @Option(help: "baseline (no agent) or agent.") var mode = "agent"
    @Option(help: "Seconds to run.") var seconds = 30.0
    @Option(help: "Metrics updated.") var metrics = 50
    @Option(help: "The hub's agent endpoint.") var hub = ""
    @Option(help: "File the resident memory (KB) is written to.") var out = ""

    func run() async throws {
        let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
        var local = [Double](repeating: 0, count: metrics)
        if mode == "agent" {
            var c = AgentConfiguration(hubURL: hub, botID: "mem-bot", token: "bench-token")
            c.processCollector = true
            let agent = try MonitorAgent(configuration: c, logger: Logger(label: "agent"))
            let names = RealisticBatches.metricNames(metrics)
            let gauges = names.filter { $0.1 != .counter && $0.1 != .duration }.map { agent.gauge($0.0) }
            let counters = names.filter { $0.1 == .counter }.map { agent.counter($0.0) }
            let durations = names.filter { $0.1 == .duration }.map { agent.duration($0.0) }
            let task = Task { try await agent.run() }
            var i = 0
            while ContinuousClock.now < deadline {
                for g in gauges { g.set(Double(i % 1000) / 10) }
                for c in counters { c.increment() }
                for d in durations { d.record(milliseconds: Double(i % 300)) }
                i += 1
                try await Task.sleep(for: .milliseconds(10))
            }
            let status = await agent.status
            FileHandle.standardError.write("agent status: \(status)\n".data(using: .utf8)!)
            try rss().write(toFile: out, atomically: true, encoding: .utf8)
            task.cancel()
        } else {
            var i = 0
            while ContinuousClock.now < deadline {
                for k in 0..<metrics { local[k] = Double(i % 1000) / 10 }
                i += 1
                try await Task.sleep(for: .milliseconds(10))
            }
            try rss().write(toFile: out, atomically: true, encoding: .utf8)
        }
        _ = local
    }

    /// VmRSS in kB.
    func rss() throws -> String {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return String(line.split(separator: " ").dropFirst().first ?? "0")
    }
}
