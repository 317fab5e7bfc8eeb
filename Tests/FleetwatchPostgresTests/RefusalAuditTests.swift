@testable import FleetwatchHub
import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Testing

/// The refusal aggregator against a real audit table, on a clock moved by hand: however refusals fall across
/// windows, new kinds and the overflow row, every one is counted exactly once, at most 2 × 5 + 1 rows are
/// written a window, and what is still counted when the hub stops is written then.
@Suite(.enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct RefusalAuditTests {
    @Test(.timeLimit(.minutes(2)))
    func aFloodAcrossManyWindowsIsCountedExactlyOnce() async throws {
        let db = try await TestDatabase.create()
        try await db.withClient { client in
            let logger = Logger(label: "test")
            try await Migrator(client: client, logger: logger).migrate()
            let clock = ManualClock()
            let refusals = RefusalAudit(audit: AuditLog(client: client, logger: logger), window: .seconds(60), newKindsPerMinute: 5,
                                        clock: clock)
            // 1,500 refusals from 300 addresses in six windows of 250; the minute's flush after each.
            var sent = 0
            for window in 0..<6 {
                for i in 0..<250 {
                    let n = window * 250 + i
                    await refusals.refused(Actor(name: "u\(n % 7)", kind: .anonymous, remote: "10.0.\(n % 300 / 250).\(n % 250):\(40000 + n)"),
                                           action: "POST /auth/login", detail: "wrong user name or password")
                    sent += 1
                }
                clock.advance(ms: 60_000)
                await refusals.flush()
            }
            // Counted refusals still held when the hub stops are written by the service as it stops.
            for n in 0..<40 {
                await refusals.refused(Actor(name: "late", kind: .anonymous, remote: "10.1.0.\(n):1"), action: "POST /auth/login",
                                       detail: "wrong user name or password")
                sent += 1
            }
            #expect(await refusals.keyCount > 0)
            let group = ServiceGroup(configuration: .init(services: [.init(service: refusals)], logger: logger))
            let running = Task { try await group.run() }
            try await Task.sleep(for: .milliseconds(100))
            await group.triggerGracefulShutdown()
            try await running.value
            #expect(await refusals.keyCount == 0)
            let rows = try await client.query("SELECT count(*), COALESCE(sum(repeats), 0)::int8 FROM audit_log WHERE outcome = 'refused'",
                                              logger: logger)
            for try await (count, total) in rows.decode((Int64, Int64).self) {
                #expect(total == Int64(sent), "\(total) of \(sent) refusals counted in \(count) rows")
                #expect(count <= 7 * (2 * 5 + 1), "\(count) rows for \(sent) refusals in 7 windows")
            }
        }
    }
}
