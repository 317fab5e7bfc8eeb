import Foundation

/// A sliding-window limit per key (an API token): at most `limit` events in any `window`. Pure: time comes in.
struct SlidingWindow: Sendable {
    let limit: Int
    let windowMs: Int64
    private var events: [String: [Int64]] = [:]

    init(limit: Int, windowMs: Int64) {
        self.limit = limit
        self.windowMs = windowMs
    }

    /// Records an event for `key` at `nowMs` if the limit allows it; returns whether it did.
    mutating func allow(_ key: String, nowMs: Int64) -> Bool {
        // Bounded memory under many distinct keys (a scan of user names): forget keys with no recent event.
        if events.count > 10_000 { events = events.filter { nowMs - ($0.value.last ?? .min) < windowMs } }
        var times = events[key, default: []].filter { nowMs - $0 < windowMs }
        guard times.count < limit else {
            events[key] = times
            return false
        }
        times.append(nowMs)
        events[key] = times
        return true
    }
}

/// The emergency-stop and resume requests of each API token, per replica.
actor RequestLimiter {
    private var window: SlidingWindow
    private let started = ContinuousClock.now

    init(perMinute: Int) {
        window = SlidingWindow(limit: max(perMinute, 1), windowMs: 60_000)
    }

    func allow(_ key: String) -> Bool {
        let (s, a) = (ContinuousClock.now - started).components
        return window.allow(key, nowMs: s * 1000 + a / 1_000_000_000_000_000)
    }
}

/// Sign-in attempts per client address and per user name, per replica: a password guesser gets 429.
actor LoginLimiter {
    private var byAddress: SlidingWindow
    private var byUser: SlidingWindow
    private let started = ContinuousClock.now

    init(perMinute: Int) {
        byAddress = SlidingWindow(limit: max(perMinute, 1), windowMs: 60_000)
        byUser = SlidingWindow(limit: max(perMinute, 1), windowMs: 60_000)
    }

    /// Records an attempt; false when either the address or the user name is over the limit.
    func allow(address: String, user: String) -> Bool {
        let (s, a) = (ContinuousClock.now - started).components
        let now = s * 1000 + a / 1_000_000_000_000_000
        let addressOK = byAddress.allow(address, nowMs: now)
        let userOK = byUser.allow(user.lowercased(), nowMs: now)
        return addressOK && userOK
    }
}
