import Foundation

/// Writes one JSON object's members into a byte array: `init` opens it, `close` ends it. An absent optional
/// or a non-finite number leaves its member out.
struct JSONObject {
    private var first = true

    init(_ out: inout [UInt8]) { out.append(UInt8(ascii: "{")) }

    mutating func key(_ name: String, _ out: inout [UInt8]) {
        if !first { out.append(UInt8(ascii: ",")) }
        first = false
        LiveUpdateJSON.string(name, into: &out)
        out.append(UInt8(ascii: ":"))
    }

    mutating func string(_ name: String, _ value: String?, _ out: inout [UInt8]) {
        guard let value else { return }
        key(name, &out)
        LiveUpdateJSON.string(value, into: &out)
    }

    mutating func bool(_ name: String, _ value: Bool, _ out: inout [UInt8]) {
        key(name, &out)
        out.append(contentsOf: (value ? "true" : "false").utf8)
    }

    mutating func integer(_ name: String, _ value: Int64, _ out: inout [UInt8]) {
        key(name, &out)
        out.append(contentsOf: String(value).utf8)
    }

    mutating func number(_ name: String, _ value: Double, _ out: inout [UInt8]) {
        guard value.isFinite else { return }
        key(name, &out)
        out.append(contentsOf: value.description.utf8)
    }

    mutating func date(_ name: String, _ value: Date?, _ out: inout [UInt8]) {
        guard let value else { return }
        key(name, &out)
        out.append(UInt8(ascii: "\""))
        ISO8601Seconds.write(value, into: &out)
        out.append(UInt8(ascii: "\""))
    }

    /// A member holding an object of numbers (non-finite ones left out).
    mutating func numbers<S: Sequence<(key: String, value: Double)>>(_ name: String, _ members: S, _ out: inout [UInt8]) {
        key(name, &out)
        var inner = JSONObject(&out)
        for (k, v) in members { inner.number(k, v, &out) }
        inner.close(&out)
    }

    /// A member holding an object of strings.
    mutating func strings<S: Sequence<(key: String, value: String)>>(_ name: String, _ members: S, _ out: inout [UInt8]) {
        key(name, &out)
        var inner = JSONObject(&out)
        for (k, v) in members { inner.string(k, v, &out) }
        inner.close(&out)
    }

    func close(_ out: inout [UInt8]) { out.append(UInt8(ascii: "}")) }
}

/// A date as `JSONEncoder`'s `.iso8601` writes it: UTC, to the second (`2026-12-04T18:30:05Z`).
enum ISO8601Seconds {
    static func write(_ date: Date, into out: inout [UInt8]) {
        let seconds = Int64(date.timeIntervalSince1970.rounded(.down))
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        digits(year, 4, into: &out)
        out.append(UInt8(ascii: "-"))
        digits(month, 2, into: &out)
        out.append(UInt8(ascii: "-"))
        digits(day, 2, into: &out)
        out.append(UInt8(ascii: "T"))
        digits(secondOfDay / 3_600, 2, into: &out)
        out.append(UInt8(ascii: ":"))
        digits(secondOfDay / 60 % 60, 2, into: &out)
        out.append(UInt8(ascii: ":"))
        digits(secondOfDay % 60, 2, into: &out)
        out.append(UInt8(ascii: "Z"))
    }

    private static func digits(_ value: Int64, _ width: Int, into out: inout [UInt8]) {
        if value < 0 {
            out.append(UInt8(ascii: "-"))
            digits(-value, width, into: &out)
            return
        }
        var count = 1
        var power: Int64 = 1
        while value / power >= 10 { power *= 10; count += 1 }
        for _ in count..<max(width, count) { out.append(UInt8(ascii: "0")) }
        // Most significant digit first, without a scratch buffer (this runs six times per date, per bot).
        while power > 0 {
            out.append(UInt8(ascii: "0") + UInt8(value / power % 10))
            power /= 10
        }
    }
}
