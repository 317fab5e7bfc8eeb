import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where the state machines and the components that drive them read the time, in milliseconds: the system's
/// clocks in production, `ManualClock` (FleetwatchTestSupport) in tests, so that no test waits on the wall
/// clock for logic.
public protocol MillisecondClock: Sendable {
    /// Milliseconds now: unix milliseconds for a wall clock, milliseconds since an arbitrary origin for a
    /// monotonic one (use it only for intervals).
    var nowMs: Int64 { get }
}

/// The system's clocks.
public struct SystemClock: MillisecondClock {
    public enum Kind: Sendable { case wall, monotonic }
    public let kind: Kind

    /// Unix milliseconds (timestamps that leave the process: samples, frames, the database).
    public static let wall = SystemClock(kind: .wall)
    /// Never goes back (windows, cooldowns, rate limits).
    public static let monotonic = SystemClock(kind: .monotonic)

    public var nowMs: Int64 {
        var ts = timespec()
        clock_gettime(kind == .wall ? CLOCK_REALTIME : CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}

extension MillisecondClock {
    /// A wall clock's time as a `Date`.
    public var date: Date { Date(timeIntervalSince1970: Double(nowMs) / 1000) }

    /// A wall clock's time as unsigned unix milliseconds (frames carry them so), 0 before 1970.
    public var unsignedMs: UInt64 { UInt64(max(0, nowMs)) }
}
