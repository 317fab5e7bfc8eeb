import FleetwatchAgent
import FleetwatchProcesses
import FleetwatchProtocol
import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import PostgresNIO

/// What every scenario shares: fresh databases, hub processes, agents whose every sealed batch is
/// recorded, and the comparison of those batches with what PostgreSQL holds.
struct Harness: Sendable {
    let server: DatabaseURL
    let binDir: String
    let logDir: String
    let logger: Logger

    func database(_ bots: [String], token: String = "fault-token") async throws -> TestDatabase {
        let db = try await TestDatabase.create(on: server, prefix: "fw_fault_", logger: logger)
        let logger = self.logger
        try await db.withClient(logger: logger) { client in
            try await Migrator(client: client, logger: logger).migrate()
            try await PartitionMaintainer(client: client, logger: logger).ensureWindow()
            try await client.query("""
                INSERT INTO bots (name, token_hash) SELECT unnest(\(bots)::text[]), \(BotToken.hash(token))
                """, logger: logger)
            try await client.query("""
                INSERT INTO api_tokens (name, role, token_hash) VALUES ('fault-operator', 'operator', \(BotToken.hash(Self.operatorToken)))
                """, logger: logger)
        }
        return db
    }

    static let operatorToken = "fwo_fault-suite-operator"

    /// A hub process; `config` is JSON written to a file and passed with --config.
    func hub(_ db: TestDatabase, port: Int, name: String, config: String? = nil, databaseURL: String? = nil) throws -> ChildProcess {
        // Each replica its own data directory (its break-glass journal), the same one again when restarted.
        var args = ["serve", "--database-url", databaseURL ?? db.url.urlString, "--port", "\(port)", "--hub-id", name, "--log-level", "notice",
                    "--data-dir", "\(logDir)/\(db.url.database)-\(name)-data"]
        if let config {
            let path = "\(logDir)/\(db.url.database)-\(name).json"
            try config.write(toFile: path, atomically: true, encoding: .utf8)
            args += ["--config", path]
        }
        return try ChildProcess("\(binDir)/monitor-hub", args, logPath: "\(logDir)/\(db.url.database)-\(name).log",
                                environment: ["FLEETWATCH_ADMIN_PASSWORD": "fault-suite-password"])
    }

