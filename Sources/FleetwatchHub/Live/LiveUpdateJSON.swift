/// `LiveUpdate` as the JSON `JSONDecoder` reads back (keys `b`, `t` in unix ms, `v`, `s`), written by hand: the
/// publisher writes one per bot per flush, thousands a second in a large fleet, and `JSONEncoder` cost more
/// than the rest of the flush together. Non-finite numbers (JSON has none) are left out.
enum LiveUpdateJSON {
    static func encode(_ u: LiveUpdate) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(64 + u.bot.utf8.count + u.numbers.count * 32 + u.states.count * 32)
        out.append(contentsOf: #"{"b":"#.utf8)
        string(u.bot, into: &out)
        out.append(contentsOf: #","t":"#.utf8)
        let ms = (u.at.timeIntervalSince1970 * 1000).rounded()
        out.append(contentsOf: (ms.isFinite ? String(Int64(exactly: ms) ?? 0) : "0").utf8)
        out.append(contentsOf: #","v":{"#.utf8)
        var first = true
        for (name, value) in u.numbers where value.isFinite {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            string(name, into: &out)
            out.append(UInt8(ascii: ":"))
            out.append(contentsOf: value.description.utf8)
        }
        out.append(contentsOf: #"},"s":{"#.utf8)
        first = true
        for (name, value) in u.states {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            string(name, into: &out)
            out.append(UInt8(ascii: ":"))
            string(value, into: &out)
        }
        out.append(contentsOf: "}}".utf8)
        return String(decoding: out, as: UTF8.self)
    }

    private static let hex = Array("0123456789abcdef".utf8)

    /// A JSON string: quotes, backslashes and control characters escaped, everything else as UTF-8.
    static func string(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
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
