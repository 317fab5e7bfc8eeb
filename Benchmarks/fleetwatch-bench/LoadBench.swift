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
import PostgresNIO
import Synchronization

/// Many real agents (the agent library, one connection each) on one hub for a long time: every
/// (bot, epoch, sequence) the agents sealed is compared with PostgreSQL at the end; the hub's memory is
/// sampled every 10 s; the dashboard API (`/api/bots`, `/api/status`) is timed every second throughout.
struct LoadBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "load",
                                                    abstract: "N agents × M metrics/s for a duration: loss, errors, hub memory drift, API latency.")

    @Option(help: "PostgreSQL server URL (a fresh database is created on it).") var databaseURL: String
    @Option(help: "Concurrent agents (one WebSocket each).") var agents = 1000
    @Option(help: "Metrics recorded per agent per second.") var metrics = 15
    @Option(help: "Seconds of load.") var seconds = 600.0
    @Option(help: "Seconds after the start that the memory baseline is taken (warm-up).") var warmup = 60.0
    @Option(help: "Seconds between rounds of the dashboard's API requests (/api/bots and /api/status).") var apiInterval = 1.0
    @Option(help: "The hub's log level (its log: fleetwatch-load-hub.log in the temporary directory).") var hubLogLevel = "warning"
    @Option(help: "Hub memory drift that fails the run, in per cent (this much or more), between the means of the minute after the warm-up and of the load's last minute (judged when the load lasts at least the warm-up and two minutes).")
    var maxDrift = 10.0

    func validate() throws {
        guard maxDrift.isFinite else { throw ValidationError("--max-drift must be a number of per cent, like 10") }
    }

    final class Ledger: @unchecked Sendable {
        private let lock = NSLock()
        private var sealed: [String: [(UInt64, UInt64, Int)]] = [:]
        func observer(_ bot: String) -> @Sendable (SealedBatch) -> Void {
            { batch in self.lock.withLock { self.sealed[bot, default: []].append((batch.epoch, batch.sequence, batch.sampleCount)) } }
        }
        func batches(of bot: String) -> [(UInt64, UInt64, Int)] { lock.withLock { sealed[bot] ?? [] } }
        var samples: Int { counts.samples }
        /// Batches and samples sealed so far, over all agents.
        var counts: (batches: Int, samples: Int) {
            lock.withLock { sealed.values.reduce((0, 0)) { ($0.0 + $1.count, $0.1 + $1.reduce(0) { $0 + $1.2 }) } }
        }
    }

    /// The hub's CPU seconds and the agents' sealed counts at one moment.
    struct CPUReading {
        let at: ContinuousClock.Instant
        let hubCPU: Double
        let batches: Int
        let samples: Int

        init(hub: pid_t, ledger: Ledger) {
            at = .now
            hubCPU = RemoteWriteRun.cpuSeconds(pid: hub)
            (batches, samples) = ledger.counts
        }
    }

    func run() async throws {
        let logger = { var l = Logger(label: "bench"); l.logLevel = .warning; return l }()
        let names = (0..<agents).map { String(format: "load-%04d", $0) }
        let db = try await BenchDatabase.create(server: databaseURL, bots: names, token: "bench-token", logger: logger)
        let token = "fwv_bench-load-viewer"
        try await db.withClient(logger: logger) { client in
            try await client.query("INSERT INTO api_tokens (name, role, token_hash) VALUES ('bench', 'viewer', \(BotToken.hash(token)))",
                                   logger: logger)
        }
        let port = try freeTCPPort()
        let bin = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("monitor-hub").path
        let hubLog = NSTemporaryDirectory() + "fleetwatch-load-hub.log"
        // Every agent connects from 127.0.0.1: the per-address limit (1,000 by default) is lifted for the run.
        let config = NSTemporaryDirectory() + "fleetwatch-bench-load.json"
        try #"{"hub": {"max_connections_per_address": 1000000, "max_connections": 1000000}}"#.write(toFile: config, atomically: true, encoding: .utf8)
        let hub = try ChildProcess(bin, ["serve", "--database-url", db.url.urlString, "--port", "\(port)", "--log-level", hubLogLevel,
                                         "--hub-id", "load-hub", "--config", config],
                                   logPath: hubLog, environment: ["FLEETWATCH_ADMIN_PASSWORD": "load-benchmark-password"])
        defer { kill(hub.pid, SIGKILL) }
        for _ in 0..<300 where !LoopbackPort.accepts(port) { try await Task.sleep(for: .milliseconds(100)) }

        print("load: \(agents) agents × \(metrics) metrics/s for \(Int(seconds)) s on one hub (pid \(hub.pid)); memory baseline after \(Int(warmup)) s")
        print("hub log (level \(hubLogLevel)): \(hubLog)")
        try await Task.sleep(for: .seconds(2))
        let idleRSS = Self.rssKB(pid: hub.pid) ?? 0
        let ledger = Ledger()
        await WebSocketWarmUp.connect(port: port, logger: logger)
        var runners: [(MonitorAgent, Task<Void, any Error>)] = []
        for name in names {
            var c = AgentConfiguration(hubURL: "ws://127.0.0.1:\(port)/agent/v1", botID: name, token: "bench-token")
            c.processCollector = false
            c.flushInterval = .seconds(1)
            let agent = try MonitorAgent(configuration: c, logger: logger, onSeal: ledger.observer(name))
            runners.append((agent, Task { try await agent.run() }))
        }
        let agentsList = runners.map(\.0)
        let gauges = agentsList.map { a in (0..<metrics).map { a.gauge("load_metric_\($0)") } }

        let start = ContinuousClock.now
        let end = start + .milliseconds(Int64(seconds * 1000))
        let lag = SchedulerLag()
        lag.start()
        lag.startEventLoops()
        defer { lag.stop() }
        // Recording: every agent sets each of its metrics once a second (a changed value each time).
        let recorder = Task {
            var tick = 0.0
            while ContinuousClock.now < end {
                tick += 1
                for row in gauges { for (i, g) in row.enumerated() { g.set(tick + Double(i)) } }
                try? await Task.sleep(until: start + .seconds(tick), clock: .continuous)
            }
        }
        // The hub's CPU from the end of the warm-up to the end of the load.
        let cpuAtWarmup = Task { () -> CPUReading in
            try? await Task.sleep(until: start + .milliseconds(Int64(min(warmup, seconds / 2) * 1000)), clock: .continuous)
            return CPUReading(hub: hub.pid, ledger: ledger)
        }
        // Hub memory every 10 s: its resident memory, and what its allocator holds in blocks in use (from /metrics),
        // which tells growth of what the hub keeps from memory the allocator keeps free.
        let heapInUse = Mutex<[(Double, Int)]>([])
        let memory = Task { () -> [(Double, Int)] in
            var out: [(Double, Int)] = []
            while ContinuousClock.now < end {
                if let kb = Self.rssKB(pid: hub.pid) {
                    let at = (ContinuousClock.now - start).inSeconds
                    out.append((at, kb))
                    let heap = try? await Self.allocatorInUse(port: port)
                    if let heap { heapInUse.withLock { $0.append((at, heap)) } }
                    progress(String(format: "load: %.0f of %.0f s, hub RSS %.0f MB, allocator in use %@", at, seconds, Double(kb) / 1024,
                                    heap.map { String(format: "%.0f MB", Double($0) / 1_048_576) } ?? "?"))
                }
                // On a 10-s grid: a slow answer from /metrics must not thin out the readings the drift is judged on.
                let next = start + .seconds(10 * (Int((ContinuousClock.now - start).inSeconds / 10) + 1))
                try? await Task.sleep(until: next, clock: .continuous)
            }
            return out
        }
        // The dashboard's API every `apiInterval`, from a process of its own (as an operator's browser would be): in
        // this process its requests would wait behind the agents' thousands of tasks, and the figure would be
        // this process's queue as much as the hub's answer.
        let probe = try APIProbe.Child(hub: "http://127.0.0.1:\(port)", token: token, seconds: seconds, interval: apiInterval)
        defer { kill(probe.process.pid, SIGKILL) }
        _ = await recorder.value
        let loadEnded = ContinuousClock.now
        let cpuAtEnd = CPUReading(hub: hub.pid, ledger: ledger)
        // Closes during the load apart from those of the drain (the agents then catch up, windows full).
        let closesDuringLoad = (try? await Self.ingestCounters(port: port, token: token))?.closes
        let sealedDuringLoad = ledger.samples
        let rss = await memory.value
        let latencies = try await probe.result()
        let hubSide = try? await Self.hubLatency(port: port, route: "/api/bots")

        // Drain. The agents go on flushing their gauges every second and, while a batch awaits its ack, a flush's
        // samples wait for the next batch (`maxCoalesceDelay`), so an agent of a busy hub is never idle. Instead:
        // every agent flushes, and after the longest a sample can wait unsealed (the coalescing delay and a flush)
        // each connected agent's sealed batches are taken; the run drains when every agent has had all of them
        // acknowledged. An agent not connected then may hold samples it never sealed: it counts as not drained.
        // All at once: one after another, 5,000 flushes (each a few hops into its agent's actors behind the
        // agents' own work) took minutes, and the drain measured this process more than the hub.
        let flushStarted = ContinuousClock.now
        await withTaskGroup(of: Void.self) { group in
            for a in agentsList { group.addTask { await a.flush() } }
        }
        let flushTook = ContinuousClock.now - flushStarted
        try await Task.sleep(for: AgentConfiguration.defaultMaxCoalesceDelay + .seconds(2))
        var sealed: [String: [(UInt64, UInt64, Int)]] = [:]
        var targets: [Int: Int64] = [:]
        var disconnected: [Int] = []
        let sealedNow = agentsList.indices.map { ledger.batches(of: names[$0]) }
        // Bounded like every question to the agents below: an agent that never answers counts as not connected.
        let answered = await Self.statuses(of: agentsList, agentsList.indices, until: .now + .seconds(30))
        for i in agentsList.indices {
            guard let status = answered[i], status.connected else { disconnected.append(i); continue }
            sealed[names[i]] = sealedNow[i]
            targets[i] = Int64(sealedNow[i].count)
        }
        disconnected.sort()
        // Each pass asks every agent still waiting at once: one after another, a pass over 5,000 agents (each a hop
        // into its actors behind its own work) took longer than the deadline, which was only looked at between
        // passes (a drain reported 232 s against a 120-s deadline).
        let drainDeadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < drainDeadline, !targets.isEmpty {
            // A pass ends after 5 s at most (and at the deadline): an agent that does not answer must neither hold
            // the benchmark nor keep the others from being asked again; it stays undrained.
            for (i, status) in await Self.statuses(of: agentsList, Array(targets.keys), until: min(drainDeadline, .now + .seconds(5)))
            where status.ackedBatches >= targets[i]! {
                targets[i] = nil
            }
            if !targets.isEmpty { try await Task.sleep(for: .milliseconds(200)) }
        }
        let pending = targets.count + disconnected.count
        // What each agent that did not drain (at most five) says of itself, taken now, before the agents stop.
        var undrained: [(bot: String, status: String)] = []
        let firstUndrained = Array((disconnected + targets.keys.sorted()).prefix(5))
        let told = await Self.statuses(of: agentsList, firstUndrained, until: .now + .seconds(10))
        for i in firstUndrained {
            guard let s = told[i] else { undrained.append((names[i], "did not answer within 10 s")); continue }
            undrained.append((names[i], "connected \(s.connected), acknowledged \(s.ackedBatches) of \(targets[i].map(String.init) ?? "?") batches, \(s.unackedBatches) unacknowledged, \(s.bufferedSamples) samples buffered, last close \(s.lastCloseCode.map(String.init) ?? "none"), last error \(s.lastError ?? "none")"))
        }
        let drainEnded = ContinuousClock.now
        let drained = drainEnded - loadEnded
        var dropped: Int64 = 0, reconnectCloses = 0, lastCloses: [String: Int] = [:], lastErrors: [String: Int] = [:]
        let tally = await Self.statuses(of: agentsList, agentsList.indices, until: .now + .seconds(30))
        if tally.count < agentsList.count { print("agents that did not tell their status within 30 s: \(agentsList.count - tally.count)") }
        for (_, s) in tally {
            dropped += s.droppedSamples
            if let code = s.lastCloseCode { reconnectCloses += 1; lastCloses["\(code)", default: 0] += 1 }
            if let error = s.lastError { lastErrors[String(error.prefix(100)), default: 0] += 1 }
        }
        let ingest: (closes: [String: Int], refused: Int)
        do {
            ingest = try await Self.ingestCounters(port: port, token: token)
        } catch {
            let rss = Self.rssKB(pid: hub.pid).map { String(format: "%.0f MB", Double($0) / 1024) } ?? "?"
            throw BenchFailure("the hub did not answer GET /api/ingest after the load (\(error)); \(pending) agents still held batches; hub RSS \(rss)")
        }
        for (_, task) in runners { task.cancel() }

        // Every sealed batch against PostgreSQL.
        let stored: [String: [UInt64: (Int, Int)]] = try await db.withClient(logger: logger) { client in
            // Batch by batch, also once their minute was merged into one row by the review upkeep (schema 0009).
            let rows = try await client.query(PostgresQuery(unsafeSQL: StoredBatches.sql), logger: logger)
            var out: [String: [UInt64: (Int, Int)]] = [:]
            for try await (bot, _, seq, n, _, copies) in rows.decode((String, Int64, Int64, Int64, Double, Int64).self) {
                out[bot, default: [:]][UInt64(seq)] = (Int(n), Int(copies))
            }
            return out
        }
        var sealedBatches = 0, sealedSamples = 0, lost = 0, duplicated = 0, mismatched = 0
        for (bot, batches) in sealed {
            for (_, seq, samples) in batches {
                sealedBatches += 1
                sealedSamples += samples
                guard let row = stored[bot]?[seq] else { lost += 1; continue }
                if row.1 > 1 { duplicated += 1 }
                if row.0 != samples { mismatched += 1 }
            }
        }
        let elapsed = (ContinuousClock.now - start).inSeconds
        func pct(_ v: [Double], _ p: Double) -> Double { let s = v.sorted(); return s.isEmpty ? .nan : s[min(s.count - 1, Int(Double(s.count) * p))] }
        let baseline = rss.first { $0.0 >= warmup }?.1 ?? rss.first?.1 ?? 0
        let last = rss.last?.1 ?? 0
        let peak = rss.map(\.1).max() ?? 0
        print("batches sealed by the agents: \(sealedBatches) (\(sealedSamples) samples); stored rows checked one by one")
        print("lost: \(lost), duplicated: \(duplicated), wrong sample count: \(mismatched), agents not drained: \(pending), dropped samples: \(dropped)")
        for (bot, status) in undrained {
            let sealedTo = sealed[bot]?.map(\.1).max() ?? ledger.batches(of: bot).map(\.1).max() ?? 0
            print("  not drained: \(bot): \(status); sealed up to sequence \(sealedTo), stored up to \(stored[bot]?.keys.max() ?? 0)")
        }
        print("hub closes by code: \(ingest.closes) (of which during the load: \(closesDuringLoad.map { "\($0)" } ?? "unknown")), samples refused: \(ingest.refused); agents that saw a close: \(reconnectCloses) (last close by code: \(lastCloses))")
        let warmedUp = start + .milliseconds(Int64(min(warmup, seconds / 2) * 1000))
        let lagLine = [("during the load", lag.lateness(from: warmedUp, to: loadEnded)), ("during the drain", lag.lateness(from: loadEnded, to: drainEnded))]
            .compactMap { phase, l in l.map { String(format: "%@ max %.0f ms, p99 %.0f ms", phase, $0.max, $0.p99) } }
        print("this process's tasks (the agents') ran late by: " + lagLine.joined(separator: "; ")
              + " (a 100 ms sleep's overrun; an agent late by 10 s sends no heartbeat and is closed 4008)")
        let loopLine = [("during the load", lag.eventLoopLateness(from: warmedUp, to: loadEnded)),
                        ("during the drain", lag.eventLoopLateness(from: loadEnded, to: drainEnded))]
            .compactMap { phase, l in l.map { String(format: "%@ max %.0f ms, p99 %.0f ms", phase, $0.max, $0.p99) } }
        print("this process's event loops (the agents' connections: their reads, writes and heartbeats) ran late by: "
              + loopLine.joined(separator: "; "))
        if !lastErrors.isEmpty { print("agents' last connection errors: \(lastErrors.sorted { $0.value > $1.value }.prefix(5).map { "\($0.value)× \($0.key)" })") }
        print(String(format: "hub RSS: %.1f MB after %d s warm-up, %.1f MB at the end, peak %.1f MB: drift %+.1f %%",
                     Double(baseline) / 1024, Int(warmup), Double(last) / 1024, Double(peak) / 1024,
                     baseline > 0 ? (Double(last) - Double(baseline)) / Double(baseline) * 100 : .nan))
        // The RSS swings by tens of MB within a minute (freed memory reused, then handed back): single readings
        // say as much about the swing's phase as about growth, so the minute after the warm-up is compared
        // with the load's last minute, each by its mean.
        /// The mean in MB of the readings (seconds, value in `unit`s) taken within `window`.
        func mean(_ readings: [(Double, Int)], _ window: ClosedRange<Double>, unit: Double) -> Double? {
            let v = readings.filter { window.contains($0.0) }.map { Double($0.1) * unit / 1_048_576 }
            return v.isEmpty ? nil : v.reduce(0, +) / Double(v.count)
        }
        // Judged by the minute means (the issue's < 10 %), only when the two minutes are distinct and after the warm-up.
        var driftFailed = false, driftJudged = false
        let firstMinute = warmup...(warmup + 60), lastMinute = max(warmup, seconds - 60)...seconds
        if let first = mean(rss, firstMinute, unit: 1024), let end = mean(rss, lastMinute, unit: 1024) {
            let drift = (end - first) / first * 100
            let judged = seconds >= warmup + 120
            driftFailed = judged && !(drift < maxDrift)
            driftJudged = judged
            print(String(format: "hub RSS, means of a minute: %.1f MB in the minute after the warm-up, %.1f MB in the last minute: drift %+.1f %% (%@)",
                         first, end, drift, judged ? (driftFailed ? "over" : "within") + String(format: " the %.0f %% allowed", maxDrift)
                                                    : "not judged: the load is shorter than the warm-up and two minutes"))
        }
        print("hub RSS every 10 s (MB): " + rss.map { String(format: "%.0f", Double($0.1) / 1024) }.joined(separator: " "))
        // Reported, not judged: the target is on the resident memory.
        let heap = heapInUse.withLock { $0 }
        if let first = mean(heap, firstMinute, unit: 1), let end = mean(heap, lastMinute, unit: 1) {
            print(String(format: "hub allocator, bytes in use, means of a minute: %.1f MB in the minute after the warm-up, %.1f MB in the last minute: drift %+.1f %%",
                         first, end, (end - first) / first * 100))
        }
        print("hub allocator in use every 10 s (MB): " + heap.map { String(format: "%.0f", Double($0.1) / 1_048_576) }.joined(separator: " "))
        print(String(format: "hub memory per connected agent: %.1f KB (RSS at the end %.1f MB minus %.1f MB before any agent, over %d agents)",
                     Double(last - idleRSS) / Double(agents), Double(last) / 1024, Double(idleRSS) / 1024, agents))
        print(String(format: "GET /api/bots during load: p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d requests)",
                     pct(latencies.bots, 0.5), pct(latencies.bots, 0.99), latencies.bots.max() ?? .nan, latencies.bots.count))
        print(String(format: "GET /api/status during load: p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d requests); API errors: %d",
                     pct(latencies.status, 0.5), pct(latencies.status, 0.99), latencies.status.max() ?? .nan, latencies.status.count, latencies.errors.count))
        if !latencies.errors.isEmpty { print("API errors (no 200 within 10 s): \(latencies.errors.prefix(10))") }
        if let hubSide { print("GET /api/bots as the hub timed it (its fleetwatch_http_request_duration_seconds, bucket bounds): \(hubSide)") }
        print(String(format: "throughput: %.0f samples/s sealed during the load (%d agents × %d metrics/s recorded); every agent's batches acknowledged %.1f s after it (its final flush took %.1f s); %.0f samples/s, %.0f batches/s over %.0f s in all",
                     Double(sealedDuringLoad) / seconds, agents, metrics, drained.inSeconds, flushTook.inSeconds, Double(sealedSamples) / elapsed,
                     Double(sealedBatches) / elapsed, elapsed))
        let cpuFrom = await cpuAtWarmup.value
        let cpuSeconds = cpuAtEnd.hubCPU - cpuFrom.hubCPU, cpuWindow = (cpuAtEnd.at - cpuFrom.at).inSeconds
        let cpuBatches = cpuAtEnd.batches - cpuFrom.batches, cpuSamples = cpuAtEnd.samples - cpuFrom.samples
        print(String(format: "hub CPU from the warm-up to the end of the load: %.1f s in %.0f s (%.0f %% of one core); %.0f µs per batch sealed, %.2f CPU s per million samples sealed (%d batches, %d samples)",
                     cpuSeconds, cpuWindow, cpuSeconds / max(cpuWindow, 1e-9) * 100, cpuSeconds / Double(max(cpuBatches, 1)) * 1e6,
                     cpuSeconds / Double(max(cpuSamples, 1)) * 1e6, cpuBatches, cpuSamples))
        let failed = lost > 0 || duplicated > 0 || mismatched > 0 || pending > 0 || dropped > 0 || !latencies.errors.isEmpty
            || !ingest.closes.isEmpty || ingest.refused > 0 || driftFailed
        print(failed ? "RESULT: FAILED" + (driftFailed ? " (memory drift \(maxDrift) % or more)" : "")
                     : "RESULT: ok (0 lost, 0 duplicated, 0 errors); " + (driftJudged ? "memory drift under \(maxDrift) %" : "memory drift not judged"))
        if failed { throw ExitCode(1) }
    }

    static func rssKB(pid: pid_t) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return nil }
        return Int(line.split(separator: " ").dropFirst().first ?? "")
    }

    /// The hub's own timing of `route` (its request-duration histogram on /metrics): the bucket bounds that
    /// hold the median and the 99th percentile, and the count.
    static func hubLatency(port: Int, route: String) async throws -> String {
        let text = try await hubMetricsText(port: port)
        var buckets: [(le: Double, count: Double)] = []
        for line in text.split(separator: "\n") where line.hasPrefix("fleetwatch_http_request_duration_seconds_bucket{")
            && line.contains("route=\"\(route)\"") && line.contains("method=\"GET\"") {
            guard let le = line.split(separator: "le=\"").last?.split(separator: "\"").first,
                  let count = Double(line.split(separator: " ").last ?? "") else { continue }
            buckets.append((le == "+Inf" ? .infinity : Double(le) ?? .nan, count))
        }
        buckets.sort { $0.le < $1.le }
        guard let total = buckets.last?.count, total > 0 else { return "no requests recorded" }
        func bound(_ q: Double) -> String {
            let le = buckets.first { $0.count >= q * total }?.le ?? .infinity
            return le.isInfinite ? "> \(buckets.dropLast().last.map { "\($0.le)" } ?? "?") s" : "≤ \(le) s"
        }
        return "p50 \(bound(0.5)), p99 \(bound(0.99)) (\(Int(total)) requests)"
    }

    /// The statuses of the agents at `indices` that answer by `deadline`, asked all at once. An agent whose actor
    /// never answers is left out instead of holding the caller (a task group would wait for it), and its question
    /// is left to finish or not on its own.
    static func statuses(of agents: [MonitorAgent], _ indices: some Collection<Int>,
                         until deadline: ContinuousClock.Instant) async -> [Int: AgentStatus] {
        guard !indices.isEmpty else { return [:] }
        let (answers, answer) = AsyncStream.makeStream(of: (Int, AgentStatus)?.self)
        let asks = indices.map { i in Task { answer.yield((i, await agents[i].status)) } }
        let timer = Task {
            try? await Task.sleep(until: deadline, clock: .continuous)
            answer.yield(nil)
        }
        defer { timer.cancel() }
        var out: [Int: AgentStatus] = [:]
        for await entry in answers {
            guard let (i, status) = entry else { break }
            out[i] = status
            if out.count == asks.count { break }
        }
        answer.finish()
        return out
    }

    /// The bytes the hub's allocator holds in use (`fleetwatch_allocator_in_use_bytes` on its /metrics).
    static func allocatorInUse(port: Int) async throws -> Int? {
        try await hubMetricsText(port: port).split(separator: "\n").first { $0.hasPrefix("fleetwatch_allocator_in_use_bytes ") }
            .flatMap { Double($0.split(separator: " ").last ?? "") }.flatMap { Int(exactly: $0.rounded()) }
    }

    static func ingestCounters(port: Int, token: String) async throws -> (closes: [String: Int], refused: Int) {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/api/ingest")
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 1 << 20)
        let json = try JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any] ?? [:]
        let closes = (json["closesByCode"] as? [String: Any] ?? [:]).compactMapValues { ($0 as? NSNumber)?.intValue }.filter { $0.value > 0 }
        return (closes, (json["samplesRefused"] as? NSNumber)?.intValue ?? 0)
    }
}
