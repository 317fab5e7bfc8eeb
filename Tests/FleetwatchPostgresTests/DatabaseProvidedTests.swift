import FleetwatchTestSupport
import Foundation
import Testing

/// This target's suites are skipped without `FLEETWATCH_TEST_DATABASE_URL` (a developer's bare `swift test`);
/// under the test command (`scripts/test`, which sets `FLEETWATCH_TEST_PHASE`) a missing database fails instead.
struct DatabaseProvidedTests {
    @Test func theTestCommandProvidesTheDatabase() {
        let underTestCommand = ProcessInfo.processInfo.environment["FLEETWATCH_TEST_PHASE"] != nil
        #expect(!underTestCommand || hasDatabase,
                "scripts/test runs this target against its PostgreSQL: FLEETWATCH_TEST_DATABASE_URL is missing or not a database URL")
    }
}
