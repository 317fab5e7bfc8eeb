import FleetwatchProtocol
/// Capped exponential backoff with jitter. Pure: the random source is passed in.
public struct Backoff: Sendable, Equatable {
    /// Delay before the first retry.
    public var initial: Duration
    /// Longest delay.
    public var maximum: Duration
    /// Growth per failed attempt.
    public var multiplier: Double
    /// Fraction of the delay that is random (0: none, 1: "full jitter").
    public var jitter: Double

    public init(initial: Duration = .milliseconds(200), maximum: Duration = .seconds(30),
                multiplier: Double = 2, jitter: Double = 0.5) {
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
        self.jitter = min(max(jitter, 0), 1)
    }

    /// The delay before retry number `attempt` (0-based); `unit` is a random number in 0..<1.
    public func delay(attempt: Int, unit: Double) -> Duration {
        let base = initial.inSeconds * pow(multiplier, Double(min(attempt, 62)))
        let capped = min(base, maximum.inSeconds)
        let seconds = capped * (1 - jitter) + capped * jitter * unit
        return .nanoseconds(Int64(seconds * 1e9))
    }

    private func pow(_ x: Double, _ y: Double) -> Double {
        var r = 1.0
        for _ in 0..<Int(y) { r *= x; if r > 1e12 { break } }
        return r
    }
}
