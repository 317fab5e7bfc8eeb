import FleetwatchTestSupport
import Foundation
import Testing

/// The short version of the fault suite (scripts/faults runs the long one): every scenario against real
/// hub processes, agents, PostgreSQL clusters of its own and the fault proxy; fails if any invariant breaks.
@Suite(.serialized, .enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct FaultSuiteTests {
    @Test(.timeLimit(.minutes(12)))
    func everyScenarioHolds() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let logs = "/tmp/fleetwatch-faults-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        let artifacts = ProcessInfo.processInfo.environment["FLEETWATCH_TEST_ARTIFACTS"] ?? NSTemporaryDirectory()
        let output = "\(artifacts)/fault-suite-\(UUID().uuidString.prefix(8)).log"
        let suite = try ChildProcess(builtExecutable("fleetwatch-faults"),
                                     ["--database-url", TestDatabase.serverURL!.urlString, "--log-dir", logs,
                                      "--pg-private", "\(root)/scripts/pg-private"], logPath: output)
        let status = await suite.stop(signal: 0, timeout: .seconds(660))
        let log = suite.log
        print(log)
        #expect(status == 0, "the fault suite failed:\n\(log)")
        #expect(log.contains("all 10 scenarios held"))
    }
}
