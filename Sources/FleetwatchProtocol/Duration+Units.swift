/// The one place a `Duration` becomes a number: seconds or milliseconds for settings, SQL intervals, wire
/// fields and figures.
extension Duration {
    /// The duration in seconds, as a floating-point number.
    @inlinable public var inSeconds: Double {
        let (s, a) = components
        return Double(s) + Double(a) / 1e18
    }

    /// The duration in milliseconds, as a floating-point number.
    @inlinable public var inMilliseconds: Double {
        let (s, a) = components
        return Double(s) * 1000 + Double(a) / 1e15
    }

    /// Whole milliseconds (truncated toward zero).
    @inlinable public var wholeMilliseconds: Int64 {
        let (s, a) = components
        return s * 1000 + a / 1_000_000_000_000_000
    }
}
