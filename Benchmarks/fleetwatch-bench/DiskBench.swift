import ArgumentParser
import FleetwatchProcesses
import FleetwatchProtocol
import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import NIOCore
import PostgresNIO
import WSClient

/// Disk bytes per sample for one-second batches of realistic values, as stored and after the review upkeep
/// merged each bot's closed minutes into one row (schema 0009). The batches go through a real hub.
struct DiskBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "disk", abstract: "Disk bytes per sample at one batch a second, before and after re-chunking.")

    @Option(help: "PostgreSQL server URL (a fresh database is created on it).") var databaseURL: String
    @Option(help: "Bots, each sending its own one-second batches.") var bots = 20
    @Option(help: "Minutes of one-second batches per bot (sent as fast as the hub acknowledges).") var minutes = 10
    @Option(help: "Metrics per batch.") var metrics = 50

    func run() async throws {
        let logger = { var l = Logger(label: "bench"); l.logLevel = .warning; return l }()
        let names = (1...bots).map { "disk-\($0)" }
        let db = try await BenchDatabase.create(server: databaseURL, bots: names, token: "bench-token", logger: logger)
        let port = try freeTCPPort()
        let bin = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("monitor-hub").path
        // The upkeep does not merge during the run: the figures are taken before and after one merge.
        let config = NSTemporaryDirectory() + "fleetwatch-bench-disk.json"
        try #"{"hub": {"max_bytes_per_second": 1073741824}, "retention": {"rechunk_after": 0}}"#.write(toFile: config, atomically: true, encoding: .utf8)
        let hub = try ChildProcess(bin, ["serve", "--database-url", db.url.urlString, "--port", "\(port)", "--log-level", "warning", "--config", config],
                                   logPath: NSTemporaryDirectory() + "fleetwatch-bench-disk-hub.log")
        defer { kill(hub.pid, SIGKILL) }
        for _ in 0..<300 where !LoopbackPort.accepts(port) { try await Task.sleep(for: .milliseconds(100)) }

        // The empty partitions' own pages (a week of daily partitions ahead), taken off the figures below.
        let empty = try await db.sizes(logger: logger)
        // Each bot's minutes of one-second batches, closed minutes in the recent past.
        let ticks = minutes * 60
        let startMs = (Int64(Date().timeIntervalSince1970) / 60 - Int64(minutes) - 5) * 60_000
        var wireBytes = 0, samples = 0
        let acked = SharedCounter()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (i, bot) in names.enumerated() {
                let all = RealisticBatches.payload(metrics: metrics, ticks: ticks, startMs: startMs, seed: UInt64(i + 1))
                var frames: [ByteBuffer] = []
                for t in 0..<ticks {
                    let batch = BatchPayload(series: all.series.map {
                        Series(name: $0.name, kind: $0.kind, timestamps: [$0.timestamps[t]], values: [$0.values[t]])
                    })
                    let frame = Frame.batch(try BatchFrame.make(bootEpoch: UInt64(100 + i), sequence: UInt64(t + 1), payload: batch)).encoded()
                    wireBytes += frame.readableBytes
                    samples += batch.sampleCount
                    frames.append(frame)
                }
                let sending = frames
                group.addTask { try await Self.send(bot: bot, epoch: UInt64(100 + i), port: port, frames: sending, acked: acked, logger: logger) }
            }
            try await group.waitForAll()
        }
        guard acked.value == Int64(names.count * ticks) else {
            throw BenchFailure("\(acked.value) of \(names.count * ticks) batches acknowledged: \(hub.log.suffix(1000))")
        }
        let stored = try await db.sizes(logger: logger)
        report("wire bytes/sample (\(metrics)-sample one-second batches, realistic values)", Double(wireBytes) / Double(samples), "bytes")
        report("disk bytes/sample as stored, a row per batch (\(stored.rows) rows, indexes included)", Double(stored.samples - empty.samples) / Double(samples), "bytes")

        // The review upkeep's merge of the closed minutes, then VACUUM FULL so the size is what the rows take
        // (in a running hub the space freed by a merge is reused by the next minutes' rows).
        let merged = try await db.withClient(logger: logger) { client in
            let from = Date(timeIntervalSince1970: Double(startMs) / 1000 - 60), to = Date()
            let n = try await client.query("SELECT fleetwatch_rechunk(\(from), \(to))", logger: logger).decode(Int.self).first { _ in true } ?? 0
            try await client.query("VACUUM FULL samples", logger: logger)
            return n
        }
        let after = try await db.sizes(logger: logger)
        guard merged > 0, after.rows < stored.rows else { throw BenchFailure("nothing was merged (\(merged) rows written)") }
        report("disk bytes/sample after re-chunking (\(after.rows) rows, indexes included)", Double(after.samples - empty.samples) / Double(samples), "bytes")
        report("batch ledger bytes/sample", Double(after.ledger) / Double(samples), "bytes")
        kill(hub.pid, SIGTERM)
    }

    /// One agent's connection: hello, then `frames` with up to 8 in flight, until all are acknowledged.
    static func send(bot: String, epoch: UInt64, port: Int, frames: [ByteBuffer], acked: SharedCounter, logger: Logger) async throws {
        let hello = Frame.hello(Hello(botID: bot, token: "bench-token", agentVersion: "bench", bootEpoch: epoch, lastAckedSequence: 0)).encoded()
        _ = try await WebSocketClient.connect(url: "ws://127.0.0.1:\(port)/agent/v1", configuration: .init(maxFrameSize: 1 << 21),
                                              logger: logger) { inbound, outbound, _ in
            try await outbound.write(.binary(hello))
            var iterator = inbound.messages(maxSize: 1 << 20).makeAsyncIterator()
            guard case .binary? = try await iterator.next() else { return }   // welcome
            // Sequences are 1-based; an ack covers every batch up to its sequence.
            var next = 0, through = 0
            while next - through < 8, next < frames.count {
                try await outbound.write(.binary(frames[next])); next += 1
            }
            while through < frames.count, let message = try await iterator.next() {
                guard case .binary(let bytes) = message, case .ack(let ack) = try Frame.decode(bytes) else { continue }
                let now = Int(ack.sequence)
                if now > through { acked.add(Int64(now - through)); through = now }
                while next - through < 8, next < frames.count { try await outbound.write(.binary(frames[next])); next += 1 }
            }
            try await outbound.close(.normalClosure, reason: nil)
        }
    }
}
