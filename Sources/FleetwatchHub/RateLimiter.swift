import FleetwatchProtocol
import Foundation

/// A sliding-window limit per key: at most `limit` events in any `window`. Pure: time comes in. Holds at most
/// `maxKeys` keys: keys with no event in the window go first, then the least recently used, so no stream
/// of distinct keys can grow it.
struct SlidingWindow: Sendable {
    let limit: Int
    let windowMs: Int64
    let maxKeys: Int
    private var events: [String: [Int64]] = [:]

    init(limit: Int, windowMs: Int64, maxKeys: Int = 10_000) {
        self.limit = limit
        self.windowMs = windowMs
        self.maxKeys = max(maxKeys, 1)
    }

    /// Records an event for `key` at `nowMs` if the limit allows it; returns whether it did.
    mutating func allow(_ key: String, nowMs: Int64) -> Bool {
        guard isAllowed(key, nowMs: nowMs) else { return false }
        record(key, nowMs: nowMs)
        return true
    }

    /// Whether an event for `key` at `nowMs` would be within the limit (records nothing).
    func isAllowed(_ key: String, nowMs: Int64) -> Bool {
        (events[key] ?? []).filter { nowMs - $0 < windowMs }.count < limit
    }

    /// Records an event for `key` at `nowMs`, whatever the limit says.
    mutating func record(_ key: String, nowMs: Int64) {
        var times = events[key, default: []].filter { nowMs - $0 < windowMs }
        times.append(nowMs)
        if times.count > limit { times.removeFirst(times.count - limit) }
        events[key] = times
        if events.count > maxKeys { evict(nowMs: nowMs) }
    }

    /// Keys held now (for tests and the memory bound).
    var keyCount: Int { events.count }

    /// Forgets keys with no event in the window, then the least recently used down to 90 % of `maxKeys`, so
    /// that a stream of new keys pays for a sort once every `maxKeys / 10` keys, not once per key.
    private mutating func evict(nowMs: Int64) {
        events = events.filter { nowMs - ($0.value.last ?? .min) < windowMs }
        let target = maxKeys - max(maxKeys / 10, 1)
        guard events.count > target else { return }
        let oldest = events.sorted { ($0.value.last ?? .min) < ($1.value.last ?? .min) }.prefix(events.count - target)
        for (key, _) in oldest { events[key] = nil }
    }
}

/// The emergency-stop and resume requests of each API token, per replica.
actor RequestLimiter {
    private var window: SlidingWindow
    private let clock: any MillisecondClock

    init(perMinute: Int, clock: any MillisecondClock = SystemClock.monotonic) {
        self.clock = clock
        window = SlidingWindow(limit: max(perMinute, 1), windowMs: 60_000)
    }

    func allow(_ key: String) -> Bool {
        window.allow(key, nowMs: clock.nowMs)
    }
}

/// Sign-in attempts, per replica. Three limits, each `perMinute` unless said:
/// - per client address, every attempt: one address cannot guess fast;
/// - per (user name, address), failures only: a guesser locks out only itself, never the user signing in from
///   elsewhere with the right password;
/// - per user name, failures from addresses the user has not signed in from lately, ten times `perMinute`:
///   many addresses guessing one password together are slowed, while the user's own usual address still gets in.
/// Memory is bounded: at most 10,000 keys per limit, keys at most 64 + 64 bytes.
actor LoginLimiter {
    private var byAddress: SlidingWindow
    private var byUserAndAddress: SlidingWindow
    private var byUser: SlidingWindow
    private let clock: any MillisecondClock

    /// What the limiter says about an attempt.
    enum Verdict: Equatable {
        case allowed
        /// Over a limit that applies whatever the password.
        case refused
        /// Allowed only if the address has signed in as this user before (the distributed-guessing limit).
        case onlyFromKnownAddress
    }

    init(perMinute: Int, clock: any MillisecondClock = SystemClock.monotonic) {
        self.clock = clock
        let n = max(perMinute, 1)
        byAddress = SlidingWindow(limit: n, windowMs: 60_000)
        byUserAndAddress = SlidingWindow(limit: n, windowMs: 60_000)
        byUser = SlidingWindow(limit: n * 10, windowMs: 60_000, maxKeys: 10_000)
    }

    /// Records an attempt from `address` for `user` and says whether it may go on.
    func attempt(address: String, user: String) -> Verdict {
        let now = nowMs
        let name = user.lowercased()
        guard byAddress.allow(address, nowMs: now) else { return .refused }
        guard byUserAndAddress.isAllowed("\(name)\u{1F}\(address)", nowMs: now) else { return .refused }
        return byUser.isAllowed(name, nowMs: now) ? .allowed : .onlyFromKnownAddress
    }

    /// A sign-in failed: counts against the (user, address) pair and the user.
    func failed(address: String, user: String) {
        let now = nowMs
        let name = user.lowercased()
        byUserAndAddress.record("\(name)\u{1F}\(address)", nowMs: now)
        byUser.record(name, nowMs: now)
    }

    /// Keys held by the three limits (tests check the memory bound).
    var keyCounts: (address: Int, pair: Int, user: Int) {
        (byAddress.keyCount, byUserAndAddress.keyCount, byUser.keyCount)
    }

    private var nowMs: Int64 { clock.nowMs }
}
