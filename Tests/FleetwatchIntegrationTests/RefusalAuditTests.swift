@testable import FleetwatchHub
import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Testing

/// The refusal aggregator against a real audit table, with a short window: however refusals fall across
/// windows, new kinds and the overflow row, every one is counted exactly once, and the rows stay bounded.
@Suite(.enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct RefusalAuditTests {
    @Test(.timeLimit(.minutes(2)))
    func aFloodAcrossManyWindowsIsCountedExactlyOnce() async throws {
        let db = try await TestDatabase.create()
        try await db.withClient { client in
            let logger = Logger(label: "test")
            try await Migrator(client: client, logger: logger).migrate()
            let window = Duration.milliseconds(200)
            let refusals = RefusalAudit(audit: AuditLog(client: client, logger: logger), window: window, newKindsPerMinute: 5)
            let group = ServiceGroup(configuration: .init(services: [.init(service: refusals)], logger: logger))
            let running = Task { try await group.run() }
            // 1,500 refusals from 300 addresses, a few of them repeating, spread over about 6 windows while the
            // service flushes every window ÷ 4.
            var sent = 0
            let started = ContinuousClock.now
            for i in 0..<1500 {
                let address = "10.0.\(i % 300 / 250).\(i % 250):\(40000 + i)"
                await refusals.refused(Actor(name: "u\(i % 7)", kind: .anonymous, remote: address),
                                       action: "POST /auth/login", detail: "wrong user name or password")
                sent += 1
                if i % 250 == 0 { try await Task.sleep(for: .milliseconds(230)) }
            }
            let windows = Int(((ContinuousClock.now - started) / window).rounded(.up)) + 2
            await group.triggerGracefulShutdown()
            try await running.value
            let rows = try await client.query("SELECT count(*), COALESCE(sum(repeats), 0)::int8 FROM audit_log WHERE outcome = 'refused'",
                                              logger: logger)
            for try await (count, total) in rows.decode((Int64, Int64).self) {
                #expect(total == Int64(sent), "\(total) of \(sent) refusals counted in \(count) rows")
                // At most two rows per kind that starts a window (5 a window) and one overflow row, per window.
                #expect(count <= Int64(windows * (2 * 5 + 1)), "\(count) rows for \(sent) refusals in \(windows) windows")
                #expect(count < Int64(sent) / 2, "\(count) rows for \(sent) refusals: not aggregated")
            }
            #expect(await refusals.keyCount == 0)
        }
    }
}
