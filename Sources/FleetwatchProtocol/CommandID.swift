import NIOCore

/// An emergency command's id: 16 bytes on the wire, a UUID in the ledger, and one text form everywhere a person
/// reads it (logs of the agent and the hub, the API, the dashboard): lowercase `8-4-4-4-12` hex.
public struct CommandID: Hashable, Sendable, Comparable, CustomStringConvertible, LosslessStringConvertible, Codable {
    /// The first and last 8 bytes, big-endian (the byte order of the wire and of the UUID's text).
    public let high: UInt64
    public let low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// From its 16 bytes; nil for any other length.
    public init?<Bytes: Collection>(bytes: Bytes) where Bytes.Element == UInt8 {
        guard bytes.count == 16 else { return nil }
        var high: UInt64 = 0, low: UInt64 = 0
        for (i, b) in bytes.enumerated() {
            if i < 8 { high = high << 8 | UInt64(b) } else { low = low << 8 | UInt64(b) }
        }
        self.init(high: high, low: low)
    }

    /// A new random (version-4 UUID) id.
    public static func random() -> CommandID {
        var rng = SystemRandomNumberGenerator()
        let high = (rng.next() as UInt64) & ~0xF000 | 0x4000                       // version 4
        let low = (rng.next() as UInt64) & 0x3FFF_FFFF_FFFF_FFFF | 0x8000_0000_0000_0000   // RFC 4122 variant
        return CommandID(high: high, low: low)
    }

    /// The 16 bytes.
    public var bytes: [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: high >> (56 - 8 * $0)) } + (0..<8).map { UInt8(truncatingIfNeeded: low >> (56 - 8 * $0)) }
    }

    /// Lowercase `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
    public var description: String {
        let hex = bytes.map { b -> String in
            let digits = Array("0123456789abcdef")
            return String([digits[Int(b >> 4)], digits[Int(b & 0xF)]])
        }
        return [hex[0..<4], hex[4..<6], hex[6..<8], hex[8..<10], hex[10..<16]].map { $0.joined() }.joined(separator: "-")
    }

    /// Parses the text form (either case; the dashes optional, as PostgreSQL's `uuid` input accepts).
    public init?(_ text: String) {
        let hex = text.filter { $0 != "-" }
        guard hex.count == 32, text.count == 32 || text.count == 36, hex.allSatisfy(\.isHexDigit), hex.allSatisfy(\.isASCII) else { return nil }
        var bytes: [UInt8] = []
        var i = hex.startIndex
        while i < hex.endIndex {
            let j = hex.index(i, offsetBy: 2)
            guard let b = UInt8(hex[i..<j], radix: 16) else { return nil }
            bytes.append(b)
            i = j
        }
        if text.count == 36 {
            let dashes = text.enumerated().filter { $0.element == "-" }.map(\.offset)
            guard dashes == [8, 13, 18, 23] else { return nil }
        }
        self.init(bytes: bytes)
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let id = CommandID(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "\(text) is not a command id (a UUID)"))
        }
        self = id
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    public static func < (a: CommandID, b: CommandID) -> Bool { (a.high, a.low) < (b.high, b.low) }
}

extension ByteBuffer {
    mutating func writeCommandID(_ id: CommandID) {
        writeInteger(id.high, endianness: .big)
        writeInteger(id.low, endianness: .big)
    }

    mutating func readCommandID() throws -> CommandID {
        guard let high = readInteger(endianness: .big, as: UInt64.self), let low = readInteger(endianness: .big, as: UInt64.self) else {
            throw WireError(.truncated, "frame ends inside command id")
        }
        return CommandID(high: high, low: low)
    }
}
