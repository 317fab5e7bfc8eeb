import Synchronization

/// A reading too costly to take at every scrape of `/metrics` (glibc walks its arenas' free lists under their
/// locks), reused while it is younger than `maxAge`.
final class RecentReading<Value: Sendable>: Sendable {
    private let maxAge: Duration
    private let read: @Sendable () -> Value
    private let last = Mutex<(at: ContinuousClock.Instant, value: Value)?>(nil)

    init(maxAge: Duration, read: @escaping @Sendable () -> Value) {
        self.maxAge = maxAge
        self.read = read
    }

    /// The last reading if younger than `maxAge`, a new one otherwise.
    var value: Value {
        let now = ContinuousClock.now
        if let last = last.withLock({ $0 }), now - last.at < maxAge { return last.value }
        let value = read()
        last.withLock { $0 = (now, value) }
        return value
    }
}