    func waitReady(port: Int, timeout: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if LoopbackPort.accepts(port) { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw FaultError("nothing listens on \(port) after \(timeout)")
    }

    /// An in-process agent whose sealed batches go to `ledger`.
    func agent(_ bot: String, port: Int, ledger: Ledger, capacity: Int = 1_000_000, flush: Duration = .milliseconds(200),
               token: String = "fault-token", spool: String? = nil) throws -> MonitorAgent {
        var c = AgentConfiguration(hubURL: "ws://127.0.0.1:\(port)/agent/v1", botID: bot, token: token)
        c.flushInterval = flush
        c.processCollector = false
        c.backoff = Backoff(initial: .milliseconds(50), maximum: .milliseconds(500))
        c.buffer = .init(capacity: capacity, maxBatchSamples: min(200, max(capacity / 4, 1)))
        c.spoolDirectory = spool
        var l = Logger(label: "agent.\(bot)")
        l.logLevel = .critical
        return try MonitorAgent(configuration: c, logger: l, onSeal: ledger.observer(bot))
    }

    /// Waits until every agent has nothing buffered or unacknowledged and returns the ledger as it was then:
    /// taken between two checks that found every agent idle, so a batch sealed meanwhile (a timer flush) is
    /// either in it and acknowledged, or not in it.
    @discardableResult
    func drain(_ agents: [MonitorAgent], ledger: Ledger? = nil, timeout: Duration = .seconds(120)) async throws -> [BatchKey: Int] {
        for a in agents { await a.flush() }
        func idle() async -> Bool {
            for a in agents {
                let s = await a.status
                if s.unackedBatches > 0 || s.bufferedSamples > 0 { return false }
            }
            return true
        }
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if await idle() {
                let snapshot = ledger?.all ?? [:]
                if await idle() { return snapshot }
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        var busy: [String] = []
        for a in agents {
            let s = await a.status
            if s.unackedBatches > 0 || s.bufferedSamples > 0 {
                busy.append("connected \(s.connected), buffered \(s.bufferedSamples), unacked \(s.unackedBatches), close \(s.lastCloseCode.map(String.init) ?? "-"), error \(s.lastError ?? "-")")
            }
        }
        throw FaultError("agents still hold unacknowledged batches after \(timeout): \(busy.joined(separator: "; "))")
    }

    /// PostgreSQL's batches: (bot, epoch, seq) → (samples, copies).
    func stored(_ db: TestDatabase) async throws -> [BatchKey: (samples: Int, copies: Int)] {
        let logger = self.logger
        return try await db.withClient(logger: logger) { client in
            // Batch by batch, also once their minute was merged into one row by the review upkeep (schema 0009).
            let rows = try await client.query(PostgresQuery(unsafeSQL: StoredBatches.sql), logger: logger)
            var out: [BatchKey: (Int, Int)] = [:]
            for try await (bot, epoch, seq, n, _, copies) in rows.decode((String, Int64, Int64, Int64, Double, Int64).self) {
                out[BatchKey(bot: bot, epoch: UInt64(epoch), seq: UInt64(seq))] = (Int(n), Int(copies))
            }
            return out
        }
    }

    /// Compares what was sealed (and not dropped) with what is stored.
    func compare(_ expected: [BatchKey: Int], _ db: TestDatabase) async throws -> Count {
        let stored = try await stored(db)
        var c = Count()
        c.expected = expected.count
        c.expectedSamples = expected.values.reduce(0, +)
        for (key, samples) in expected {
            guard let row = stored[key] else { c.lost += 1; continue }
            if row.copies > 1 { c.duplicated += 1 }
            if row.samples != samples { c.mismatched += 1 }
        }
        c.stored = stored.count
        c.storedSamples = stored.values.reduce(0) { $0 + $1.samples }
        c.unexpected = Set(stored.keys).subtracting(expected.keys).count
        return c
    }

    func scalar<T: PostgresDecodable & Sendable>(_ db: TestDatabase, _ type: T.Type, _ query: PostgresQuery) async throws -> T?
    where T._DecodableType == T {
        let logger = self.logger
        return try await db.withClient(logger: logger) { client in
            for try await v in try await client.query(query, logger: logger).decode(Optional<T>.self) { return v }
            return nil
        }
    }
}

struct BatchKey: Hashable, Sendable {
    let bot: String
    let epoch: UInt64
    let seq: UInt64
}

/// Every batch the agents sealed, and those their buffers dropped.
final class Ledger: @unchecked Sendable {
    private let lock = NSLock()
    private var sealed: [BatchKey: Int] = [:]

    func observer(_ bot: String) -> @Sendable (SealedBatch) -> Void {
        { batch in self.lock.withLock { self.sealed[BatchKey(bot: bot, epoch: batch.epoch, seq: batch.sequence)] = batch.sampleCount } }
    }

    var all: [BatchKey: Int] { lock.withLock { sealed } }
}

/// The outcome of a comparison.
struct Count: CustomStringConvertible {
    var expected = 0, expectedSamples = 0, stored = 0, storedSamples = 0, lost = 0, duplicated = 0, mismatched = 0, unexpected = 0
    var clean: Bool { lost == 0 && duplicated == 0 && mismatched == 0 }
    var description: String {
        "\(expected) batches (\(expectedSamples) samples) expected, \(stored) stored: \(lost) lost, \(duplicated) duplicated, \(mismatched) with other samples"
    }
}

/// Agents streaming as bots do: each runs, and `recordLoop` records into them, until `stop`.
struct Streaming {
    let runs: [Task<Void, any Error>]
    /// Cancel it to stop recording (the agents go on sending what they hold).
    let recorder: Task<Void, Never>

    init(_ agents: [MonitorAgent]) {
        runs = agents.map { a in Task { try await a.run() } }
        recorder = recordLoop(agents)
    }

    func stop() {
        runs.forEach { $0.cancel() }
        recorder.cancel()
    }
}

/// Records a few reference metrics on a set of agents every `interval` until cancelled.
func recordLoop(_ agents: [MonitorAgent], interval: Duration = .milliseconds(50)) -> Task<Void, Never> {
    Task {
        var round = 0
        while !Task.isCancelled {
            round += 1
            for a in agents {
                a.counter("trades_executed").increment()
                a.gauge("total_pnl").set(Double(round) * 0.01)
                a.gauge("memory_usage_mb").set(200 + Double(round % 10))
            }
            try? await Task.sleep(for: interval)
        }
    }
}

