import FleetwatchTestSupport
import Foundation
import Testing

/// The short version of the load run (`scripts/bench load` runs 1,000 agents for 10 minutes): 100 real
/// agents on one hub for 30 s; every sealed batch must be stored exactly once, with no close, refused
/// sample, dropped sample or API error.
@Suite(.serialized, .enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct LoadTests {
    @Test(.timeLimit(.minutes(5)))
    func aHundredAgentsForThirtySeconds() async throws {
        let artifacts = ProcessInfo.processInfo.environment["FLEETWATCH_TEST_ARTIFACTS"] ?? NSTemporaryDirectory()
        let run = try ChildProcess(builtExecutable("fleetwatch-bench"),
                                   ["load", "--database-url", TestDatabase.serverURL!.urlString, "--agents", "100",
                                    "--seconds", "30", "--warmup", "10"],
                                   logPath: "\(artifacts)/load-\(UUID().uuidString.prefix(8)).log")
        let status = await run.stop(signal: 0, timeout: .seconds(240))
        print(run.log)
        #expect(status == 0, "the load run failed:\n\(run.log)")
        #expect(run.log.contains("RESULT: ok (0 lost, 0 duplicated, 0 errors)"))
    }
}
