@testable import FleetwatchHub
import Testing

@Suite struct SlidingWindowTests {
    @Test func allowsAtMostLimitInAnyWindowPerKey() {
        var w = SlidingWindow(limit: 2, windowMs: 1000)
        let results = [("alice", 0), ("alice", 10), ("alice", 20), ("bob", 20), ("alice", 999), ("alice", 1000), ("alice", 1005)]
            .map { w.allow($0.0, nowMs: Int64($0.1)) }
        // Two per second for alice; bob has his own limit; at 1000 ms the first event has left the window.
        #expect(results == [true, true, false, true, false, true, false])
    }
}
