import AsyncHTTPClient
import FleetwatchAgent
import NIOCore
import NIOHTTP1
import FleetwatchProtocol
import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import PostgresNIO
import Testing


/// A hub process on its own port and database.
final class HubUnderTest: @unchecked Sendable {
    let database: TestDatabase
    /// The hub's HTTP port. When the harness chose it and another process took it before the hub bound it,
    /// `start` moves the hub to a new port: read it after `start`.
    private(set) var port: Int
    private let choosesPort: Bool
    let name: String
    var process: ChildProcess?
    let logPath: String
    /// The hub's `--data-dir` (where a generated first admin password goes).
    let dataDirectory: String

    init(database: TestDatabase, port: Int? = nil, name: String = "hub-a") throws {
        self.database = database
        self.port = try port ?? freeTCPPort()
        choosesPort = port == nil
        self.name = name
        let dir = ProcessInfo.processInfo.environment["FLEETWATCH_TEST_ARTIFACTS"] ?? NSTemporaryDirectory()
        logPath = "\(dir)/\(database.url.database)-\(name).log"
        dataDirectory = "\(dir)/\(database.url.database)-\(name)-data"
    }

    var agentURL: String { "ws://127.0.0.1:\(port)/agent/v1" }

    func start(extra: [String] = [], environment: [String: String] = [:], waitForReady: Bool = true) async throws {
        for attempt in 1... {
            let logStart = (try? FileManager.default.attributesOfItem(atPath: logPath)[.size] as? Int) ?? 0
            process = try ChildProcess(builtExecutable("monitor-hub"),
                                       ["serve", "--database-url", database.url.urlString, "--port", "\(port)",
                                        "--hub-id", name, "--log-level", "info", "--data-dir", dataDirectory] + extra,
                                       logPath: logPath, environment: environment)
            guard waitForReady else { return }
            do {
                return try await waitReady()
            } catch where attempt < 4 && choosesPort && lostItsPort(logFrom: logStart) {
                // A free port is only free until bound: another process of the parallel suite took this one
                // between `freeTCPPort()` and the hub's bind (seen in CI). Start again on another.
                port = try freeTCPPort()
            }
        }
    }

    /// Whether the hub has ended, its log since `offset` saying that its port was taken.
    private func lostItsPort(logFrom offset: Int) -> Bool {
        guard process?.isRunning == false else { return false }
        let log = process?.log.utf8 ?? "".utf8
        let tail = String(decoding: log.dropFirst(offset), as: UTF8.self)
        return tail.contains("Address already in use")
    }

    /// Starts the hub with `json` as its `--config` file (written beside its log).
    func start(config json: String, extra: [String] = [], environment: [String: String] = [:]) async throws {
        let path = (logPath as NSString).deletingPathExtension + "-config.json"
        try json.write(toFile: path, atomically: true, encoding: .utf8)
        try await start(extra: ["--config", path] + extra, environment: environment)
    }

    func waitReady() async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            if try await Self.httpGet(port: port, path: "/health/ready") == 200 { return }
            guard process?.isRunning == true else { throw TestSupportError("hub exited: \(process?.log.suffix(2000) ?? "")") }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestSupportError("hub not ready after 60 s: \(process?.log.suffix(2000) ?? "")")
    }

    /// Sends `signal` and waits for the hub to end; returns its wait status (0: exited cleanly).
    @discardableResult
    func kill(_ signal: Int32) async -> Int32 {
        await process?.stop(signal: signal) ?? 0
    }

    var log: String { process?.log ?? "" }

    /// Status code of a GET on loopback, or nil if nothing answers.
    static func httpGet(port: Int, path: String) async throws -> Int? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard connected else { return nil }
        // Something else may hold the port and never answer: wait at most 5 s for the status line.
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        _ = request.withCString { send(fd, $0, strlen($0), 0) }
        var buf = [UInt8](repeating: 0, count: 64)
        let n = recv(fd, &buf, 64, 0)
        guard n > 12 else { return nil }
        return Int(String(decoding: buf[9..<12], as: UTF8.self))
    }
}

/// Collects every batch an agent seals, decoded, for comparison with PostgreSQL.
final class SealedLedger: @unchecked Sendable {
    struct Entry: Hashable { let bot: String; let epoch: UInt64; let seq: UInt64; let count: Int; let sum: Double }
    /// A sum to 6 decimals: PostgreSQL adds a batch's values in its own order once its minute is merged.
    static func rounded(_ sum: Double) -> Double { (sum * 1e6).rounded() / 1e6 }
    private let lock = NSLock()
    private var entries: [Entry] = []

    func observer(bot: String) -> @Sendable (SealedBatch) -> Void {
        { batch in
            guard case .batch(let f)? = try? Frame.decode(batch.frame), let p = try? f.inflate(limits: BatchLimits()) else { return }
            let sum = p.series.flatMap(\.values).reduce(0, +)
            self.lock.withLock { self.entries.append(Entry(bot: bot, epoch: batch.epoch, seq: batch.sequence, count: p.sampleCount, sum: SealedLedger.rounded(sum))) }
        }
    }

    var all: [Entry] { lock.withLock { entries } }
}

/// What PostgreSQL holds, batch by batch: (bot, epoch, seq) → (samples, sum of values, rows).
func storedBatches(_ db: TestDatabase) async throws -> [SealedLedger.Entry: Int] {
    try await db.withClient { client in
        // Batch by batch, also once their minute was merged into one row (schema 0009).
        let rows = try await client.query(PostgresQuery(unsafeSQL: StoredBatches.sql), logger: Logger(label: "test"))
        var out: [SealedLedger.Entry: Int] = [:]
        for try await (bot, epoch, seq, count, sum, rows) in rows.decode((String, Int64, Int64, Int64, Double, Int64).self) {
            out[SealedLedger.Entry(bot: bot, epoch: UInt64(epoch), seq: UInt64(seq), count: Int(count), sum: SealedLedger.rounded(sum))] = Int(rows)
        }
        return out
    }
}

/// One HTTP request on loopback through AsyncHTTPClient: (status, body). Sends the test operator token
/// unless `token` says otherwise (nil: no Authorization header).
func api(_ method: String, port: Int, path: String, body: String? = nil, token: String? = operatorToken,
         headers: [(String, String)] = []) async throws -> (Int, String) {
    let (status, _, text) = try await http(method, port: port, path: path, body: body, token: token, headers: headers)
    return (status, text)
}

/// Like `api`, with the response headers.
func http(_ method: String, port: Int, path: String, body: String? = nil, token: String? = operatorToken,
          headers: [(String, String)] = []) async throws -> (Int, HTTPHeaders, String) {
    var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
    request.method = HTTPMethod(rawValue: method)
    if let body {
        request.body = .bytes(ByteBuffer(string: body))
        request.headers.add(name: "Content-Type", value: "application/json")
    }
    if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
    for (name, value) in headers { request.headers.add(name: name, value: value) }
    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
    let data = try await response.body.collect(upTo: 16 << 20)
    return (Int(response.status.code), response.headers, String(buffer: data))
}

/// A JSON document as Foundation objects.
func jsonObject(_ s: String) -> Any? { try? JSONSerialization.jsonObject(with: Data(s.utf8)) }
