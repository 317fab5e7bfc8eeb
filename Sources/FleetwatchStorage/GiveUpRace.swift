import Synchronization

/// Calls a `GiveUpRace`'s waiting caller back with `error` at once; `before`, if any, runs first (the caller goes on
/// only after it). Only the first of the give-up and `body`'s own end counts.
typealias GiveUp = @Sendable (_ error: any Error, _ before: (@Sendable () async -> Void)?) -> Void

/// `body` in a task of its own, raced against a give-up: the caller gets `body`'s result, or the give-up's error the
/// moment it comes, without waiting for `body` (a statement PostgresNIO will never answer, a pool wait while the
/// database is known to be down). `arm` runs before `body` starts: it sets up what gives up (a timer, a close or
/// outage callback) and returns what takes it down again, called when `body` ends. A give-up during `arm` means
/// `body` is not started at all.
///
/// A body given up on is cancelled if `cancelOnGiveUp`, and in any case left to end by itself: it must be safe to
/// abandon (a batch not acknowledged is sent again and deduplicated). Cancelling the caller cancels `body`.
func raceGiveUp<T: Sendable>(cancelOnGiveUp: Bool,
                             arm: (_ giveUp: @escaping GiveUp) -> @Sendable () -> Void,
                             _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let running = RunningTask()
    return try await withTaskCancellationHandler {
        let once = ResumeOnce<T>()
        return try await withCheckedThrowingContinuation { continuation in
            once.set(continuation)
            let giveUp: GiveUp = { error, before in
                guard let waiting = once.take() else { return }
                if cancelOnGiveUp { running.cancel() }
                guard let before else { return waiting.resume(throwing: error) }
                Task {
                    await before()
                    waiting.resume(throwing: error)
                }
            }
            let disarm = arm(giveUp)
            guard once.isWaiting else { return disarm() }
            running.set(Task {
                let result: Result<T, any Error>
                do { result = .success(try await body()) } catch { result = .failure(error) }
                disarm()
                once.resume(result)
            }, cancelled: Task.isCancelled)
        }
    } onCancel: {
        running.cancel()
    }
}

/// A continuation resumed by whichever of several racers finishes first.
final class ResumeOnce<T: Sendable>: Sendable {
    private let continuation = Mutex<CheckedContinuation<T, any Error>?>(nil)
    func set(_ c: CheckedContinuation<T, any Error>) { continuation.withLock { $0 = c } }
    /// The continuation, taken from the other racers (nil if one resumed it): the taker resumes it.
    func take() -> CheckedContinuation<T, any Error>? {
        continuation.withLock { c in
            defer { c = nil }
            return c
        }
    }

    /// Whether no racer has resumed or taken it yet.
    var isWaiting: Bool { continuation.withLock { $0 != nil } }

    func resume(_ result: Result<T, any Error>) {
        continuation.withLock { c in
            c?.resume(with: result)
            c = nil
        }
    }
}

/// The task running a raced body, for cancellation that may come before the task exists.
final class RunningTask: Sendable {
    private let state = Mutex<(task: Task<Void, Never>?, cancelled: Bool)>((nil, false))
    func set(_ task: Task<Void, Never>, cancelled: Bool) {
        let cancelNow = state.withLock { s -> Bool in
            s.task = task
            return s.cancelled || cancelled
        }
        if cancelNow { task.cancel() }
    }
    func cancel() {
        let task = state.withLock { s -> Task<Void, Never>? in
            s.cancelled = true
            return s.task
        }
        task?.cancel()
    }
}
