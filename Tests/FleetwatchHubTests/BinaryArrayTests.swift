@testable import FleetwatchStorage
import Foundation
import NIOCore
import PostgresNIO
import Testing

/// The batch statement binds its fixed-width arrays with `BinaryArray` (one pass) instead of postgres-nio's generic
/// array encoding: both must put the same bytes on the wire, times included to the microsecond.
@Suite struct BinaryArrayTests {
    static func bytes(_ value: some PostgresEncodable) throws -> [UInt8] {
        var buffer = ByteBuffer()
        try value.encode(into: &buffer, context: .default)
        return buffer.readBytes(length: buffer.readableBytes) ?? []
    }

    @Test func integerAndFloatArraysEncodeAsPostgresNIODoes() throws {
        let int32s: [Int32] = [0, 1, -1, .max, .min, 123_456]
        let int64s: [Int64] = [0, 1, -1, .max, .min, 1_764_072_000_000_000]
        let doubles: [Double] = [0, -0.0, 1.5, -2.25, .greatestFiniteMagnitude, .infinity, .nan]
        #expect(try Self.bytes(BinaryArray(int32s)) == Self.bytes(int32s))
        #expect(try Self.bytes(BinaryArray(int64s)) == Self.bytes(int64s))
        #expect(try Self.bytes(BinaryArray(doubles)) == Self.bytes(doubles))
        #expect(try Self.bytes(BinaryArray([Int64]())) == Self.bytes([Int64]()))
        #expect(BinaryArray<Int64>.psqlType == [Int64].psqlType && BinaryArray<Int32>.psqlType == [Int32].psqlType)
    }

    @Test func timesEncodeToTheSameMicrosecondAsPostgresNIO() throws {
        // Millisecond times as the hub makes them (`Double(ms) / 1000` since 1970), where the floating-point
        // conversion rounds: the microseconds must come out as postgres-nio's `Date` encoding truncates them.
        var rng = PendingLiveTests.SplitMix(state: 0xF1EE7)   // seeded: a failing case comes back on every run
        let times = (0..<2_000).map { _ in Date(timeIntervalSince1970: Double(Int64.random(in: 0...4_102_444_800_000, using: &rng)) / 1000) }
            + [Date(timeIntervalSince1970: 0), Date(timeIntervalSince1970: 946_684_800), Date(timeIntervalSince1970: -1.5)]
        #expect(try Self.bytes(BinaryArray(times)) == Self.bytes(times))
        #expect(BinaryArray<Date>.psqlType == [Date].psqlType)
    }
}
