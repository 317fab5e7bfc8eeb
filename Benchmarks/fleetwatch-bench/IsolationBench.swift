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
import Synchronization
import WSClient

/// A bystander bot's batch-ack latency and emergency-stop latency, p50/p99, on an idle hub and while hostile
/// bots with valid tokens flood it (1 MB batches never acknowledged-read, 2,000 new metric names per batch,
/// malformed frames on reconnect). Target: p99 under attack ≤ 2 × idle (issue 13).
struct IsolationBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "isolation",
                                                    abstract: "Bystander ack and stop latency, idle vs under a hostile bot's flood.")

    @Option(help: "PostgreSQL server URL (a fresh database is created on it).") var databaseURL: String
    @Option(help: "Bystander batches per phase (sent 20 a second, 15 metrics each).") var batches = 300
    @Option(help: "Emergency stops per phase.") var stops = 30
    @Option(help: "hub.max_bytes_per_second for the run (default: the hub's default).") var bytesPerSecond: Int?
    @Option(help: "Which hostile bots run in the attack phase: flood, names, junk (comma-separated).") var attackers = "flood,names,junk"

    /// The bystander: speaks the protocol by hand so every ack and command can be timed.
    final class Bystander: Sendable {
        let acks = Mutex<[UInt64: CheckedContinuation<ContinuousClock.Instant?, Never>]>([:])
        /// The stop waiting for its command: its number and its continuation.
        let commands = Mutex<(Int, CheckedContinuation<ContinuousClock.Instant?, Never>)?>(nil)
        let outbound = Mutex<WebSocketOutboundWriter?>(nil)
        let epoch = UInt64(Date().timeIntervalSince1970 * 1_000_000)

        func run(port: Int, token: String, ready: @escaping @Sendable () -> Void) async throws {
            let logger = { var l = Logger(label: "bystander"); l.logLevel = .critical; return l }()
            _ = try await WebSocketClient.connect(url: "ws://127.0.0.1:\(port)/agent/v1", configuration: .init(maxFrameSize: 1 << 22),
                                                  logger: logger) { inbound, outbound, _ in
                let hello = Frame.hello(Hello(botID: "bystander", token: token, agentVersion: "bench", bootEpoch: self.epoch, lastAckedSequence: 0))
                try await outbound.write(.binary(hello.encoded()))
                self.outbound.withLock { $0 = outbound }
                for try await message in inbound.messages(maxSize: 1 << 22) {
                    guard case .binary(let bytes) = message, let frame = try? Frame.decode(bytes) else { continue }
                    let now = ContinuousClock.now
                    switch frame {
                    case .welcome: ready()
                    case .ack(let ack): self.acks.withLock { $0.removeValue(forKey: ack.sequence) }?.resume(returning: now)
                    case .command(let command):
                        self.commands.withLock { c in defer { c = nil }; return c?.1 }?.resume(returning: now)
                        // Complete it, as a bot would: received, each step, completed.
                        var results = [CommandResultFrame(commandID: command.commandID, step: 0, status: .received, atMs: 1, detail: "")]
                        for step in [CommandFrame.Actions.stopTrading, .cancelOrders, .latchEmergency] where command.actions.contains(step) {
                            results.append(CommandResultFrame(commandID: command.commandID, step: step.rawValue, status: .succeeded, atMs: 1, detail: ""))
                        }
                        results.append(CommandResultFrame(commandID: command.commandID, step: 0, status: .completed, atMs: 1, detail: ""))
                        for r in results { try await outbound.write(.binary(Frame.commandResult(r).encoded())) }
                    case .heartbeat:
                        try await outbound.write(.binary(Frame.heartbeat(Heartbeat(sentAtMs: 0)).encoded()))
                    default: break
                    }
                }
            }
        }

        /// Sends batch `sequence` and returns the time until its ack, in milliseconds.
        func batch(_ sequence: UInt64) async throws -> Double {
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            let payload = BatchPayload(series: (0..<15).map { Series(name: "metric_\($0)", kind: .gauge, timestamps: [now], values: [Double(sequence)]) })
            let frame = Frame.batch(try BatchFrame.make(bootEpoch: epoch, sequence: sequence, payload: payload)).encoded()
            guard let outbound = outbound.withLock({ $0 }) else { throw TestSupportError("bystander not connected") }
            let sent = ContinuousClock.now
            let acked: ContinuousClock.Instant? = await withCheckedContinuation { continuation in
                acks.withLock { $0[sequence] = continuation }
                Task { try? await outbound.write(.binary(frame)) }
                Task {
                    try? await Task.sleep(for: .seconds(30))
                    self.acks.withLock { $0.removeValue(forKey: sequence) }?.resume(returning: nil)
                }
            }
            guard let acked else { throw TestSupportError("no ack of batch \(sequence) within 30 s") }
            return (acked - sent).ms
        }

        /// POSTs a stop and returns the time until the bystander holds the command, in milliseconds.
        func stop(port: Int, token: String, _ i: Int) async throws -> Double {
            let sent = ContinuousClock.now
            let arrived: ContinuousClock.Instant? = await withCheckedContinuation { continuation in
                commands.withLock { $0 = (i, continuation) }
                Task {
                    var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/api/bots/bystander/emergency-stop")
                    request.method = .POST
                    request.headers.add(name: "Authorization", value: "Bearer \(token)")
                    request.headers.add(name: "Content-Type", value: "application/json")
                    request.body = .bytes(ByteBuffer(string: #"{"reason": "isolation benchmark \#(i)"}"#))
                    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
                    let body = try await response.body.collect(upTo: 1 << 20)
                    if response.status != .accepted { print("stop \(i) refused: \(response.status) \(String(buffer: body))") }
                }
                Task {
                    try? await Task.sleep(for: .seconds(30))
                    self.commands.withLock { c -> CheckedContinuation<ContinuousClock.Instant?, Never>? in
                        guard let (n, waiter) = c, n == i else { return nil }
                        c = nil
                        return waiter
                    }?.resume(returning: nil)
                }
            }
            guard let arrived else { throw TestSupportError("stop \(i) did not reach the bystander within 30 s") }
            return (arrived - sent).ms
        }
    }

    func run() async throws {
        let logger = { var l = Logger(label: "bench"); l.logLevel = .warning; return l }()
        let hostile = ["hostile-flood", "hostile-names", "hostile-junk"]
        let db = try await BenchDatabase.create(server: databaseURL, bots: ["bystander"] + hostile, token: "bench-token", logger: logger)
        let operatorToken = "fwo_bench-isolation"
        try await db.withClient(logger: logger) { client in
            try await client.query("INSERT INTO api_tokens (name, role, token_hash) VALUES ('bench', 'operator', \(BotToken.hash(operatorToken)))",
                                   logger: logger)
        }
        let config = NSTemporaryDirectory() + "fleetwatch-isolation.json"
        let rate = bytesPerSecond.map { #", "hub": {"max_bytes_per_second": \#($0)}"# } ?? ""
        try #"{"emergency": {"requests_per_minute": 100000}\#(rate)}"#.write(toFile: config, atomically: true, encoding: .utf8)
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let port = try freeTCPPort()
        let hub = try ChildProcess(dir.appendingPathComponent("monitor-hub").path,
                                   ["serve", "--database-url", db.url.urlString, "--port", "\(port)", "--log-level",
                                    ProcessInfo.processInfo.environment["FLEETWATCH_BENCH_HUB_LOG_LEVEL"] ?? "error",
                                    "--config", config], logPath: NSTemporaryDirectory() + "fleetwatch-isolation-hub.log")
        defer { kill(hub.pid, SIGKILL) }
        for _ in 0..<300 where !LoopbackPort.accepts(port) { try await Task.sleep(for: .milliseconds(100)) }

        let bystander = Bystander()
        let (readyStream, ready) = AsyncStream.makeStream(of: Void.self)
        let connection = Task { try await bystander.run(port: port, token: "bench-token") { ready.yield() } }
        defer { connection.cancel() }
        var it = readyStream.makeAsyncIterator()
        _ = await it.next()

        // Warm-up, not measured: connections, caches, the first partitions and statements.
        var sequence: UInt64 = 0
        for _ in 0..<100 {
            sequence += 1
            _ = try await bystander.batch(sequence)
        }
        for i in 0..<5 { _ = try await bystander.stop(port: port, token: operatorToken, 1000 + i) }
        var results: [String: (acks: [Double], stops: [Double])] = [:]
        for phase in ["idle", "under attack"] {
            let kinds = Set(attackers.split(separator: ",").map(String.init))
            let attackers = phase == "idle" ? [] : Self.attack(port: port, bots: hostile, kinds: kinds)
            if !attackers.isEmpty { try await Task.sleep(for: .seconds(2)) }   // let the flood build up
            let batchCount = batches, stopCount = stops, first = sequence + 1
            sequence += UInt64(batchCount)
            async let acks: [Double] = {
                var out: [Double] = []
                for i in 0..<UInt64(batchCount) {
                    out.append(try await bystander.batch(first + i))
                    try await Task.sleep(for: .milliseconds(50))
                }
                return out
            }()
            async let stopTimes: [Double] = {
                var out: [Double] = []
                for i in 0..<stopCount {
                    out.append(try await bystander.stop(port: port, token: operatorToken, i))
                    try await Task.sleep(for: .milliseconds(400))
                }
                return out
            }()
            results[phase] = (try await acks, try await stopTimes)
            attackers.forEach { $0.cancel() }
            print("\(phase): hub RSS \(Self.rssMiB(hub.pid)) MiB")
        }
        for phase in ["idle", "under attack"] {
            let (acks, stopTimes) = results[phase]!
            report("bystander batch ack, \(phase), p50", Self.percentile(acks, 0.50), "ms")
            report("bystander batch ack, \(phase), p99", Self.percentile(acks, 0.99), "ms")
            report("bystander stop → command at bot, \(phase), p50", Self.percentile(stopTimes, 0.50), "ms")
            report("bystander stop → command at bot, \(phase), p99", Self.percentile(stopTimes, 0.99), "ms")
        }
        // What the attack amounted to: batches the hostile bots got stored, and closes by code.
        try await db.withClient(logger: logger) { client in
            let rows = try await client.query("""
                SELECT b.name, COALESCE(sum(i.batches), 0)::int8, COALESCE(sum(i.samples_sent), 0)::int8, COALESCE(sum(i.samples_stored), 0)::int8
                FROM bots b LEFT JOIN ingest_streams i ON i.bot_id = b.id WHERE b.name LIKE 'hostile-%' GROUP BY b.name ORDER BY b.name
                """, logger: logger)
            for try await (name, batches, sent, stored) in rows.decode((String, Int64, Int64, Int64).self) {
                print("attack: \(name): \(batches) batches stored, \(sent) samples sent, \(stored) stored")
            }
        }
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/api/ingest")
        request.headers.add(name: "Authorization", value: "Bearer \(operatorToken)")
        let ingest = try await HTTPClient.shared.execute(request, timeout: .seconds(10)).body.collect(upTo: 1 << 20)
        print("attack: hub ingest figures \(String(buffer: ingest))")
        let (idle, attacked) = (results["idle"]!, results["under attack"]!)
        report("ack p99 under attack / idle", Self.percentile(attacked.acks, 0.99) / Self.percentile(idle.acks, 0.99), "×")
        report("stop p99 under attack / idle", Self.percentile(attacked.stops, 0.99) / Self.percentile(idle.stops, 0.99), "×")
    }

    static func percentile(_ values: [Double], _ p: Double) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return .nan }
        return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
    }

    static func rssMiB(_ pid: pid_t) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return -1 }
        return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? -1) / 1024
    }

    /// The hostile bots, each reconnecting whenever the hub closes it, until cancelled.
    static func attack(port: Int, bots: [String], kinds: Set<String>) -> [Task<Void, Never>] {
        let logger = { var l = Logger(label: "hostile"); l.logLevel = .critical; return l }()
        let url = "ws://127.0.0.1:\(port)/agent/v1"
        @Sendable func hello(_ bot: String, _ epoch: UInt64) -> ByteBuffer {
            Frame.hello(Hello(botID: bot, token: "bench-token", agentVersion: "hostile", bootEpoch: epoch, lastAckedSequence: 0)).encoded()
        }
        // 1 MB batches, never reading what the hub answers.
        let flood = Task {
            var rng = SystemRandomNumberGenerator()
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            let states = (0..<4000).map { _ in String((0..<255).map { _ in Character(Unicode.Scalar(UInt8.random(in: 33...126, using: &rng))) }) }
            let payload = BatchPayload(series: [Series(name: "blob", kind: .state, timestamps: Array(repeating: now, count: 4000), states: states)])
            while !Task.isCancelled {
                let epoch = UInt64(Date().timeIntervalSince1970 * 1_000_000)
                _ = try? await WebSocketClient.connect(url: url, configuration: .init(maxFrameSize: 1 << 22), logger: logger) { _, outbound, _ in
                    try await outbound.write(.binary(hello(bots[0], epoch)))
                    var seq: UInt64 = 0
                    while !Task.isCancelled {
                        seq += 1
                        try await outbound.write(.binary(Frame.batch(try BatchFrame.make(bootEpoch: epoch, sequence: seq, payload: payload)).encoded()))
                    }
                }
            }
        }
        // 2,000 new metric names in every batch, acks read.
        let names = Task {
            let base = Atomic<Int>(0)
            while !Task.isCancelled {
                let epoch = UInt64(Date().timeIntervalSince1970 * 1_000_000)
                _ = try? await WebSocketClient.connect(url: url, configuration: .init(maxFrameSize: 1 << 22), logger: logger) { inbound, outbound, _ in
                    try await outbound.write(.binary(hello(bots[1], epoch)))
                    var seq: UInt64 = 0
                    for try await _ in inbound.messages(maxSize: 1 << 22) {
                        guard !Task.isCancelled else { return }
                        seq += 1
                        let now = Int64(Date().timeIntervalSince1970 * 1000)
                        let first = base.add(2000, ordering: .relaxed).oldValue
                        let payload = BatchPayload(series: (first..<(first + 2000)).map { Series(name: "order_\($0)", kind: .gauge, timestamps: [now], values: [1]) })
                        try await outbound.write(.binary(Frame.batch(try BatchFrame.make(bootEpoch: epoch, sequence: seq, payload: payload)).encoded()))
                    }
                }
            }
        }
        // Malformed frames, reconnecting after every close.
        let junk = Task {
            while !Task.isCancelled {
                let epoch = UInt64(Date().timeIntervalSince1970 * 1_000_000)
                _ = try? await WebSocketClient.connect(url: url, configuration: .init(maxFrameSize: 1 << 22), logger: logger) { _, outbound, _ in
                    try await outbound.write(.binary(hello(bots[2], epoch)))
                    try await outbound.write(.binary(ByteBuffer(bytes: [0x03] + [UInt8](repeating: 0xFF, count: 64))))
                    try await outbound.write(.text("not the protocol"))
                }
            }
        }
        for (kind, task) in [("flood", flood), ("names", names), ("junk", junk)] where !kinds.contains(kind) { task.cancel() }
        return [flood, names, junk]
    }
}

extension Duration {
    /// In milliseconds, as a floating-point number.
    var ms: Double {
        let (s, a) = components
        return Double(s) * 1000 + Double(a) / 1e15
    }
}
