import Synchronization

/// A callback called at most once, by whichever of several answerers comes first (a statement's end, or a give-up
/// when the database goes down). The callback runs outside the lock.
final class AnswerOnce<T: Sendable>: Sendable {
    private let answer: Mutex<(@Sendable (Result<T, any Error>) -> Void)?>

    init(_ answer: @escaping @Sendable (Result<T, any Error>) -> Void) { self.answer = Mutex(answer) }

    /// Whether nobody has answered yet.
    var isWaiting: Bool { answer.withLock { $0 != nil } }

    func resume(_ result: Result<T, any Error>) {
        let waiting = answer.withLock { a in
            defer { a = nil }
            return a
        }
        waiting?(result)
    }
}
