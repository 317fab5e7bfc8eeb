import FleetwatchAgent
import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import PostgresNIO
import Testing

/// The operators' requests have connections of their own: with every connection of the ingest pool stuck (a fleet's
/// connections ending, each giving its lease back behind a lock, as against a slow database), the API still answers,
/// its token checked.
@Suite(.enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct OperatorPoolTests {
    @Test(.timeLimit(.minutes(3)))
    func theAPIAnswersWhileEveryIngestConnectionIsStuck() async throws {
        let db = try await TestDatabase.create()
        let names = (1...24).map { "pool-bot-\($0)" }
        try await registerBots(names, token: "secret", in: db)
        // Long enough that PostgreSQL does not cancel the stuck hellos while the test looks.
        let config = #"{"hub": {"statement_timeout": 120}}"#
        let hub = try HubUnderTest(database: db)
        try await hub.start(config: config)
        defer { Task { await hub.kill(SIGTERM) } }

        // The fleet connects; then `bots` is locked and every agent goes away. Each connection's end gives its bot's
        // lease back (UPDATE bots …): behind this lock each one holds an ingest connection (hellos no longer can: at
        // most two statements let them in, `LeaseTaker`); reads of `bots` (the fleet overview) are not blocked by it.
        let logger = Logger(label: "test")
        var agents: [Task<Void, any Error>] = []
        defer { agents.forEach { $0.cancel() } }
        for name in names {
            let agent = try await EmergencyStopTests.agent(name, hub: hub.agentURL, handler: nil)
            agents.append(Task { try await agent.run() })
        }
        #expect(try await eventually(.seconds(60)) {
            try await EmergencyStopTests.scalar(db, Int64.self, "SELECT count(*) FROM bots WHERE connection_id IS NOT NULL") == Int64(names.count)
        })
        let locker = try await PostgresConnection.connect(configuration: try db.url.connectionConfiguration(endpoint: db.url.endpoints[0]),
                                                          id: 1, logger: logger)
        try await locker.query("BEGIN", logger: logger)
        try await locker.query("LOCK TABLE bots IN EXCLUSIVE MODE", logger: logger)
        let lockerPID = try await locker.query("SELECT pg_backend_pid()", logger: logger).decode(Int32.self).all()[0]

        // A connection dropped unclosed stops the test process: closed on every way out.
        do {
            agents.forEach { $0.cancel() }

            // The ingest pool (16 connections) waits behind the lock: nearly all of them giving a lease back (the others
            // hold the hub's own periodic work, itself in the queue), and the other connections' ends wait for one.
            let stuck: @Sendable () async throws -> Int64 = {
                try await EmergencyStopTests.scalar(db, Int64.self, """
                    SELECT count(*) FROM pg_stat_activity
                    WHERE datname = \(db.url.database) AND wait_event_type = 'Lock' AND \(lockerPID) = ANY(pg_blocking_pids(pid))
                    """) ?? 0
            }
            let usedUp = try await eventually(.seconds(60)) { try await stuck() >= 14 }
            let stuckNow = try await stuck()
            #expect(usedUp, "the connections' ends did not use up the ingest pool: \(stuckNow) statements stuck")

            // The operators' pool answers: token check, the fleet from PostgreSQL, the status.
            let (status, body) = try await api("GET", port: hub.port, path: "/api/bots", token: viewerToken)
            #expect(status == 200, "\(body.prefix(300))")
            #expect((jsonObject(body) as? [[String: Any]])?.count == names.count)
            #expect(try await api("GET", port: hub.port, path: "/api/status", token: viewerToken).0 == 200)
            #expect(try await stuck() >= 14, "the ingest pool was still stuck while the API answered")
        } catch {
            try? await locker.close()
            throw error
        }

        // Lock released: every lease is given back.
        try await locker.query("COMMIT", logger: logger)
        try await locker.close()
        #expect(try await eventually(.seconds(60)) {
            try await EmergencyStopTests.scalar(db, Int64.self, "SELECT count(*) FROM bots WHERE connection_id IS NOT NULL") == 0
        })
    }
}
