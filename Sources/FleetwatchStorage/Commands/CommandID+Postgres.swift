import FleetwatchProtocol
import Foundation
import NIOCore
import PostgresNIO

/// A command id is a `uuid` column: bound and read as one, with no conversion at the call site.
extension CommandID: PostgresNonThrowingEncodable, PostgresDecodable, PostgresArrayEncodable, PostgresArrayDecodable {
    public static var psqlType: PostgresDataType { .uuid }
    public static var psqlFormat: PostgresFormat { .binary }
    public static var psqlArrayType: PostgresDataType { .uuidArray }

    public func encode<JSONEncoder: PostgresJSONEncoder>(into byteBuffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>) {
        byteBuffer.writeInteger(high, endianness: .big)
        byteBuffer.writeInteger(low, endianness: .big)
    }

    public init<JSONDecoder: PostgresJSONDecoder>(from buffer: inout ByteBuffer, type: PostgresDataType, format: PostgresFormat,
                                                  context: PostgresDecodingContext<JSONDecoder>) throws {
        switch (format, type) {
        case (.binary, .uuid):
            guard let high = buffer.readInteger(endianness: .big, as: UInt64.self),
                  let low = buffer.readInteger(endianness: .big, as: UInt64.self) else { throw PostgresDecodingError.Code.failure }
            self.init(high: high, low: low)
        case (_, .uuid), (_, .text), (_, .varchar):
            guard let text = buffer.readString(length: buffer.readableBytes), let id = CommandID(text) else {
                throw PostgresDecodingError.Code.failure
            }
            self = id
        default:
            throw PostgresDecodingError.Code.typeMismatch
        }
    }
}

extension CommandID {
    /// The same id as a Foundation `UUID`.
    public var uuid: UUID {
        let b = bytes
        return UUID(uuid: (b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]))
    }

    public init(_ uuid: UUID) {
        self = withUnsafeBytes(of: uuid.uuid) { CommandID(bytes: $0)! }
    }
}
