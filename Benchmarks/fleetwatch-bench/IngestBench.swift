import ArgumentParser
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
import WSClient

/// Hub ingest throughput with N concurrent agents, next to PostgreSQL's own COPY of the same rows.
struct IngestBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ingest", abstract: "Samples/s stored with concurrent agents vs COPY.")

    @Option(help: "PostgreSQL server URL (a fresh database is created on it).") var databaseURL: String
    @Option(help: "Concurrent agents (one WebSocket each).") var agents = 50
    @Option(help: "Seconds of load.") var seconds = 20.0
    @Option(help: "Metrics per batch.") var metrics = 50
    @Option(help: "Samples per metric per batch (ticks).") var ticks = 20
    @Option(help: "Batches in flight per agent.") var window = 4
    @Option(help: "The monitor-hub binary (default: next to this one).") var hubBinary: String?
    @Option(help: "Then feed this Prometheus binary's remote-write receiver the same shape and print the ratio (e.g. /usr/bin/prometheus).")
    var comparePrometheus: String?
    @Flag(help: "Skip PostgreSQL's COPY ceiling.") var noCopy = false
    @Option(help: "The hub's hub.toast_compression: auto (its default: lz4 where PostgreSQL has it), lz4 or pglz.")
    var toastCompression: String?
    @Option(name: .customLong("protocol"), help: "The protocol the agents speak: 2 sends self-contained batches, 3 delta batches (what the Swift agent sends).")
    var protocolVersion: UInt16 = WireProtocol.version

    func validate() throws {
        if let t = toastCompression, !["auto", "lz4", "pglz"].contains(t) {
            throw ValidationError("--toast-compression must be auto, lz4 or pglz")
        }
    }

    func run() async throws {
        var logger = Logger(label: "bench")
        logger.logLevel = .warning
        let bots = (1...agents).map { "bench-\($0)" }
        let db = try await BenchDatabase.create(server: databaseURL, bots: bots, token: "bench-token", logger: logger)
        let port = try freeTCPPort()
        let bin = hubBinary ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("monitor-hub").path
        // The hub's ceiling, not one bot's fair share: each agent here sends as fast as acks return, far past
        // the per-connection rate a real bot needs (hub.max_bytes_per_second), so the run lifts it.
        let config = NSTemporaryDirectory() + "fleetwatch-bench-ingest.json"
        let compression = toastCompression.map { #", "toast_compression": "\#($0)""# } ?? ""
        try #"{"hub": {"max_bytes_per_second": 1073741824\#(compression)}}"#.write(toFile: config, atomically: true, encoding: .utf8)
        let hub = try ChildProcess(bin, ["serve", "--database-url", db.url.urlString, "--port", "\(port)", "--log-level", "warning",
                                         "--config", config],
                                   logPath: NSTemporaryDirectory() + "fleetwatch-bench-hub.log")
        defer { kill(hub.pid, SIGKILL) }
        try await waitForPort(port)

        let nowMs = Int64(Date().timeIntervalSince1970 * 1000) - Int64(ticks) * 1000
        let payload = RealisticBatches.payload(metrics: metrics, ticks: ticks, startMs: nowMs)
        let template = try BatchFrame.make(bootEpoch: 1, sequence: 1, payload: payload)
        let perBatch = payload.sampleCount
        guard (2...3).contains(protocolVersion) else { throw ValidationError("--protocol must be 2 or 3") }
        print("ingest: \(agents) agents, \(perBatch)-sample batches (\(metrics) metrics x \(ticks)), window \(window), \(seconds) s, protocol \(protocolVersion), hub \(bin), toast compression \(toastCompression ?? "auto")")
        let version = protocolVersion

        let acked = SharedCounter()
        await WebSocketWarmUp.connect(port: port, logger: logger)
        let found = await ServerCPU.find(db, logger: logger)
        let server = try? found.get()
        let serverCPUBefore = server?.seconds() ?? 0
        let hubCPUBefore = RemoteWriteRun.cpuSeconds(pid: hub.pid)
        let senderCPUBefore = RemoteWriteRun.cpuSeconds(pid: getpid())
        let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
        let start = ContinuousClock.now
        let window = self.window
        let agentLogger = logger
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (i, bot) in bots.enumerated() {
                group.addTask {
                    try await runAgent(bot: bot, epoch: UInt64(1000 + i), port: port, template: template, payload: payload,
                                       protocolVersion: version, deadline: deadline, acked: acked, window: window, logger: agentLogger)
                }
            }
            try await group.waitForAll()
        }
        let elapsed = (ContinuousClock.now - start).inSeconds
        let hubCPU = RemoteWriteRun.cpuSeconds(pid: hub.pid) - hubCPUBefore
        let senderCPU = RemoteWriteRun.cpuSeconds(pid: getpid()) - senderCPUBefore
        let serverCPU = server.map { $0.seconds() - serverCPUBefore }
        let batches = acked.value
        let samples = Double(batches) * Double(perBatch)
        guard batches > 0 else { throw BenchFailure("no batch was acknowledged: \(hub.log.suffix(1000))") }
        report("hub ingest samples/s stored (\(agents) agents)", samples / elapsed, "samples/s", digits: 0)
        report("hub ingest batches/s", Double(batches) / elapsed, "batches/s", digits: 0)
        report("hub CPU per million samples", hubCPU / samples * 1e6, "CPU s")
        // The senders share the machine with the receiver: what they take is not the hub's, on either side.
        report("senders' CPU per million samples (this process)", senderCPU / samples * 1e6, "CPU s")
        if let serverCPU {
            // The third on fleetwatch's side of the comparison (Prometheus has no database beside it).
            report("PostgreSQL CPU per million samples (the whole server)", serverCPU / samples * 1e6, "CPU s")
            report("fleetwatch's side, hub + senders + PostgreSQL, per million samples", (hubCPU + senderCPU + serverCPU) / samples * 1e6, "CPU s")
        } else {
            if case .failure(let why) = found { print("PostgreSQL CPU: not measured: \(why)") }
        }
        let size = try await db.sizes(logger: logger)
        report("samples table bytes/sample (with index)", Double(size.samples) / samples, "bytes")
        report("batch ledger bytes/sample", Double(size.ledger) / samples, "bytes")
        report("total bytes/sample on disk", Double(size.samples + size.ledger) / samples, "bytes")
        kill(hub.pid, SIGTERM)

        if let comparePrometheus {
            // Prometheus right after, on the same machine, the same samples per request and requests in flight.
            let prom = try await RemoteWriteRun(prometheus: comparePrometheus, senders: agents, metrics: metrics, ticks: ticks, window: window,
                                                seconds: seconds).run()
            report("Prometheus remote-write samples/s (\(agents) senders, \(perBatch)-sample requests)", prom.samplesPerSecond, "samples/s", digits: 0)
            report("Prometheus remote-write requests/s", prom.requestsPerSecond, "requests/s", digits: 0)
            report("Prometheus CPU per million samples", prom.cpuPerMillion, "CPU s")
            report("Prometheus senders' CPU per million samples (this process)", prom.senderCPUPerMillion, "CPU s")
            report("fleetwatch ÷ Prometheus (samples/s, \(perBatch)-sample batches)", samples / elapsed / prom.samplesPerSecond, "×")
        }
        if noCopy { return }

        // The ceiling: COPY of the same rows into a fresh database with the same schema and indexes.
        let copyDB = try await BenchDatabase.create(server: databaseURL, bots: bots, token: "bench-token", logger: logger)
        let rowsPerStream = Int(batches) / 2
        let copyRate = try await copyCeiling(db: copyDB, template: template, payload: payload, rows: rowsPerStream,
                                             streams: 2, bots: agents, logger: logger)
        report("PostgreSQL COPY ceiling samples/s (2 streams, same rows)", copyRate, "samples/s", digits: 0)
        report("hub ingest as % of COPY ceiling", samples / elapsed / copyRate * 100, "%", digits: 1)
    }

    func waitForPort(_ port: Int) async throws {
        for _ in 0..<300 {
            if LoopbackPort.accepts(port) { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestSupportError("hub did not start")
    }

    func copyCeiling(db: BenchDatabase, template: BatchFrame, payload: BatchPayload, rows: Int, streams: Int, bots: Int,
                     logger: Logger) async throws -> Double {
        // One text COPY row per batch, exactly what the hub writes (see PostgresIngestStore).
        let t0 = Date(timeIntervalSince1970: Double(payload.series.flatMap(\.timestamps).min()!) / 1000)
        let iso = ISO8601DateFormatter()
        iso.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let start = iso.string(from: t0)
        let first = payload.series.flatMap(\.timestamps).min()!
        var ids: [String] = [], offs: [String] = [], vals: [String] = []
        for (i, s) in payload.series.enumerated() {
            for (t, v) in zip(s.timestamps, s.values) {
                ids.append(String(i + 1)); offs.append(String(t - first)); vals.append(String(v))
            }
        }
        try await db.withClient(logger: logger) { client in
            try await client.query("""
                INSERT INTO metrics (id, name, kind) SELECT g, 'm' || g, 'gauge' FROM generate_series(1, \(payload.series.count)) g
                """, logger: logger)
        }
        let arrays = "{\(ids.joined(separator: ","))}\t{\(offs.joined(separator: ","))}\t{\(vals.joined(separator: ","))}"
        let samplesPerRow = Double(payload.sampleCount)
        let begin = ContinuousClock.now
        try await db.withClient(logger: logger) { client in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for stream in 0..<streams {
                    group.addTask {
                        try await client.withConnection { conn in
                            try await conn.copyFrom(table: "samples", columns: ["bot_id", "t_start", "epoch", "seq", "metric_ids",
                                                                               "offsets_ms", "vals"], logger: logger) { writer in
                                var buf = ByteBuffer()
                                for r in 0..<rows {
                                    buf.writeString("\(r % bots + 1)\t\(start)\t\(stream + 1)\t\(r + 1)\t\(arrays)\n")
                                    if buf.readableBytes > 1 << 18 { try await writer.write(buf); buf.clear() }
                                }
                                if buf.readableBytes > 0 { try await writer.write(buf) }
                            }
                            // The ledger: one row per (bot, epoch), as the hub keeps it.
                            try await conn.copyFrom(table: "ingest_streams", columns: ["bot_id", "epoch", "stored_through", "batches",
                                                                                      "samples_sent", "samples_stored", "first_stored_at",
                                                                                      "last_stored_at", "hub"], logger: logger) { writer in
                                var buf = ByteBuffer()
                                for b in 0..<bots {
                                    buf.writeString("\(b + 1)\t\(stream + 1)\t\(rows)\t\(rows / bots)\t0\t0\t\(start)\t\(start)\tcopy\n")
                                }
                                try await writer.write(buf)
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        let elapsed = (ContinuousClock.now - begin).inSeconds
        return Double(rows * streams) * samplesPerRow / elapsed
    }
}

/// One load-generating agent: hello, then batches with up to `window` in flight until the deadline. Every batch
/// holds `payload` (the same samples, as `template` does): on protocol 3 the first as a delta batch that defines
/// the metrics, the rest as the delta batch that repeats them, coded once so the sender stays cheap.
func runAgent(bot: String, epoch: UInt64, port: Int, template: BatchFrame, payload: BatchPayload, protocolVersion: UInt16,
              deadline: ContinuousClock.Instant, acked: SharedCounter, window: Int = 4, logger: Logger) async throws {
    let hello = Frame.hello(Hello(protocolVersion: protocolVersion, botID: bot, token: "bench-token", agentVersion: "bench",
                                  bootEpoch: epoch, lastAckedSequence: 0)).encoded()
    let deltas: [ByteBuffer] = try {
        guard protocolVersion >= WireProtocol.deltaBatchVersion else { return [] }
        var encoder = DeltaEncoder()
        return try (1...2 as ClosedRange<UInt64>).map { seq in
            guard let frame = encoder.encode(epoch: epoch, sequence: seq, payload: payload) else {
                throw BenchFailure("the benchmark's batch cannot be a delta batch")
            }
            return frame
        }
    }()
    _ = try await WebSocketClient.connect(url: "ws://127.0.0.1:\(port)/agent/v1", configuration: .init(maxFrameSize: 1 << 21),
                                          logger: logger) { inbound, outbound, _ in
        try await outbound.write(.binary(hello))
        var iterator = inbound.messages(maxSize: 1 << 20).makeAsyncIterator()
        guard case .binary? = try await iterator.next() else { return }   // welcome
        // An ack covers every batch up to its sequence (the hub acknowledges batches that waited together at once).
        var seq: UInt64 = 0, acknowledged: UInt64 = 0, inFlight = 0
        func send() async throws {
            seq += 1
            if !deltas.isEmpty {
                try await outbound.write(.binary(deltas[seq == 1 ? 0 : 1]))
            } else {
                var frame = template
                frame.bootEpoch = epoch
                frame.sequence = seq
                try await outbound.write(.binary(Frame.batch(frame).encoded()))
            }
            inFlight += 1
        }
        while inFlight < window { try await send() }
        while inFlight > 0, let message = try await iterator.next() {
            guard case .binary(let bytes) = message, case .ack(let ack) = try Frame.decode(bytes), ack.sequence > acknowledged else { continue }
            inFlight -= Int(ack.sequence - acknowledged)
            acked.add(Int64(ack.sequence - acknowledged))
            acknowledged = ack.sequence
            while inFlight < window, ContinuousClock.now < deadline { try await send() }
        }
        try await outbound.close(.normalClosure, reason: nil)
    }
}

/// A counter shared by load-generating tasks.
final class SharedCounter: Sendable {
    private let count = Atomic<Int64>(0)
    func add(_ n: Int64) { count.wrappingAdd(n, ordering: .relaxed) }
    var value: Int64 { count.load(ordering: .relaxed) }
}
