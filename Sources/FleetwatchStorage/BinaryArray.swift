import Foundation
import NIOCore
import PostgresNIO

/// A fixed-width element of a PostgreSQL binary array.
protocol BinaryArrayElement {
    static var elementOID: UInt32 { get }
    static var arrayType: PostgresDataType { get }
    static var byteWidth: Int { get }
    func storeBigEndian(to pointer: UnsafeMutableRawPointer)
}

extension Int16: BinaryArrayElement {
    static var elementOID: UInt32 { 21 }
    static var arrayType: PostgresDataType { .int2Array }
    static var byteWidth: Int { 2 }
    func storeBigEndian(to p: UnsafeMutableRawPointer) { p.storeBytes(of: self.bigEndian, as: Int16.self) }
}

extension Int32: BinaryArrayElement {
    static var elementOID: UInt32 { 23 }
    static var arrayType: PostgresDataType { .int4Array }
    static var byteWidth: Int { 4 }
    func storeBigEndian(to p: UnsafeMutableRawPointer) { p.storeBytes(of: self.bigEndian, as: Int32.self) }
}

extension Int64: BinaryArrayElement {
    static var elementOID: UInt32 { 20 }
    static var arrayType: PostgresDataType { .int8Array }
    static var byteWidth: Int { 8 }
    func storeBigEndian(to p: UnsafeMutableRawPointer) { p.storeBytes(of: self.bigEndian, as: Int64.self) }
}

extension Double: BinaryArrayElement {
    static var elementOID: UInt32 { 701 }
    static var arrayType: PostgresDataType { .float8Array }
    static var byteWidth: Int { 8 }
    func storeBigEndian(to p: UnsafeMutableRawPointer) { p.storeBytes(of: self.bitPattern.bigEndian, as: UInt64.self) }
}

extension Date: BinaryArrayElement {
    static var elementOID: UInt32 { 1184 }
    static var arrayType: PostgresDataType { .timestamptzArray }
    static var byteWidth: Int { 8 }
    /// Microseconds since 2000-01-01, to the nearest: a millisecond time (`Double(ms) / 1000`, as the hub makes
    /// sample times) is stored exactly. postgres-nio's own `Date` encoding truncates, which stored about a quarter of
    /// millisecond times a microsecond early: `…:00.000` as `…:59.999999`, a sample on a minute's or a day's first
    /// millisecond counted in the one before by `date_trunc` and by a review's `ts >= day`.
    func storeBigEndian(to p: UnsafeMutableRawPointer) {
        let micros = Int64((timeIntervalSince(Self.postgresEpoch) * 1_000_000).rounded())
        p.storeBytes(of: micros.bigEndian, as: Int64.self)
    }
    private static let postgresEpoch = Date(timeIntervalSince1970: 946_684_800)
}

/// A one-dimensional array bound in PostgreSQL's binary array format, written in one pass into the
/// outgoing buffer (postgres-nio's generic array encoding costs several calls per element, and a batch
/// write binds thousands of elements).
struct BinaryArray<Element: BinaryArrayElement>: PostgresNonThrowingEncodable {
    let values: [Element]

    init(_ values: [Element]) { self.values = values }

    static var psqlType: PostgresDataType { Element.arrayType }
    static var psqlFormat: PostgresFormat { .binary }

    func encode<JSONEncoder: PostgresJSONEncoder>(into buffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>) {
        let width = Element.byteWidth
        let size = values.isEmpty ? 12 : 20 + values.count * (4 + width)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { out in
            let base = out.baseAddress!
            func put32(_ v: UInt32, _ at: Int) { (base + at).storeBytes(of: v.bigEndian, as: UInt32.self) }
            put32(values.isEmpty ? 0 : 1, 0)     // dimensions
            put32(0, 4)                            // no NULLs
            put32(Element.elementOID, 8)
            guard !values.isEmpty else { return 12 }
            put32(UInt32(values.count), 12)
            put32(1, 16)                           // lower bound
            var at = 20
            let length = UInt32(width).bigEndian
            values.withUnsafeBufferPointer { elements in
                for v in elements {
                    (base + at).storeBytes(of: length, as: UInt32.self)
                    v.storeBigEndian(to: base + at + 4)
                    at += 4 + width
                }
            }
            return size
        }
    }
}
