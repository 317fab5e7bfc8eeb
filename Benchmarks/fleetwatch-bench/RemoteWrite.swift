import AsyncHTTPClient
import FleetwatchProtocol
import FleetwatchTestSupport
import Foundation
import NIOCore

/// Prometheus's remote-write receiver (Debian's `prometheus`, `--web.enable-remote-write-receiver`) fed the shape
/// the ingest benchmark sends fleetwatch: `senders` senders, each with its own `metrics` series, `ticks` samples
/// per series per request, `window` requests in flight, as fast as Prometheus answers.
///
/// The request body (protobuf `WriteRequest`, snappy block format) is built once per sender; each request only
/// rewrites its timestamps in place (6-byte varints, so the bytes keep their places), which keeps the senders far
/// cheaper than the receiver. The snappy stream is a single literal: valid snappy that Prometheus decodes with a
/// plain copy, so it pays less for decompression than for a compressed body.
struct RemoteWriteRun {
    let prometheus: String
    let senders: Int
    let metrics: Int
    let ticks: Int
    let window: Int
    let seconds: Double

    struct Result {
        let samplesPerSecond: Double
        let requestsPerSecond: Double
        /// Samples Prometheus says it appended (`prometheus_tsdb_head_samples_appended_total`).
        let appended: Double
        /// CPU seconds the Prometheus process used per million samples.
        let cpuPerMillion: Double
        /// CPU seconds this process (the senders) used per million samples.
        let senderCPUPerMillion: Double
    }

