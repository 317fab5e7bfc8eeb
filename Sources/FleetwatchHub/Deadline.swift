import Synchronization

/// `body`'s result if it arrives within `limit`, nil otherwise — without waiting for `body` past the limit (a
/// task group would: it awaits every child, and a query on a hanging connection ignores cancellation). `body`
/// runs on in an unstructured task until it finishes by itself.
func firstWithin<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async -> T?) async -> T? {
    let answer = FirstAnswer<T>()
    return await withCheckedContinuation { continuation in
        answer.set(continuation)
        answer.setTimer(Task {
            try? await Task.sleep(for: limit)
            answer.give(nil)
        })
        Task { answer.give(await body()) }
    }
}

/// Resumes its continuation with the first answer given; later answers are dropped. The first answer stops the
/// timer.
private final class FirstAnswer<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T?, Never>?
        var timer: Task<Void, Never>?
        var answered = false
    }
    private let state = Mutex(State())

    func set(_ continuation: CheckedContinuation<T?, Never>) { state.withLock { $0.continuation = continuation } }

    func setTimer(_ timer: Task<Void, Never>) {
        let cancelNow = state.withLock { s -> Bool in
            s.timer = timer
            return s.answered
        }
        if cancelNow { timer.cancel() }
    }

    func give(_ value: T?) {
        let timer = state.withLock { s -> Task<Void, Never>? in
            guard !s.answered else { return nil }
            s.answered = true
            s.continuation?.resume(returning: value)
            s.continuation = nil
            return s.timer
        }
        timer?.cancel()
    }
}
