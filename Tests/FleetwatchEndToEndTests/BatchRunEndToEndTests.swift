import FleetwatchProtocol
import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import PostgresNIO
import Testing

/// Against a real hub and PostgreSQL: batches that queued on a connection while its store was held up are
/// stored together and acknowledged with fewer acks than batches, each batch exactly once.
@Suite(.enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct BatchRunEndToEndTests {
    @Test(.timeLimit(.minutes(2)))
    func batchesThatWaitedTogetherAreStoredOnceWithOneAck() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["runner"], token: "secret", in: db)
        let hub = try HubUnderTest(database: db)
        // This client sends no heartbeats, and on a busy machine the wait for the lock below can outlast two default
        // intervals (10 s): the hub would then rightly close it for silence before its batches are sent. Likewise the
        // statement waiting on the lock must not reach the default statement timeout (30 s; it did once in CI, on a
        // machine where seeing the wait took that long), or the batch is rightly not stored.
        try await hub.start(config: #"{"hub": {"heartbeat_interval": 60, "statement_timeout": 600}}"#)
        defer { Task { await hub.kill(SIGTERM) } }
        let client = try await ProtocolClient.connect(port: hub.port, bot: "runner", token: "secret")
        defer { client.close() }
        var others: [Frame] = []
        let payload = { ProtocolClient.names("run_metric_", 0..<15) }
        let first = try await client.sendBatch(payload())
        #expect(await client.ack(of: first, until: .now + .seconds(30), others: &others)?.outcome == .stored)

        // The ledger locked: the next batch's statement waits, and the ones after it queue on the connection.
        let logger = Logger(label: "test")
        let locker = try await PostgresConnection.connect(configuration: try db.url.connectionConfiguration(endpoint: db.url.endpoints[0]),
                                                          id: 1, logger: logger)
        var last: UInt64 = 0
        do {
            try await locker.query("BEGIN", logger: logger)
            try await locker.query("LOCK TABLE ingest_streams IN EXCLUSIVE MODE", logger: logger)
            let lockerPID = try await locker.query("SELECT pg_backend_pid()", logger: logger).decode(Int32.self).all()[0]
            _ = try await client.sendBatch(payload())
            #expect(try await eventually(.seconds(30)) {
                try await EmergencyStopTests.scalar(db, Int64.self, """
                    SELECT count(*) FROM pg_stat_activity
                    WHERE datname = \(db.url.database) AND \(lockerPID) = ANY(pg_blocking_pids(pid))
                    """) ?? 0 >= 1
            }, "the batch's statement did not wait for the lock")
            for _ in 0..<8 { last = try await client.sendBatch(payload()) }
            try await Task.sleep(for: .seconds(1))   // read by the hub while its store waits
        } catch {
            try? await locker.close()
            throw error
        }
        try await locker.query("COMMIT", logger: logger)
        try await locker.close()

        others = []
        let ack = await client.ack(of: last, until: .now + .seconds(30), others: &others)
        #expect(ack?.sequence == last && ack?.outcome == .stored)
        let earlier = others.compactMap { f -> UInt64? in if case .ack(let a) = f { a.sequence } else { nil } }
        // The batch that waited on the lock is acknowledged alone, first; the eight behind it (handed to the writer up to
        // two runs at a time while it waited) with fewer acks than batches, in order.
        #expect(earlier.first == first + 1, "acks before the last: \(earlier)")
        #expect(zip(earlier, earlier.dropFirst()).allSatisfy { $0 < $1 } && earlier.last.map { $0 < last } ?? false, "acks in order: \(earlier)")
        #expect(earlier.count + 1 < Int(last - first), "\(last - first) batches, \(earlier.count + 1) acks: \(earlier)")
        #expect(try await BotIsolationTests.count(db, "SELECT count(*) FROM samples") == Int64(last))
        #expect(try await BotIsolationTests.count(db, "SELECT count(DISTINCT seq) FROM samples") == Int64(last))
        #expect(try await BotIsolationTests.count(db, "SELECT batches FROM ingest_streams") == Int64(last))
        #expect(try await BotIsolationTests.count(db, "SELECT samples_stored FROM ingest_streams") == Int64(last) * 15)
    }
}
