@testable import FleetwatchStorage
import FleetwatchTestSupport
import Foundation
import Logging
import Synchronization
import Testing

/// The race behind `StatementWatch` and `DatabaseHealth.failFast`: a body against a give-up, with cancellation.
@Suite struct GiveUpRaceTests {
    struct Gave: Error, Equatable { let n: Int }

    /// What a body saw, filled in from its task.
    final class Seen: Sendable {
        private let state = Mutex<(started: Bool, cancelled: Bool, ended: Bool, disarmed: Int, before: Bool)>((false, false, false, 0, false))
        func started() { state.withLock { $0.started = true } }
        func ended(cancelled: Bool) { state.withLock { $0.cancelled = cancelled; $0.ended = true } }
        func disarmed() { state.withLock { $0.disarmed += 1 } }
        func before() { state.withLock { $0.before = true } }
        var value: (started: Bool, cancelled: Bool, ended: Bool, disarmed: Int, before: Bool) { state.withLock { $0 } }
    }

    /// A body that runs until cancelled (or 30 s), then says whether it was.
    static func waitsForCancellation(_ seen: Seen) -> @Sendable () async throws -> Int {
        {
            seen.started()
            try? await Task.sleep(for: .seconds(30))
            seen.ended(cancelled: Task.isCancelled)
            return 1
        }
    }

    @Test func theBodysResultWhenNothingGivesUp() async throws {
        let seen = Seen()
        let n = try await raceGiveUp(cancelOnGiveUp: true, arm: { _ in { seen.disarmed() } }, { seen.started(); return 42 })
        #expect(n == 42)
        #expect(seen.value.started)
        #expect(seen.value.disarmed == 1, "what gives up is taken down once the body ends")
    }

    @Test func theBodysErrorWhenNothingGivesUp() async throws {
        await #expect(throws: Gave(n: 7)) {
            try await raceGiveUp(cancelOnGiveUp: true, arm: { _ in {} }, { () async throws -> Int in throw Gave(n: 7) })
        }
    }

    @Test func aGiveUpAnswersAtOnceAndCancelsTheBodyWhenAsked() async throws {
        for cancel in [true, false] {
            let seen = Seen()
            let giveUp = Mutex<GiveUp?>(nil)
            let race = Task {
                try await raceGiveUp(cancelOnGiveUp: cancel, arm: { g in giveUp.withLock { $0 = g }; return { seen.disarmed() } },
                                     Self.waitsForCancellation(seen))
            }
            #expect(try await eventually(.seconds(10)) { seen.value.started })
            giveUp.withLock { $0 }!(Gave(n: 1), { seen.before() })
            let started = ContinuousClock.now
            await #expect(throws: Gave(n: 1)) { try await race.value }
            #expect(ContinuousClock.now - started < .seconds(10), "the caller does not wait for the body")
            #expect(seen.value.before, "`before` runs before the caller goes on")
            if cancel {
                #expect(try await eventually(.seconds(10)) { seen.value.ended })
                #expect(seen.value.cancelled)
                #expect(seen.value.disarmed == 1)
            } else {
                try await Task.sleep(for: .milliseconds(300))
                #expect(!seen.value.ended, "left to run when not asked to cancel it")
            }
        }
    }

    @Test func aGiveUpWhileArmingMeansTheBodyNeverStarts() async throws {
        let seen = Seen()
        await #expect(throws: Gave(n: 2)) {
            try await raceGiveUp(cancelOnGiveUp: false, arm: { g in g(Gave(n: 2), nil); return { seen.disarmed() } },
                                 Self.waitsForCancellation(seen))
        }
        try await Task.sleep(for: .milliseconds(300))
        #expect(!seen.value.started)
        #expect(seen.value.disarmed == 1)
    }

    @Test func cancellingTheCallerCancelsTheBody() async throws {
        for cancelOnGiveUp in [true, false] {
            let seen = Seen()
            let race = Task { try await raceGiveUp(cancelOnGiveUp: cancelOnGiveUp, arm: { _ in {} }, Self.waitsForCancellation(seen)) }
            #expect(try await eventually(.seconds(10)) { seen.value.started })
            race.cancel()
            #expect(try await eventually(.seconds(10)) { seen.value.ended })
            #expect(seen.value.cancelled)
            _ = try? await race.value
        }
    }

    /// `DatabaseHealth.failFast` passes the caller's cancellation on (it did not before the race was shared).
    @Test func failFastPassesCancellationOn() async throws {
        let health = DatabaseHealth(url: try DatabaseURL("postgres://nobody@127.0.0.1:1/none", environment: [:]), logger: Logger(label: "t"))
        let seen = Seen()
        let call = Task { try await health.failFast(Self.waitsForCancellation(seen)) }
        #expect(try await eventually(.seconds(10)) { seen.value.started })
        call.cancel()
        #expect(try await eventually(.seconds(10)) { seen.value.ended })
        #expect(seen.value.cancelled)
        #expect(try await call.value == 1)
    }

    /// A database known down: failFast refuses without running the body, and one going down gives up on it and
    /// cancels it (a body waiting for a pooled connection must not write later what its caller was told failed).
    @Test func failFastGivesUpWhenTheDatabaseGoesDown() async throws {
        let health = DatabaseHealth(url: try DatabaseURL("postgres://nobody@127.0.0.1:1/none", environment: [:]), logger: Logger(label: "t"))
        let seen = Seen()
        let call = Task { try await health.failFast(Self.waitsForCancellation(seen)) }
        #expect(try await eventually(.seconds(10)) { seen.value.started })
        health.observed(failure: "test: down")
        await #expect(throws: DatabaseUnavailable.self) { try await call.value }
        #expect(try await eventually(.seconds(10)) { seen.value.ended }, "the body given up on is cancelled, not left to run")
        #expect(seen.value.cancelled)
        let other = Seen()
        await #expect(throws: DatabaseUnavailable.self) { try await health.failFast(Self.waitsForCancellation(other)) }
        #expect(!other.value.started)
    }

    /// `cancelling: false` (the lease given back when a connection ends) leaves the body given up on to finish.
    @Test func failFastCanLeaveTheBodyToFinish() async throws {
        let health = DatabaseHealth(url: try DatabaseURL("postgres://nobody@127.0.0.1:1/none", environment: [:]), logger: Logger(label: "t"))
        let seen = Seen()
        let call = Task { try await health.failFast(cancelling: false, Self.waitsForCancellation(seen)) }
        #expect(try await eventually(.seconds(10)) { seen.value.started })
        health.observed(failure: "test: down")
        await #expect(throws: DatabaseUnavailable.self) { try await call.value }
        try await Task.sleep(for: .milliseconds(300))
        #expect(!seen.value.ended, "left to run")
    }
}
