/// Constants of the fleetwatch wire protocol. The byte layout is documented in `docs/protocol.md`.
public enum WireProtocol {
    /// The newest protocol version this library speaks (and what the agent offers in its hello).
    public static let version: UInt16 = 3
    /// Every version this library speaks: v1 and v2 agents keep working with a v3 hub.
    public static let supportedVersions: ClosedRange<UInt16> = 1...3
    /// The first version with delta batches (frame 0x09, docs/protocol.md §11).
    public static let deltaBatchVersion: UInt16 = 3
    /// The WebSocket path agents connect to.
    public static let agentPath = "/agent/v1"
    /// Longest accepted bot id, in UTF-8 bytes.
    public static let maxBotIDBytes = 128
    /// Longest accepted bot token, in UTF-8 bytes.
    public static let maxTokenBytes = 256
    /// Longest accepted agent version string, in UTF-8 bytes.
    public static let maxAgentVersionBytes = 64
    /// Longest accepted metric name, in UTF-8 bytes.
    public static let maxMetricNameBytes = 128
    /// Longest accepted string state value, in UTF-8 bytes.
    public static let maxStateBytes = 256
    /// `string` cut to at most `maxBytes` UTF-8 bytes on a character boundary.
    public static func truncated(_ string: String, maxBytes: Int) -> String {
        guard string.utf8.count > maxBytes else { return string }
        var out = ""
        for c in string {
            if out.utf8.count + c.utf8.count > maxBytes { break }
            out.append(c)
        }
        return out
    }

    /// A state value as the hub accepts it: NUL characters (which PostgreSQL text cannot hold) removed, cut to
    /// `maxStateBytes` on a character boundary.
    public static func stateValue(_ value: String) -> String {
        let clean = value.utf8.contains(0) ? String(value.unicodeScalars.filter { $0 != "\u{0}" }) : value
        return truncated(clean, maxBytes: maxStateBytes)
    }

    /// Whether `name` is a valid bot id or metric name: ASCII letters, digits and `_ . : - /`.
    public static func isValidName(_ name: String, maxBytes: Int) -> Bool {
        let utf8 = name.utf8
        guard !utf8.isEmpty, utf8.count <= maxBytes else { return false }
        for byte in utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "."),
                 UInt8(ascii: ":"), UInt8(ascii: "-"), UInt8(ascii: "/"):
                continue
            default:
                return false
            }
        }
        return true
    }
}
