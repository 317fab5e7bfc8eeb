import FleetwatchProtocol
import FleetwatchTestSupport
import Foundation
import Testing

/// What an operator reads first: the hub's log of a plain start. Every start used to log PostgresNIO's warning
/// "Trying to lease connection from `PostgresClient`, but `PostgresClient.run()` hasn't been called yet", because
/// the hub's first statement raced the start of its pool; the hub now waits for each pool to run before using it.
@Suite(.serialized, .enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct HubStartLogTests {
    /// Four hubs start at once (a start on a busy machine is when the race showed), each with all three pools
    /// (ingest, operators, and a read database: here its own server): none logs a PostgresNIO warning, and each
    /// stores a batch and answers the API.
    @Test(.timeLimit(.minutes(3)))
    func hubStartsLogNoConnectionPoolWarning() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<4 { group.addTask { try await Self.startAndCheck() } }
            try await group.waitForAll()
        }
    }

    static func startAndCheck() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["first"], token: "secret", in: db)
        let hub = try HubUnderTest(database: db)
        try await hub.start(environment: ["FLEETWATCH_READ_DATABASE_URL": db.url.urlString])
        defer { Task { await hub.kill(SIGTERM) } }
        let client = try await ProtocolClient.connect(port: hub.port, bot: "first", token: "secret")
        defer { client.close() }
        let sequence = try await client.sendBatch(ProtocolClient.names("start_", 0..<3))
        var others: [Frame] = []
        #expect(await client.ack(of: sequence, until: .now + .seconds(30), others: &others)?.outcome == .stored)
        let (status, _) = try await api("GET", port: hub.port, path: "/api/bots")
        #expect(status == 200)
        let pool = hub.log.split(separator: "\n").filter { $0.contains("[PostgresNIO]") && !$0.contains(" info ") && !$0.contains(" debug ") }
        #expect(pool.isEmpty, "PostgresNIO logged: \(pool.joined(separator: "\n"))")
        #expect(hub.log.contains("history and reports read from"), "the read database was not used: \(hub.log.suffix(2000))")
    }
}
