/// A frame or batch that cannot be decoded. `code` says why, `closeCode` is what the hub sends back.
public struct WireError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Why decoding failed.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Base: String, Hashable, Sendable {
            case truncated, unknownFrameType, unsupportedVersion, invalidField, frameTooLarge
            case payloadTooLarge, corruptPayload, trailingBytes, limitExceeded
        }
        fileprivate let base: Base
        /// The frame ended before a field was complete.
        public static let truncated = Code(base: .truncated)
        /// The first byte is not a known frame type.
        public static let unknownFrameType = Code(base: .unknownFrameType)
        /// The peer speaks a protocol version this side does not.
        public static let unsupportedVersion = Code(base: .unsupportedVersion)
        /// A field holds a value outside its allowed range or alphabet.
        public static let invalidField = Code(base: .invalidField)
        /// The frame is larger than the configured limit.
        public static let frameTooLarge = Code(base: .frameTooLarge)
        /// The batch inflates to more than the configured limit.
        public static let payloadTooLarge = Code(base: .payloadTooLarge)
        /// The compressed payload is not valid zlib data or does not inflate to its declared size.
        public static let corruptPayload = Code(base: .corruptPayload)
        /// Bytes follow the last field of a frame or payload.
        public static let trailingBytes = Code(base: .trailingBytes)
        /// The batch has more series or samples than allowed.
        public static let limitExceeded = Code(base: .limitExceeded)
        public var description: String { base.rawValue }
    }

    /// Why decoding failed.
    public let code: Code
    /// What was wrong, for logs and the close reason.
    public let detail: String

    public init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    /// The WebSocket close code the hub answers this error with.
    public var closeCode: CloseCode {
        switch code.base {
        case .unsupportedVersion: return .unsupportedVersion
        case .frameTooLarge: return .frameTooLarge
        case .payloadTooLarge: return .payloadTooLarge
        case .corruptPayload, .limitExceeded: return .badBatch
        default: return .protocolError
        }
    }

    public var description: String { "\(code): \(detail)" }
}
