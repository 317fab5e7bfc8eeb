@testable import FleetwatchHub
import FleetwatchProtocol
import FleetwatchTestSupport
import Testing

/// A connection's times come from an injected clock: the byte rate's bucket, when the agent was last heard and
/// when the hub must send a heartbeat of its own.
struct ConnectionClockTests {
    @Test func theBucketLetsABurstThroughThenChargesTheRate() {
        var bucket = TokenBucket(bytesPerSecond: 1_000, burst: 2_000, nowMs: 0)
        #expect(bucket.take(2_000, nowMs: 0) == 0)            // the burst
        #expect(bucket.take(500, nowMs: 0) == 501)            // 500 bytes in debt: half a second (+1 ms rounding)
        #expect(bucket.take(0, nowMs: 500) == 0)              // paid off after half a second
        #expect(bucket.take(1_000, nowMs: 1_501) == 0)        // refilled at 1,000 bytes/s
        #expect(bucket.take(10_000, nowMs: 100_000) == 8_001) // refills only up to the burst
    }

    @Test func aClockThatGoesBackRefillsNothing() {
        var bucket = TokenBucket(bytesPerSecond: 1_000, burst: 1_000, nowMs: 10_000)
        #expect(bucket.take(1_000, nowMs: 10_000) == 0)
        #expect(bucket.take(500, nowMs: 5_000) == 501)
        #expect(bucket.tokens == -500)
        #expect(bucket.take(0, nowMs: 5_600) == 0)            // refills again from the new reading: 600 ms later
        #expect(bucket.tokens == 100)
    }

    @Test func anUnlimitedRateNeverWaits() {
        var bucket = TokenBucket(bytesPerSecond: Double(Int.max), burst: Double(Int.max), nowMs: 0)
        #expect(bucket.take(1e18, nowMs: 0) == 0)
    }

    @Test func theAgentIsHeardAtTheClocksTimeAndHeartbeatsFallDueByIt() async {
        let clock = ManualClock()
        let activity = ConnectionActivity(maxPendingBytes: 1_000, clock: clock, rateClock: ManualClock())
        let start = clock.nowMs
        clock.advance(ms: 7_000)
        #expect(activity.lastReceivedMs == start)             // silent for seven seconds
        activity.heard()
        #expect(activity.lastReceivedMs == start + 7_000)

        // The loop is inside a slow message: a heartbeat is due once nothing was written for the interval.
        activity.begin()
        activity.sent()
        clock.advance(ms: 999)
        #expect(!activity.heartbeatDue(intervalMs: 1_000))
        clock.advance(ms: 1)
        #expect(activity.heartbeatDue(intervalMs: 1_000))
        #expect(!activity.heartbeatDue(intervalMs: 1_000))    // the due heartbeat counts as written
        activity.handled(bytes: 0)
        clock.advance(ms: 5_000)
        #expect(!activity.heartbeatDue(intervalMs: 1_000))    // not inside a message: the session sends its own

        // Held back by the hub, the agent counts as heard now, whatever the clock says.
        await activity.received(bytes: 10)
        #expect(activity.lastReceivedMs == clock.nowMs)
    }