    func run() async throws -> Result {
        let port = try freeTCPPort()
        let dir = NSTemporaryDirectory() + "fleetwatch-bench-prometheus-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "global: {scrape_interval: 1m}\nscrape_configs: []\n".write(toFile: "\(dir)/prometheus.yml", atomically: true, encoding: .utf8)
        let server = try ChildProcess(prometheus, ["--config.file=\(dir)/prometheus.yml", "--storage.tsdb.path=\(dir)/data",
                                                   "--web.listen-address=127.0.0.1:\(port)", "--web.enable-remote-write-receiver",
                                                   "--log.level=warn"],
                                      logPath: "\(dir).log")
        defer { kill(server.pid, SIGKILL) }
        let client = HTTPClient(eventLoopGroupProvider: .singleton,
                                configuration: .init(connectionPool: .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: senders * window)))
        do {
            let result = try await measure(client: client, port: port, server: server)
            try? await client.shutdown()
            return result
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    private func measure(client: HTTPClient, port: Int, server: ChildProcess) async throws -> Result {
        var ready = false
        for _ in 0..<300 where !ready {
            ready = (try? await client.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/-/ready"), timeout: .seconds(2)).status.code) == 200
            if !ready { try await Task.sleep(for: .milliseconds(100)) }
        }
        guard ready else { throw BenchFailure("Prometheus did not start: \(server.log.suffix(1000))") }

        let cpuBefore = Self.cpuSeconds(pid: server.pid)
        let senderCPUBefore = Self.cpuSeconds(pid: getpid())
        let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
        let start = ContinuousClock.now
        let failures = SharedCounter(), requests = SharedCounter()
        let firstFailure = FirstFailure()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for sender in 0..<senders {
                for lane in 0..<window {
                    group.addTask {
                        // Each lane has its own series so that its timestamps only move forward, and its own connection.
                        var body = WriteRequestBody(sender: sender * window + lane, metrics: metrics, ticks: ticks)
                        var step: Int64 = 0
                        let channel = try await RawHTTPConnection.connect(port: port)
                        let head = RawHTTPConnection.head(path: "/api/v1/write", port: port, length: body.count, headers: [
                            ("Content-Type", "application/x-protobuf"), ("Content-Encoding", "snappy"),
                            ("X-Prometheus-Remote-Write-Version", "0.1.0"),
                        ])
                        try await channel.executeThenClose { inbound, outbound in
                            var answers = inbound.makeAsyncIterator()
                            var reader = RawHTTPConnection()
                            while ContinuousClock.now < deadline {
                                step += 1
                                var payload = body.next(step: step)
                                var request = head
                                request.writeBuffer(&payload)
                                try await outbound.write(request)
                                let answer = try await reader.answer(from: &answers)
                                if answer.status / 100 == 2 {
                                    requests.add(1)
                                } else {
                                    failures.add(1)
                                    firstFailure.set("\(answer.status): \(answer.body)")
                                }
                            }
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        let elapsed = (ContinuousClock.now - start).inSeconds
        let cpu = Self.cpuSeconds(pid: server.pid) - cpuBefore
        let senderCPU = Self.cpuSeconds(pid: getpid()) - senderCPUBefore
        if failures.value > 0 {
            throw BenchFailure("Prometheus refused \(failures.value) of \(failures.value + requests.value) requests; first: \(firstFailure.value ?? "?")")
        }
        let metricsPage = try await client.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/metrics"), timeout: .seconds(10))
        let text = String(buffer: try await metricsPage.body.collect(upTo: 16 << 20))
        let appended = text.split(separator: "\n").first { $0.hasPrefix("prometheus_tsdb_head_samples_appended_total") }
            .flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
        let samples = Double(requests.value) * Double(metrics * ticks)
        guard appended >= samples * 0.999 else {
            throw BenchFailure("Prometheus answered for \(Int(samples)) samples but appended \(Int(appended))")
        }
        return Result(samplesPerSecond: samples / elapsed, requestsPerSecond: Double(requests.value) / elapsed, appended: appended,
                      cpuPerMillion: cpu / samples * 1e6, senderCPUPerMillion: senderCPU / samples * 1e6)
    }

    /// User + system CPU seconds of a process, from /proc.
    static func cpuSeconds(pid: pid_t) -> Double {
        // After the command: state is field 3, utime field 14, stime field 15 (1-based in proc(5)).
        guard let fields = ServerCPU.stat(pid)?.fields, fields.count > 13,
              let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}

/// The first failure seen by any sender.
final class FirstFailure: @unchecked Sendable {
    private let lock = NSLock()
    private var text: String?
    func set(_ s: String) { lock.lock(); if text == nil { text = s }; lock.unlock() }
    var value: String? { lock.lock(); defer { lock.unlock() }; return text }
}

/// One sender's `WriteRequest` (snappy-framed), its timestamps rewritten in place for each request.
struct WriteRequestBody {
    private var bytes: [UInt8]
    /// Where each sample's 6-byte timestamp varint starts, in series order then tick order.
    private var stampOffsets: [Int] = []
    private let ticks: Int
    private let base: Int64

    init(sender: Int, metrics: Int, ticks: Int) {
        self.ticks = ticks
        base = Int64(Date().timeIntervalSince1970 * 1000) - 3_600_000
        var message: [UInt8] = []
        var offsets: [Int] = []
        for m in 0..<metrics {
            var series: [UInt8] = []
            for (name, value) in [("__name__", "bench_metric_\(m)"), ("bot", "bench-\(sender)")] {
                var label: [UInt8] = []
                Self.field(1, Array(name.utf8), into: &label)
                Self.field(2, Array(value.utf8), into: &label)
                Self.field(1, label, into: &series)
            }
            var sampleOffsets: [Int] = []
            for t in 0..<ticks {
                var sample: [UInt8] = [0x09]
                withUnsafeBytes(of: (Double(m * 31 + t) * 1.5).bitPattern.littleEndian) { sample += $0 }
                sample.append(0x10)
                let at = sample.count
                sample += Self.varint6(base)
                series.append(0x12)
                Self.varint(UInt64(sample.count), into: &series)
                sampleOffsets.append(series.count + at)
                series += sample
            }
            message.append(0x0a)
            Self.varint(UInt64(series.count), into: &message)
            offsets += sampleOffsets.map { $0 + message.count }
            message += series
        }
        // Snappy block format: the uncompressed length, then one literal holding everything.
        var framed: [UInt8] = []
        Self.varint(UInt64(message.count), into: &framed)
        let n = message.count - 1
        framed.append(63 << 2)
        withUnsafeBytes(of: UInt32(n).littleEndian) { framed += $0 }
        stampOffsets = offsets.map { $0 + framed.count }
        framed += message
        bytes = framed
    }

    /// The body for request `step`: sample `t` of every series at `base + (step × ticks + t)` ms.
    mutating func next(step: Int64) -> ByteBuffer {
        bytes.withUnsafeMutableBufferPointer { out in
            for (i, offset) in stampOffsets.enumerated() {
                // A 6-byte padded varint, written in place (see `varint6`).
                var v = UInt64(base + step * Int64(ticks) + Int64(i % ticks))
                for k in 0..<6 {
                    out[offset + k] = UInt8(v & 0x7f) | (k < 5 ? 0x80 : 0)
                    v >>= 7
                }
            }
        }
        return ByteBuffer(bytes: bytes)
    }

    /// The body's size (the same for every step).
    var count: Int { bytes.count }

    static func varint(_ v: UInt64, into out: inout [UInt8]) {
        var v = v
        while v >= 0x80 { out.append(UInt8(v & 0x7f) | 0x80); v >>= 7 }
        out.append(UInt8(v))
    }

    /// A varint padded to exactly 6 bytes (protobuf decoders accept padded varints); fits values below 2^42.
    static func varint6(_ v: Int64) -> [UInt8] {
        var v = UInt64(v)
        var out: [UInt8] = []
        for i in 0..<6 {
            out.append(UInt8(v & 0x7f) | (i < 5 ? 0x80 : 0))
            v >>= 7
        }
        return out
    }

    static func field(_ number: UInt8, _ payload: [UInt8], into out: inout [UInt8]) {
        out.append(number << 3 | 2)
        varint(UInt64(payload.count), into: &out)
        out += payload
    }
}
