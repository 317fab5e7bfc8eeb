/// `LiveUpdate` as the JSON `JSONDecoder` reads back (keys `b`, `t` in unix ms, `v`, `s`), written by hand: the
/// publisher writes one per bot per flush, thousands a second in a large fleet, and `JSONEncoder` cost more
/// than the rest of the flush together. Non-finite numbers (JSON has none) are left out.
enum LiveUpdateJSON {
    static func encode(_ u: LiveUpdate) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(64 + u.bot.utf8.count + u.numbers.count * 32 + u.states.count * 32)
        var o = JSONObject(&out)
        o.string("b", u.bot, &out)
        let ms = (u.at.timeIntervalSince1970 * 1000).rounded()
        o.integer("t", ms.isFinite ? Int64(exactly: ms) ?? 0 : 0, &out)
        o.numbers("v", u.numbers, &out)
        o.strings("s", u.states, &out)
        o.close(&out)
        return String(decoding: out, as: UTF8.self)
    }

    private static let hex = Array("0123456789abcdef".utf8)

    /// A JSON string: quotes, backslashes and control characters escaped, everything else as UTF-8.
    static func string(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        // Nearly every string (names, ids, dates) needs no escape: copied in one piece (per-byte appends were the
        // largest single cost of `/api/bots` at 5,000 bots).
        let copied = s.utf8.withContiguousStorageIfAvailable { bytes -> Bool in
            guard !bytes.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) else { return false }
            out.append(contentsOf: bytes)
            return true
        }
        if copied == true {
            out.append(UInt8(ascii: "\""))
            return
        }
        for byte in s.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\\"): out.append(contentsOf: #"\\"#.utf8)
            case 0..<0x20:
                out.append(contentsOf: #"\u00"#.utf8)
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0xF)])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
