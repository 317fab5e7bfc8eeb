import Synchronization

/// `body`'s result if it arrives within `limit`, nil otherwise — without waiting for `body` past the limit (a
/// task group would: it awaits every child, and a query on a hanging connection ignores cancellation). `body`
/// runs on in an unstructured task until it finishes by itself.
func firstWithin<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async -> T?) async -> T? {
    let answer = FirstAnswer<T>()
    return await withCheckedContinuation { continuation in
        answer.set(continuation)
        Task { answer.give(await body()) }
        Task {
            try? await Task.sleep(for: limit)
            answer.give(nil)
        }
    }
}

/// Resumes its continuation with the first answer given; later answers are dropped.
private final class FirstAnswer<T: Sendable>: Sendable {
    private let slot = Mutex<CheckedContinuation<T?, Never>?>(nil)

    func set(_ continuation: CheckedContinuation<T?, Never>) { slot.withLock { $0 = continuation } }

    func give(_ value: T?) {
        slot.withLock { c in
            c?.resume(returning: value)
            c = nil
        }
    }
}