    /// The hub's ticker wakes a connection only when the loop has something to judge: a hello's deadline, a
    /// heartbeat to send, an agent's silence, or batches deferred during an outage.
    @Test func aConnectionIsWokenOnlyWhenSomethingIsDue() async {
        let clock = ManualClock()
        let activity = ConnectionActivity(maxPendingBytes: 1_000, clock: clock, rateClock: ManualClock())
        #expect(activity.tickDue(intervalMs: 1_000))          // no hello yet: its deadline is judged at every tick
        activity.helloDone()
        #expect(!activity.tickDue(intervalMs: 1_000))         // just heard from and written to

        // One-second batches, each acknowledged: never due.
        for _ in 0..<5 {
            clock.advance(ms: 999)
            await activity.received(bytes: 10)
            activity.handled(bytes: 10)
            activity.sent()
            #expect(!activity.tickDue(intervalMs: 1_000))
        }

        // One side quiet for the interval while the other goes on: due, until the quiet side acts again.
        func quiet(_ side: () -> Void, whileOtherActs other: () -> Void) {
            clock.advance(ms: 600)
            other()
            clock.advance(ms: 400)
            #expect(activity.tickDue(intervalMs: 1_000))
            side()
            #expect(!activity.tickDue(intervalMs: 1_000))
        }
        quiet(activity.sent, whileOtherActs: activity.heard)  // the hub wrote nothing: a heartbeat is due
        quiet(activity.heard, whileOtherActs: activity.sent)  // the agent said nothing: its silence is judged

        // Deferred batches: every tick, until the loop says otherwise.
        activity.begin()
        activity.handled(bytes: 0, wantsTicks: true)
        #expect(activity.tickDue(intervalMs: 1_000))
        activity.begin()
        activity.handled(bytes: 0, wantsTicks: false)
        #expect(!activity.tickDue(intervalMs: 1_000))

        // A finished connection is never woken.
        clock.advance(ms: 10_000)
        #expect(activity.tickDue(intervalMs: 1_000))
        activity.finish()
        #expect(!activity.tickDue(intervalMs: 1_000))
    }

    /// The reader held back by the hub (byte rate, backlog) is not the agent's silence.
    @Test func aReaderHeldBackIsNotSilence() async throws {
        let clock = ManualClock(), rate = ManualClock()
        let activity = ConnectionActivity(maxPendingBytes: 1_000, bytesPerSecond: 100, burstBytes: 100, clock: clock, rateClock: rate)
        activity.helloDone()
        await activity.received(bytes: 100)
        let held = Task { await activity.received(bytes: 100) }   // past the rate: waits a second of the rate clock
        // Until the task runs and waits (a loaded machine may take seconds to start it; the wait ends at once).
        #expect(try await eventually(.seconds(30)) { activity.isHeldBack })
        clock.advance(ms: 5_000)
        activity.sent()
        #expect(!activity.tickDue(intervalMs: 1_000))
        activity.finish()
        await held.value
    }

    /// A connection stuck in one place is reported once, after the threshold, with where it is stuck: inside a
    /// message, inside a write to the agent, or with its reader waiting for room; a new message or write starts
    /// the count again, and an idle connection is never reported.
    @Test func aStuckConnectionIsReportedOnceWithWhereItIsStuck() async throws {
        let monotonic = ManualClock()
        let activity = ConnectionActivity(maxPendingBytes: 1_000, clock: ManualClock(), rateClock: monotonic)
        monotonic.advance(ms: 600_000)
        #expect(activity.stall(afterMs: 60_000) == nil)       // idle for ten minutes: nothing to report

        activity.identify(bot: "alpha")
        activity.begin()
        monotonic.advance(ms: 60_000)
        #expect(activity.stall(afterMs: 60_000) == nil)       // not longer than the threshold yet
        monotonic.advance(ms: 1_500)
        #expect(activity.stall(afterMs: 60_000) == .init(kind: .handling, bot: "alpha", seconds: 61, pendingBytes: 0, loopBusy: true))
        monotonic.advance(ms: 60_000)
        #expect(activity.stall(afterMs: 60_000) == nil)       // once per message
        activity.handled(bytes: 0)
        monotonic.advance(ms: 120_000)
        #expect(activity.stall(afterMs: 60_000) == nil)       // handled: idle again

        activity.writing()
        monotonic.advance(ms: 70_000)
        #expect(activity.stall(afterMs: 60_000)?.kind == .writing)
        activity.sent()
        activity.writing()
        activity.sent()
        monotonic.advance(ms: 70_000)
        #expect(activity.stall(afterMs: 60_000) == nil)       // writes that finished

        // The reader waits for room: 2,000 bytes wait against a limit of 1,000, and the loop has not begun them.
        await activity.received(bytes: 2_000)
        let reader = Task { await activity.awaitRoom() }
        for _ in 0..<1_000 where activity.heldBackSinceMs == nil { try await Task.sleep(for: .milliseconds(5)) }
        #expect(activity.heldBackSinceMs != nil)
        monotonic.advance(ms: 90_000)
        #expect(activity.stall(afterMs: 60_000) == .init(kind: .heldBack, bot: "alpha", seconds: 90, pendingBytes: 2_000, loopBusy: false))
        #expect(activity.stall(afterMs: 60_000) == nil)
        activity.begin()
        activity.handled(bytes: 2_000)
        await reader.value
        #expect(activity.heldBackSinceMs == nil)
        monotonic.advance(ms: 90_000)
        #expect(activity.stall(afterMs: 60_000) == nil)       // room again: the wait is over

        activity.finish()
        activity.begin()
        monotonic.advance(ms: 90_000)
        #expect(activity.stall(afterMs: 60_000) == nil)       // an ended connection is not reported
    }

