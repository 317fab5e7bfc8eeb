import Foundation

/// Where `scripts/test` runs a suite. Most run together, in parallel; `quiet` suites need the machine or the test
/// process to themselves — a good bot getting through while a hostile one floods the hub, a test process that
/// must answer heartbeats within two short intervals, the process's resident memory — which dozens of suites
/// running beside them would blur, so they run after the rest, alone (`FLEETWATCH_TEST_PHASE=quiet`); without
/// the variable (a single `swift test`, `--filter`) everything runs.
public enum TestPhase: String, Sendable { case main, quiet }

/// Whether a suite of `phase` runs in this run of the tests.
public func runsHereNow(_ phase: TestPhase) -> Bool {
    guard let current = ProcessInfo.processInfo.environment["FLEETWATCH_TEST_PHASE"].flatMap(TestPhase.init(rawValue:)) else { return true }
    return current == phase
}
