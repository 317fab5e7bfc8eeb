import FleetwatchAgent
import FleetwatchProtocol
import FleetwatchTestSupport
import Foundation
import Logging
import PostgresNIO
import Testing

/// `hub.toast_compression` on a real hub and a real PostgreSQL: large batches are stored with lz4 by default (the
/// test server, Debian's, has it), with pglz when the operator says so, and a value the server cannot honour stops
/// the hub at start with a message saying what to set.
@Suite(.serialized, .enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct ToastCompressionTests {
    static let logger = Logger(label: "test")

    /// Sends one batch of 1,500 duration samples and returns how PostgreSQL compressed its values.
    static func storeLargeBatch(config: [String: String]? = nil) async throws -> (compression: String?, log: String) {
        let db = try await TestDatabase.create()
        try await registerBots(["tc-1"], token: "secret", in: db)
        let hub = try HubUnderTest(database: db)
        var extra: [String] = []
        if let config {
            let path = NSTemporaryDirectory() + "fw-toast-\(UUID().uuidString).json"
            let body = config.map { "\"\($0.key)\": \"\($0.value)\"" }.joined(separator: ", ")
            try "{\"hub\": {\(body)}}".write(toFile: path, atomically: true, encoding: .utf8)
            extra = ["--config", path]
        }
        try await hub.start(extra: extra)
        var c = AgentConfiguration(hubURL: hub.agentURL, botID: "tc-1", token: "secret")
        c.flushInterval = .seconds(3600)
        c.processCollector = false
        c.buffer = .init(capacity: 100_000, maxBatchSamples: 5_000)
        var agentLogger = Logger(label: "agent.tc")
        agentLogger.logLevel = .warning
        let agent = try MonitorAgent(configuration: c, logger: agentLogger)
        let task = Task { try await agent.run() }
        for i in 0..<1_500 { agent.duration("tc_latency").record(milliseconds: Double(40 + i % 25)) }
        await agent.flush()
        #expect(try await eventually { let s = await agent.status; return s.unackedBatches == 0 && s.bufferedSamples == 0 })
        task.cancel()
        let methods = try await db.withClient { client in
            var out: [String?] = []
            let rows = try await client.query("""
                SELECT pg_column_compression(s.vals) FROM samples s JOIN bots b ON b.id = s.bot_id
                WHERE b.name = 'tc-1' AND cardinality(s.vals) >= 1000
                """, logger: logger)
            for try await m in rows.decode(String?.self) { out.append(m) }
            return out
        }
        await hub.kill(SIGTERM)
        #expect(methods.count == 1, "one stored row of the large batch: \(methods)")
        return (methods.first ?? nil, hub.log)
    }

    @Test(.timeLimit(.minutes(3)))
    func largeBatchesAreStoredWithLz4ByDefault() async throws {
        let (method, log) = try await Self.storeLargeBatch()
        #expect(method == "lz4")
        #expect(log.contains("large batches are compressed with lz4 as they arrive, merged minutes with pglz"))
    }

    @Test(.timeLimit(.minutes(3)))
    func anOperatorCanKeepPglz() async throws {
        let (method, log) = try await Self.storeLargeBatch(config: ["toast_compression": "pglz"])
        #expect(method == "pglz")
        #expect(log.contains("large batches are compressed with pglz as they arrive"))
    }

    /// A server without lz4 cannot be made here (Debian's has it): the refusal is checked on the method's own
    /// decision (`ConfigurationTests.toastCompression`); a value that is no method at all stops the hub before it starts.
    @Test(.timeLimit(.minutes(2)))
    func anUnknownMethodStopsTheHubWithTheChoices() async throws {
        let db = try await TestDatabase.create()
        let path = NSTemporaryDirectory() + "fw-toast-\(UUID().uuidString).json"
        try #"{"hub": {"toast_compression": "zstd"}}"#.write(toFile: path, atomically: true, encoding: .utf8)
        let hub = try HubUnderTest(database: db)
        try await hub.start(extra: ["--config", path], waitForReady: false)
        #expect(try await eventually(.seconds(20)) { hub.process?.isRunning == false })
        #expect(hub.log.contains("hub.toast_compression 'zstd' is not one of auto, lz4, pglz"), "\(hub.log.suffix(800))")
        #expect(hub.process?.exitCode.map { $0 != 0 } == true, "the hub exits with an error")
    }
}
