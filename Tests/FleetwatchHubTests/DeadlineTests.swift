@testable import FleetwatchHub
import Synchronization
import Testing

/// A bounded wait answers at its limit without waiting for the work (a query on a hanging connection).
struct DeadlineTests {
    final class Gate: Sendable {
        let waiter = Mutex<CheckedContinuation<Void, Never>?>(nil)
        let finished = Mutex(false)
        func wait() async { await withCheckedContinuation { c in waiter.withLock { $0 = c } } }
        func open() { waiter.withLock { $0?.resume(); $0 = nil } }
    }

    @Test func answersNilAtTheLimitWhileTheWorkStillRuns() async {
        let gate = Gate()
        let value = await firstWithin(.milliseconds(50)) { () async -> Int? in
            await gate.wait()                     // never opened before the call returns
            gate.finished.withLock { $0 = true }
            return 1
        }
        #expect(value == nil)
        #expect(!gate.finished.withLock { $0 })  // the call did not wait for the work
        while gate.waiter.withLock({ $0 == nil }) { await Task.yield() }
        gate.open()
    }

    @Test func answersTheWorksResultWhenItComesFirst() async {
        #expect(await firstWithin(.seconds(60)) { 42 } == 42)
        #expect(await firstWithin(.seconds(60)) { () async -> Int? in nil } == nil)
    }
}
