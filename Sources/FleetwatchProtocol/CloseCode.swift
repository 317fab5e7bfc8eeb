/// WebSocket close codes of protocol v1 (4000–4999 is the application range).
///
/// The agent reads the code to decide what to do next: retry later, drop the batch the hub refused,
/// or report a configuration error to the operator.
public struct CloseCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// A frame could not be parsed. The agent reconnects.
    public static let protocolError = CloseCode(rawValue: 4000)
    /// The hello asked for a protocol version the hub does not speak. Upgrade the agent or the hub.
    public static let unsupportedVersion = CloseCode(rawValue: 4001)
    /// Unknown bot id or wrong token. Check the agent's bot id and token.
    public static let authenticationFailed = CloseCode(rawValue: 4002)
    /// A frame was larger than the hub's frame limit. The agent drops that batch.
    public static let frameTooLarge = CloseCode(rawValue: 4003)
    /// A batch inflated past the hub's limit (zip bomb). The agent drops that batch.
    public static let payloadTooLarge = CloseCode(rawValue: 4004)
    /// A batch was corrupt or broke the batch limits. The agent drops that batch.
    public static let badBatch = CloseCode(rawValue: 4005)
    /// The first frame was not a hello, or it came too late.
    public static let helloExpected = CloseCode(rawValue: 4006)
    /// Another connection for the same bot id took over. Two processes may share one bot id.
    public static let replaced = CloseCode(rawValue: 4007)
    /// Nothing arrived for two heartbeat intervals.
    public static let heartbeatTimeout = CloseCode(rawValue: 4008)
    /// The hub cannot reach PostgreSQL; nothing was acknowledged. The agent retries later.
    public static let storageUnavailable = CloseCode(rawValue: 4010)
    /// A single WebSocket frame exceeded the hub's limit (standard code 1009, sent by the WebSocket layer).
    public static let messageTooBig = CloseCode(rawValue: 1009)
    /// The hub is shutting down (standard code 1001). The agent reconnects, maybe to another replica.
    public static let goingAway = CloseCode(rawValue: 1001)

    /// Whether the agent should discard the batch it sent last (it can never be accepted).
    public var dropsOffendingBatch: Bool {
        self == .frameTooLarge || self == .payloadTooLarge || self == .badBatch || self == .messageTooBig
    }

    /// Whether this code means the agent's own configuration is wrong.
    public var isConfigurationError: Bool {
        self == .authenticationFailed || self == .unsupportedVersion
    }

    public var description: String {
        switch self {
        case .protocolError: return "4000 protocol error"
        case .unsupportedVersion: return "4001 unsupported protocol version"
        case .authenticationFailed: return "4002 authentication failed"
        case .frameTooLarge: return "4003 frame too large"
        case .payloadTooLarge: return "4004 decompressed payload too large"
        case .badBatch: return "4005 bad batch"
        case .helloExpected: return "4006 hello expected"
        case .replaced: return "4007 replaced by a newer connection"
        case .heartbeatTimeout: return "4008 heartbeat timeout"
        case .storageUnavailable: return "4010 storage unavailable"
        case .goingAway: return "1001 going away"
        case .messageTooBig: return "1009 message too big"
        default: return "\(rawValue)"
        }
    }
}
