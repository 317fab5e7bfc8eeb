import FleetwatchAgent
import FleetwatchProtocol
import FleetwatchTestSupport
import Testing

@Suite struct ConnectionStateMachineTests {
    static let welcome = Welcome(bootEpoch: 1, storedSequence: 4, heartbeatIntervalMs: 1000, maxFrameBytes: 1 << 20,
                                 maxPayloadBytes: 1 << 22, maxSamplesPerBatch: 1000)

    @Test func happyPath() {
        var m = ConnectionStateMachine()
        let clock = ManualClock()
        #expect(m.start() == .connect)
        #expect(m.opened(nowMs: clock.nowMs) == .sendHello)
        #expect(!m.isStreaming)
        #expect(m.welcomed(Self.welcome, nowMs: clock.nowMs) == .startStreaming(storedSequence: 4))
        #expect(m.isStreaming)
        clock.advance(ms: 500)
        #expect(m.tick(nowMs: clock.nowMs) == .none)
        clock.advance(ms: 500)
        #expect(m.tick(nowMs: clock.nowMs) == .sendHeartbeat)
    }

    /// A half-open connection is noticed within two heartbeat intervals.
    @Test func silentHubIsClosedAfterTwoIntervals() {
        var m = ConnectionStateMachine()
        let clock = ManualClock()
        _ = m.start()
        _ = m.opened(nowMs: clock.nowMs)
        _ = m.welcomed(Self.welcome, nowMs: clock.nowMs)
        for _ in 0..<20 {
            clock.advance(ms: 100)
            m.sent(nowMs: clock.nowMs)
            #expect(m.tick(nowMs: clock.nowMs) == .none)
        }
        clock.advance(ms: 1)
        #expect(m.tick(nowMs: clock.nowMs) == .closeSilentConnection)
    }

    @Test func backoffGrowsIsCappedAndJittered() {
        let b = Backoff(initial: .milliseconds(100), maximum: .seconds(5), multiplier: 2, jitter: 0.5)
        #expect(b.delay(attempt: 0, unit: 1) == .milliseconds(100))
        #expect(b.delay(attempt: 0, unit: 0) == .milliseconds(50))
        #expect(b.delay(attempt: 3, unit: 1) == .milliseconds(800))
        #expect(b.delay(attempt: 30, unit: 1) == .seconds(5))
        #expect(b.delay(attempt: 1000, unit: 0.5) == .milliseconds(3750))
    }

    @Test func failedConnectsBackOffAndStableConnectionsReset() {
        var m = ConnectionStateMachine(backoff: Backoff(initial: .milliseconds(100), maximum: .seconds(10), jitter: 0))
        let clock = ManualClock()
        _ = m.start()
        #expect(m.connectFailed(nowMs: clock.nowMs, random: 0) == .wait(.milliseconds(100)))
        #expect(m.waited() == .connect)
        #expect(m.connectFailed(nowMs: clock.nowMs, random: 0) == .wait(.milliseconds(200)))
        #expect(m.waited() == .connect)
        _ = m.opened(nowMs: clock.nowMs)
        _ = m.welcomed(Self.welcome, nowMs: clock.nowMs)
        clock.advance(ms: 60_000)
        #expect(m.closed(code: .goingAway, nowMs: clock.nowMs, random: 0) == .wait(.milliseconds(100)))
    }

    @Test func flappingConnectionKeepsBackingOff() {
        var m = ConnectionStateMachine(backoff: Backoff(initial: .milliseconds(100), maximum: .seconds(10), jitter: 0))
        let clock = ManualClock()
        _ = m.start()
        for expected in [100, 200, 400] {
            _ = m.opened(nowMs: clock.nowMs)
            _ = m.welcomed(Self.welcome, nowMs: clock.nowMs)
            #expect(m.closed(code: .replaced, nowMs: clock.nowMs, random: 0) == .wait(.milliseconds(Int64(expected))))
            _ = m.waited()
        }
    }

    @Test func configurationErrorsRetryAtTheSlowestPace() {
        var m = ConnectionStateMachine(backoff: Backoff(initial: .milliseconds(100), maximum: .seconds(30), jitter: 0))
        _ = m.start()
        _ = m.opened(nowMs: 0)
        #expect(m.closed(code: .authenticationFailed, nowMs: 0, random: 0) == .wait(.seconds(30)))
        #expect(m.lastCloseCode == .authenticationFailed)
    }
}
