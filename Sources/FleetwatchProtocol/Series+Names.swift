extension Array where Element == Series {
    /// Whether these series carry `names`, in this order. A bot sends the same names in the same order batch after
    /// batch, so per-bot caches keyed by a batch's names check this first. Names shared with an earlier batch
    /// (protocol 3) compare by their storage, without reading the characters.
    @inlinable public func hasNames(_ names: [String]) -> Bool {
        guard count == names.count else { return false }
        for i in indices where self[i].name != names[i] { return false }
        return true
    }

    /// Whether `other` has the same names with the same kinds, in the same order.
    @inlinable public func hasSameNamesAndKinds(as other: [Series]) -> Bool {
        guard count == other.count else { return false }
        for i in indices where self[i].name != other[i].name || self[i].kind != other[i].kind { return false }
        return true
    }
}
