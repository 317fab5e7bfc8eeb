@testable import FleetwatchHub
import FleetwatchIngest
import FleetwatchProtocol
import FleetwatchTestSupport
import Foundation
import Testing

/// The in-memory parts of issue 13's bounds, without a database.
@Suite struct BotIsolationUnitTests {
    /// A bot with 1,000 metrics does not fit one NOTIFY: its update is split, every part under the limit, and
    /// the parts together hold every value (before, the whole update was dropped and the bot never showed live).
    @Test func aLargeLiveUpdateIsSplitNotDropped() throws {
        let numbers = Dictionary(uniqueKeysWithValues: (0..<1000).map { ("order_\($0)", Double($0) + 0.5) })
        let states = Dictionary(uniqueKeysWithValues: (0..<50).map { ("state_\($0)", String(repeating: "\"", count: 200)) })
        let update = LiveUpdate(bot: "big", at: Date(timeIntervalSince1970: 1_700_000_000), numbers: numbers, states: states)
        let payloads = LivePublisher.pack([update, LiveUpdate(bot: "small", at: update.at, numbers: ["x": 1], states: [:])])
        #expect(payloads.count > 1)
        #expect(payloads.allSatisfy { $0.utf8.count <= LivePublisher.payloadLimit })
        let back = payloads.flatMap { LivePublisher.decode($0) }
        var merged: [String: Double] = [:], mergedStates: [String: String] = [:]
        for u in back where u.bot == "big" {
            merged.merge(u.numbers) { _, new in new }
            mergedStates.merge(u.states) { _, new in new }
        }
        #expect(merged == numbers && mergedStates == states)
        #expect(back.contains { $0.bot == "small" && $0.numbers == ["x": 1] })
    }

    /// The sliding window holds at most `maxKeys` keys, whatever stream of distinct keys arrives.
    @Test func theSlidingWindowForgetsKeysBeyondItsBound() {
        var window = SlidingWindow(limit: 3, windowMs: 60_000, maxKeys: 100)
        for i in 0..<10_000 { _ = window.allow("user-\(i)", nowMs: Int64(i)) }
        #expect(window.keyCount <= 100)
        // The newest keys are kept, so a key in use is still limited.
        for _ in 0..<3 { _ = window.allow("user-9999", nowMs: 10_000) }
        let allowed = window.allow("user-9999", nowMs: 10_001)
        #expect(!allowed)
    }

    /// A guesser at one address locks out only itself: the same user from another address still gets in;
    /// many addresses together lock out only new addresses.
    @Test func aLockOutByUserNameSparesOtherAddresses() async {
        let limiter = LoginLimiter(perMinute: 10)
        for _ in 0..<10 {
            #expect(await limiter.attempt(address: "10.0.0.66", user: "ADMIN") == .allowed)
            await limiter.failed(address: "10.0.0.66", user: "ADMIN")
        }
        #expect(await limiter.attempt(address: "10.0.0.66", user: "admin") == .refused)
        #expect(await limiter.attempt(address: "10.0.0.1", user: "admin") == .allowed)
        // 100 failures from ten addresses: past the user's limit, only known addresses may try.
        for a in 0..<9 {
            for _ in 0..<10 {
                _ = await limiter.attempt(address: "10.0.1.\(a)", user: "admin")
                await limiter.failed(address: "10.0.1.\(a)", user: "admin")
            }
        }
        #expect(await limiter.attempt(address: "10.0.2.1", user: "admin") == .onlyFromKnownAddress)
        let keys = await limiter.keyCounts
        #expect(keys.address <= 10_000 && keys.pair <= 10_000 && keys.user <= 10_000)
    }

    /// The lock-outs last one minute on the limiter's clock (moved by hand here: no waiting).
    @Test func lockOutsEndWhenTheirMinuteHasPassed() async {
        let clock = ManualClock()
        let limiter = LoginLimiter(perMinute: 3, clock: clock)
        for _ in 0..<3 {
            _ = await limiter.attempt(address: "10.0.0.66", user: "admin")
            await limiter.failed(address: "10.0.0.66", user: "admin")
        }
        #expect(await limiter.attempt(address: "10.0.0.66", user: "admin") == .refused)
        clock.advance(ms: 59_999)
        #expect(await limiter.attempt(address: "10.0.0.66", user: "admin") == .refused)
        clock.advance(ms: 60_001)
        #expect(await limiter.attempt(address: "10.0.0.66", user: "admin") == .allowed)
        let requests = RequestLimiter(perMinute: 2, clock: clock)
        #expect(await requests.allow("token"))
        #expect(await requests.allow("token"))
        #expect(await !requests.allow("token"))
        clock.advance(ms: 60_000)
        #expect(await requests.allow("token"))
    }

    /// A refused attempt's kind is its actor, role, address and reason: one row at once, the rest counted.
    @Test func refusalsOfOneKindShareAnAddressWithoutItsPort() {
        #expect(RefusalAudit.address("127.0.0.1:51234") == "127.0.0.1")
        #expect(RefusalAudit.address("::1:443") == "::1")
        #expect(RefusalAudit.address("unknown") == "unknown")
    }

    /// `heard(atMs:)` keeps a connection alive while its messages wait behind a slow store.
    @Test func bytesReadCountAsHeardEvenBeforeTheyAreHandled() {
        var machine = IngestSessionMachine(nowMs: 0, heartbeatMs: 1000, helloTimeoutMs: 10_000)
        _ = machine.received(.hello(Hello(botID: "b", token: "t", agentVersion: "a", bootEpoch: 1, lastAckedSequence: 0)), nowMs: 0)
        machine.authenticated(nowMs: 0)
        machine.heard(atMs: 1900)
        #expect(machine.tick(nowMs: 2500) != .close(.heartbeatTimeout, "nothing heard for 2500 ms"))
        if case .close = machine.tick(nowMs: 4000) {} else { Issue.record("silence after the last byte must still close") }
    }
}
