import FleetwatchAlerting
import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import PostgresNIO
import Testing

/// Alert transitions during a database outage reach the alert table only through `reconcile`, in the order they
/// were notified: one given up on while it waited for a pooled connection does not write the table later by itself.
@Suite(.enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct OutageAlertStoreTests {
    let logger = Logger(label: "test")
    let rule = Rule(id: "mem", kind: .above(metric: "memory_usage_mb"), limit: 500, level: .warning, summary: "Memory")

    static func alerts(_ client: PostgresClient, _ logger: Logger) async throws -> [String] {
        try await client.query("SELECT state FROM alerts ORDER BY id", logger: logger).decode(String.self).all()
    }

    @Test(.timeLimit(.minutes(2)))
    func aFireGivenUpOnWhileWaitingForAConnectionLeavesTheTableToReconcile() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["bot-1"], token: "secret", in: db)
        try await db.withClient(maxConnections: 1) { one in
            let health = DatabaseHealth(url: db.url, interval: .milliseconds(200), deadline: .seconds(1), logger: logger)
            let store = OutageAlertStore(inner: PostgresAlertStore(client: one, logger: logger), health: health, logger: logger)
            let (fired, resolved) = try await one.withConnection { _ in
                // The pool's one connection is held: the fire waits for it until the database is noticed down.
                let firing = Task { try await store.fire(bot: "bot-1", rule: rule, value: 600, state: nil) }
                try await Task.sleep(for: .milliseconds(300))
                health.observed(failure: "test: the database is down")
                let fired = try await firing.value
                let resolved = try await store.resolve(bot: "bot-1", rule: rule, value: 100, state: nil)
                return (fired, resolved)
            }
            #expect(fired?.kind == .fired && (fired?.alertID ?? 0) < 0, "notified at once with a provisional id")
            #expect(resolved?.kind == .resolved && (resolved?.alertID ?? 0) < 0)
            #expect(store.waiting == 2)
            // The connection is free again and the database still counts as down: the table stays as it was.
            try await Task.sleep(for: .seconds(2))
            #expect(try await Self.alerts(one, logger).isEmpty, "the given-up fire did not write the table by itself")
            // The database answers again: reconcile writes both, in order.
            let probing = Task { try await health.run() }
            defer { probing.cancel() }
            #expect(try await eventually(.seconds(20)) { health.isUp })
            #expect(await store.reconcile() == 2)
            #expect(try await Self.alerts(one, logger) == ["resolved"])
            #expect(store.waiting == 0)
        }
    }
}
