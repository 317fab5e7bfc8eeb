@testable import FleetwatchHub
import Foundation
import NIOCore
import Synchronization
import Testing

/// The readers' waits: one connection's backlog, and the backlog of all connections together.
struct IngestBacklogTests {
    final class Flag: Sendable {
        let value = Mutex(false)
        var isSet: Bool { value.withLock { $0 } }
    }

    /// Whether the waiting task is still waiting after the others had time to run.
    static func stillWaiting(_ done: Flag) async -> Bool {
        for _ in 0..<50 { await Task.yield() }
        try? await Task.sleep(for: .milliseconds(50))
        return !done.isSet
    }

    static func waitInBackground(_ activity: ConnectionActivity) -> (Task<Void, Never>, Flag) {
        let done = Flag()
        let task = Task { await activity.awaitRoom(); done.value.withLock { $0 = true } }
        return (task, done)
    }

    /// A message larger than the connection's limit is handed on and handled; the reader waits only until it
    /// has been (it used to wait for it before handing it on: forever).
    @Test func aMessageLargerThanTheLimitIsHandledNotWaitedOn() async {
        let activity = ConnectionActivity(maxPendingBytes: 1000)
        await activity.received(bytes: 5000)
        let (task, done) = Self.waitInBackground(activity)
        #expect(await Self.stillWaiting(done))
        activity.handled(bytes: 5000)
        await task.value
        #expect(done.isSet)
    }

    /// Empty and tiny messages count at least `minimumMessageCost` each: a bot flooding them while its loop waits
    /// for a slow store fills its limit and its reader stops (empty ones used to count nothing and queue without
    /// bound); the byte rate charges them the same.
    @Test func emptyMessagesFillTheLimitToo() async {
        let empty = ByteBuffer()
        #expect(ConnectionActivity.pendingCost(of: empty) == ConnectionActivity.minimumMessageCost)
        #expect(ConnectionActivity.cost(of: empty) == ConnectionActivity.minimumMessageCost)
        #expect(ConnectionActivity.pendingCost(of: ByteBuffer(repeating: 1, count: 1000)) == 1000)
        let activity = ConnectionActivity(maxPendingBytes: 10 * ConnectionActivity.minimumMessageCost)
        for _ in 0...10 { await activity.received(bytes: ConnectionActivity.pendingCost(of: empty)) }
        let (task, done) = Self.waitInBackground(activity)
        #expect(await Self.stillWaiting(done), "eleven empty messages did not fill a limit of ten")
        activity.handled(bytes: 11 * ConnectionActivity.pendingCost(of: empty))
        await task.value
        #expect(done.isSet)
    }

    /// Over the hub-wide limit, another connection's reader waits until handling brings the sum back.
    @Test func theHubWideLimitHoldsEveryReaderUntilHandlingCatchesUp() async {
        let backlog = IngestBacklog(limit: 100)
        let a = ConnectionActivity(maxPendingBytes: 1000, backlog: backlog)
        let b = ConnectionActivity(maxPendingBytes: 1000, backlog: backlog)
        await a.received(bytes: 80)
        await a.awaitRoom()                       // 80 of 100: goes on at once
        await b.received(bytes: 50)               // 130 of 100
        let (taskB, doneB) = Self.waitInBackground(b)
        #expect(await Self.stillWaiting(doneB))
        #expect(backlog.figures.parked == 1)
        a.handled(bytes: 80)                      // 50 of 100
        await taskB.value
        #expect(backlog.figures.bytes == 50)
        #expect(backlog.figures.parked == 0)
        #expect(backlog.figures.peak == 130)
        b.handled(bytes: 50)
        #expect(backlog.figures.bytes == 0)
    }

    /// A connection that ends with messages still waiting takes them off the hub-wide sum, and releases its
    /// own reader; late calls from its reader or loop change nothing.
    @Test func anEndingConnectionGivesItsBytesBack() async {
        let backlog = IngestBacklog(limit: 100)
        let a = ConnectionActivity(maxPendingBytes: 1000, backlog: backlog)
        let b = ConnectionActivity(maxPendingBytes: 1000, backlog: backlog)
        await a.received(bytes: 90)
        await a.received(bytes: 40)               // a's own reader now waits too
        let (taskA, doneA) = Self.waitInBackground(a)
        await b.received(bytes: 10)
        let (taskB, doneB) = Self.waitInBackground(b)
        #expect(await Self.stillWaiting(doneA))
        #expect(await Self.stillWaiting(doneB))
        a.finish()
        await taskA.value
        await taskB.value
        #expect(backlog.figures.bytes == 10)
        a.handled(bytes: 90)                      // the loop finishing a message after the end
        await a.received(bytes: 500)              // the reader after the end
        #expect(backlog.figures.bytes == 10)
        b.handled(bytes: 10)
        #expect(backlog.figures.bytes == 0)
    }

    /// Batches waiting for alert evaluation past their limit hold every reader, even with the bytes far within
    /// theirs, until evaluation brings them down to 90 % of the limit (not the first batch under it: every
    /// reader would read a message at once and go over again).
    @Test func unevaluatedBatchesHoldEveryReaderUntilEvaluationCatchesUp() async {
        let backlog = IngestBacklog(limit: 1 << 20, maxUnevaluated: 10)
        let a = ConnectionActivity(maxPendingBytes: 1000, backlog: backlog)
        for _ in 0..<11 { backlog.submitted() }   // 11 of 10
        await a.received(bytes: 10)
        let (task, done) = Self.waitInBackground(a)
        #expect(await Self.stillWaiting(done))
        #expect(backlog.figures.parked == 1)
        a.handled(bytes: 10)                       // the bytes are not what it waits for
        #expect(await Self.stillWaiting(done))
        backlog.evaluated()                        // 10 of 10: within the limit, above 90 % of it
        #expect(await Self.stillWaiting(done))
        backlog.evaluated()                        // 9 of 10
        await task.value
        #expect(backlog.figures.parked == 0)
        #expect(backlog.unevaluated == 9)
        for _ in 0..<9 { backlog.evaluated() }
        #expect(backlog.unevaluated == 0)
        await a.received(bytes: 10)
        await a.awaitRoom()                        // within both: goes on at once
    }

    /// Without a hub-wide limit (and within its own), a reader never waits.
    @Test func withinTheLimitsNothingWaits() async {
        let activity = ConnectionActivity(maxPendingBytes: 1000, backlog: IngestBacklog(limit: 10_000))
        for _ in 0..<5 {
            await activity.received(bytes: 100)
            await activity.awaitRoom()
        }
        activity.handled(bytes: 500)
    }
}
