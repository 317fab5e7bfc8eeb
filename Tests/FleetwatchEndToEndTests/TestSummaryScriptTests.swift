import Foundation
import Testing

/// scripts/test ends a failed phase with `scripts/test-summary` (CI keeps only the end of the output): the failed
/// tests, the tests that had started and not finished, and the crash. Fed a log in swift-testing's own format.
struct TestSummaryScriptTests {
    @Test func aCrashedRunSaysWhatWasRunningAndWhy() async throws {
        let log = """
            ◇ Test run started.
            ◇ Test finishedFine() started.
            ◇ Test stillRunning() started.
            ◇ Test parameterized(x:) started.
            ◇ Test case passing 1 argument x → 1 to parameterized(x:) started.
            ◇ Test failedOne() started.
            ◇ Test skippedOne() started.
            ✔ Test finishedFine() passed after 0.5 seconds.
            ✔ Test parameterized(x:) with 2 test cases passed after 0.7 seconds.
            ✘ Test failedOne() recorded an issue at X.swift:3:5: Expectation failed
            ✘ Test failedOne() failed after 1.2 seconds with 1 issue.
            ➜ Test skippedOne() skipped: "needs a database"
            2026-12-05T21:46:42+0000 info test: some log line
            Fatal error: Index out of range
            💣 Program crashed: Illegal instruction at 0x00007f4fcecf9361

            Thread 7 "NIO-ELT-0-#1" crashed:

             0  0x000055e971eb7f37 Array.subscript.getter in fleetwatchPackageTests.xctest
             1  0x000055e971eb7f38 LeaseTaker.run(_:) + 12 in fleetwatchPackageTests.xctest at LeaseTaker.swift:120

            Backtrace took 1.0s

            error: Process '/x/fleetwatchPackageTests.xctest' exited with unexpected signal code 4

            """
        let path = "\(DeploymentTests.artifacts)/test-summary-input.log"
        try log.write(toFile: path, atomically: true, encoding: .utf8)
        let (code, out) = try await DeploymentTests.run("\(DeploymentTests.root)/scripts/test-summary", [path], name: "test-summary")
        #expect(code == 0, "\(out)")
        let unfinished = try #require(out.range(of: "-- started and not finished:"), "\(out)")
        let afterUnfinished = out[unfinished.upperBound...]
        #expect(afterUnfinished.contains("stillRunning()"), "\(out)")
        for done in ["finishedFine()", "parameterized(x:)", "skippedOne()", "run"] {
            #expect(!afterUnfinished.split(separator: "\n").contains { $0.trimmingCharacters(in: .whitespaces) == done }, "\(done): \(out)")
        }
        #expect(out.contains("✘ Test failedOne() failed after 1.2 seconds"), "\(out)")
        #expect(out.contains("Fatal error: Index out of range"), "\(out)")
        #expect(out.contains("unexpected signal code 4"), "\(out)")
        #expect(out.contains("LeaseTaker.run(_:) + 12"), "\(out)")
        #expect(!out.contains("Backtrace took"), "the crashed thread's block ends at its frames: \(out)")
    }
}
