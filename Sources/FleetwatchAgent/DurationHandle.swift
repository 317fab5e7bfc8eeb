import FleetwatchProtocol
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Observed durations (trade execution time, balance check time), each kept as one sample in milliseconds.
///
/// `record` takes a coarse wall-clock reading and writes into a preallocated ring under an uncontended
/// lock: no allocation. Observations beyond the ring's capacity between two flushes are dropped and counted.
public final class DurationHandle: Sendable {
    /// The metric's name.
    public let name: String
    struct Ring {
        var timestamps: [Int64]
        var values: [Double]
        var count = 0
        var overflow: Int64 = 0
    }
    let ring: Mutex<Ring>
    let capacity: Int

    init(name: String, capacity: Int) {
        self.name = name
        self.capacity = capacity
        self.ring = Mutex(Ring(timestamps: Array(repeating: 0, count: capacity),
                               values: Array(repeating: 0, count: capacity)))
    }

    /// Records one duration given in nanoseconds.
    @inlinable
    public func record(nanoseconds: Int64) {
        record(milliseconds: Double(nanoseconds) / 1_000_000)
    }

    /// Records one duration.
    @inlinable
    public func record(_ duration: Duration) {
        record(milliseconds: duration.inMilliseconds)
    }

    /// Records one duration given in milliseconds. Negative or non-finite values are dropped.
    public func record(milliseconds: Double) {
        guard milliseconds.isFinite, milliseconds >= 0 else { return }
        let now = CoarseClock.nowMs()
        ring.withLock { r in
            if r.count < capacity {
                r.timestamps[r.count] = now
                r.values[r.count] = milliseconds
                r.count += 1
            } else {
                r.overflow += 1
            }
        }
    }

    /// Times `body` and records how long it took.
    public func time<T>(_ body: () throws -> T) rethrows -> T {
        let start = ContinuousClock.now
        defer { record(ContinuousClock.now - start) }
        return try body()
    }

    /// Times async `body` and records how long it took.
    public func time<T>(_ body: () async throws -> T) async rethrows -> T {
        let start = ContinuousClock.now
        defer { record(ContinuousClock.now - start) }
        return try await body()
    }

    /// Takes the observations recorded since the last call, and how many were dropped.
    func drain() -> (timestamps: [Int64], values: [Double], dropped: Int64) {
        ring.withLock { r in
            let out = (Array(r.timestamps[0..<r.count]), Array(r.values[0..<r.count]), r.overflow)
            r.count = 0
            r.overflow = 0
            return out
        }
    }
}

/// A cheap wall clock in unix milliseconds (CLOCK_REALTIME_COARSE: a few ms of resolution, no syscall).
public enum CoarseClock {
    @inlinable
    public static func nowMs() -> Int64 {
        var ts = timespec()
        #if os(Linux)
        clock_gettime(CLOCK_REALTIME_COARSE, &ts)
        #else
        clock_gettime(CLOCK_REALTIME, &ts)
        #endif
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    /// Precise wall clock in unix milliseconds.
    public static func preciseNowMs() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}

extension DurationHandle {
    /// Empties the ring (benchmarks use it to keep measuring the recording path).
    public func drainForBenchmark() -> Int { drain().timestamps.count }
}
