import Synchronization

/// The store's answers to the runs one connection handed over (`IngestStore.submit`), by run number, until the
/// connection's session takes them in order. Answers come from any thread; the session waits for one, or is woken
/// (`wake`) to take those that came while it waited for something else.
final class RunAnswers: Sendable {
    typealias Answer = (result: Result<[StoreOutcome], any Error>, at: ContinuousClock.Instant)

    private struct State {
        var answers: [Int: Answer] = [:]
        /// The session waiting for one run's answer.
        var waiter: (run: Int, continuation: CheckedContinuation<Void, Never>)?
    }
    private let state = Mutex(State())
    private let wake: (@Sendable () -> Void)?

    /// - Parameter wake: called when an answer comes that nobody waits for; nil: the session always waits.
    init(wake: (@Sendable () -> Void)?) { self.wake = wake }

    /// The store answered run `run`.
    func deliver(_ run: Int, _ result: Result<[StoreOutcome], any Error>) {
        let now = ContinuousClock.now
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.answers[run] = (result, now)
            guard let w = s.waiter, w.run == run else { return nil }
            s.waiter = nil
            return w.continuation
        }
        if let waiter { waiter.resume() } else { wake?() }
    }

    /// Run `run`'s answer if it came.
    func take(_ run: Int) -> Answer? {
        state.withLock { $0.answers.removeValue(forKey: run) }
    }

    /// Run `run`'s answer, once it comes.
    func wait(for run: Int) async -> Answer {
        if let answer = take(run) { return answer }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { s -> Bool in
                if s.answers[run] != nil { return true }
                s.waiter = (run, continuation)
                return false
            }
            if ready { continuation.resume() }
        }
        return take(run)!
    }
}
