/// How PostgreSQL compresses the sample arrays of a large batch as the hub writes it (`hub.toast_compression`).
///
/// A batch of more than about 150 samples is compressed by PostgreSQL's TOAST when it is stored. pglz, its
/// default, costs about as much CPU as the rest of the insert; lz4 a fraction of it, for rows about half again
/// as large. Those rows live for minutes only: the review upkeep merges each bot's closed minutes into one row,
/// and the merge always writes pglz (schema 0012), so what the samples take in the long run does not change.
public enum ToastCompression: String, Sendable, CaseIterable {
    /// lz4 when the server was built with it, otherwise the server's default.
    case auto
    case lz4
    case pglz

    /// What the hub's write connections set as `default_toast_compression`, given the methods the server offers
    /// (`ServerFacts.toastCompressions`); nil: the server's default.
    public func sessionValue(offered: [String]) throws -> String? {
        switch self {
        case .auto:
            return offered.contains("lz4") ? "lz4" : nil
        case .pglz:
            return "pglz"
        case .lz4:
            guard offered.contains("lz4") else {
                throw ConfigurationError("hub.toast_compression is lz4, but this PostgreSQL server was built without lz4 "
                                         + "(it offers \(offered.isEmpty ? "none" : offered.joined(separator: ", "))): "
                                         + "set hub.toast_compression to auto or pglz")
            }
            return "lz4"
        }
    }
}