    /// The ticker's one check per connection gives what the three separate checks give, in their order: a slow
    /// message past the heartbeat interval and the stall threshold asks for a heartbeat beside the loop (which then
    /// counts as written, so the loop is not woken for one) and reports the stall once; a finished connection asks
    /// for nothing.
    @Test func oneCheckPerTickGivesWhatTheSeparateChecksGive() {
        let wall = ManualClock(), monotonic = ManualClock()
        let activity = ConnectionActivity(maxPendingBytes: 1_000, clock: wall, rateClock: monotonic)
        #expect(activity.check(heartbeatMs: 1_000, stallMs: 60_000) == .init(heartbeat: false, tick: true, stall: nil))  // before its hello
        activity.helloDone()
        activity.identify(bot: "alpha")
        #expect(activity.check(heartbeatMs: 1_000, stallMs: 60_000) == .init(heartbeat: false, tick: false, stall: nil))

        activity.begin()
        wall.advance(ms: 1_000)
        monotonic.advance(ms: 61_000)
        activity.heard()
        let stall = ConnectionActivity.Stall(kind: .handling, bot: "alpha", seconds: 61, pendingBytes: 0, loopBusy: true)
        // Nothing written for the interval: the heartbeat goes out beside the loop, so the loop is not woken for one.
        #expect(activity.check(heartbeatMs: 1_000, stallMs: 60_000) == .init(heartbeat: true, tick: false, stall: stall))
        #expect(activity.check(heartbeatMs: 1_000, stallMs: 60_000) == .init(heartbeat: false, tick: false, stall: nil))
        wall.advance(ms: 1_000)
        activity.sent()
        #expect(activity.check(heartbeatMs: 1_000, stallMs: 60_000) == .init(heartbeat: false, tick: true, stall: nil))  // silent for the interval

        activity.finish()
        wall.advance(ms: 10_000)
        monotonic.advance(ms: 120_000)
        #expect(activity.check(heartbeatMs: 1_000, stallMs: 60_000) == .init(heartbeat: false, tick: false, stall: nil))
    }

    /// A close for silence says how long ago the hub last read a frame and whether the reader waited for room: an
    /// agent that sent nothing reads differently from frames the hub did not read.
    @Test func aSilenceReportSaysWhenTheHubLastReadAndWaited() async throws {
        let wall = ManualClock()
        let activity = ConnectionActivity(maxPendingBytes: 1_000, clock: wall, rateClock: ManualClock())
        activity.heard()
        wall.advance(ms: 2_500)
        #expect(activity.silenceReport() == "the hub last read a frame from it 2500 ms ago; its reader never waited for room; 0 bytes read wait to be handled")

        await activity.received(bytes: 2_000)
        let reader = Task { await activity.awaitRoom() }
        for _ in 0..<1_000 where activity.heldBackSinceMs == nil { try await Task.sleep(for: .milliseconds(5)) }
        #expect(activity.silenceReport().contains("its reader is held back now; 2000 bytes read wait"))
        activity.begin()
        activity.handled(bytes: 2_000)
        await reader.value
        wall.advance(ms: 10_400)
        #expect(activity.silenceReport() == "the hub last read a frame from it 12900 ms ago; its reader last came back from waiting for room 10400 ms ago; 0 bytes read wait to be handled")
    }
}
