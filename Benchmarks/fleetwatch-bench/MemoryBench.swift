import ArgumentParser
import AsyncHTTPClient
import FleetwatchAgent
import FleetwatchTestSupport
import Foundation
import Logging

/// Agent memory and CPU overhead: resident memory and CPU time of a bot process with an agent reporting 50 metrics
/// to a hub (each updated 100 times a second in rounds of 10 every 100 ms, flushed every second, the process collector on), minus the same
/// process without the agent. The CPU figure is what the reference system promises to keep under 1 %.
struct MemoryBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "memory", abstract: "Agent memory (RSS) and CPU overhead.")

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
        var results: [String: [Double]] = [:]
        for mode in ["baseline", "agent"] {
            let out = NSTemporaryDirectory() + "fleetwatch-mem-\(mode).txt"
            try? FileManager.default.removeItem(atPath: out)
            let child = try ChildProcess(CommandLine.arguments[0],
                                         ["memory-child", "--mode", mode, "--seconds", "\(seconds)", "--metrics", "\(metrics)",
                                          "--hub", "ws://127.0.0.1:\(port)/agent/v1", "--out", out],
                                         logPath: NSTemporaryDirectory() + "fleetwatch-mem-\(mode).log")
            while child.isRunning { try await Task.sleep(for: .milliseconds(200)) }
            // "RSS-kB CPU-seconds record-calls", written by the child as it ends.
            let fields = (try String(contentsOfFile: out, encoding: .utf8)).split(separator: " ").compactMap { Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            guard fields.count == 3 else { throw BenchFailure("memory-child \(mode) wrote no figures: \(child.log.suffix(1000))") }
            results[mode] = fields
        }
        let (base, agent) = (results["baseline"]!, results["agent"]!)
        report("bot process RSS without agent", base[0] / 1024, "MB")
        report("bot process RSS with agent (\(metrics) metrics, connected, \(Int(seconds)) s)", agent[0] / 1024, "MB")
        report("agent memory overhead", (agent[0] - base[0]) / 1024, "MB")
        // CPU: the agent process's user + system time minus the baseline's, over the samples the hub stored.
        let stored = try await Self.samplesStored(port: port)
        let cpu = agent[1] - base[1]
        guard stored > 0 else { throw BenchFailure("the hub stored no sample from the agent: \(hub.log.suffix(1000))") }
        report("bot process CPU without agent", base[1], "CPU s", digits: 3)
        report("bot process CPU with agent", agent[1], "CPU s", digits: 3)
        report("agent CPU overhead, % of one core (difference of the two; below ±0.1 % is noise)", cpu / seconds * 100, "%", digits: 3)
        report("agent CPU per million record calls", cpu / agent[2] * 1e6, "CPU s", digits: 3)
        report("agent CPU per million samples sent (\(Int(stored)) stored by the hub)", cpu / stored * 1e6, "CPU s", digits: 3)
    }

    /// `fleetwatch_samples_stored_total` from the hub's /metrics.
    static func samplesStored(port: Int) async throws -> Double {
        try await hubMetricsText(port: port).split(separator: "\n").first { $0.hasPrefix("fleetwatch_samples_stored_total ") }
            .flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
    }
}

/// The measured process: a loop updating `metrics` values 100 times a second, with or without an agent.
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
            // 100 updates a second per metric, made 10 at a time every 100 ms: few wake-ups, so the process's
            // CPU time is the agent's and not the loop's.
            while ContinuousClock.now < deadline {
                for _ in 0..<10 {
                    for g in gauges { g.set(Double(i % 1000) / 10) }
                    for c in counters { c.increment() }
                    for d in durations { d.record(milliseconds: Double(i % 300)) }
                    i += 1
                }
                try await Task.sleep(for: .milliseconds(100))
            }
            // Until every sample has reached the hub (bounded), so the CPU counted covers sending them.
            for _ in 0..<50 {
                let s = await agent.status
                if s.unackedBatches == 0 && s.bufferedSamples == 0 { break }
                await agent.flush()
                try await Task.sleep(for: .milliseconds(100))
            }
            let status = await agent.status
            FileHandle.standardError.write("agent status: \(status)\n".data(using: .utf8)!)
            try "\(try rss()) \(Self.cpuSeconds()) \(i * metrics)".write(toFile: out, atomically: true, encoding: .utf8)
            task.cancel()
        } else {
            var i = 0
            while ContinuousClock.now < deadline {
                for _ in 0..<10 {
                    for k in 0..<metrics { local[k] = Double(i % 1000) / 10 }
                    i += 1
                }
                try await Task.sleep(for: .milliseconds(100))
            }
            try "\(try rss()) \(Self.cpuSeconds()) \(i * metrics)".write(toFile: out, atomically: true, encoding: .utf8)
        }
        _ = local
    }

    /// This process's user + system CPU time.
    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    /// VmRSS in kB.
    func rss() throws -> String {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return String(line.split(separator: " ").dropFirst().first ?? "0")
    }
}
