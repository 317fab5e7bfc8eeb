import Logging
import Synchronization

/// Keeps what is logged through it (level and message), for tests that check what an operator reads.
public final class RecordingLog: LogHandler, @unchecked Sendable {
    public struct Line: Sendable { public let level: Logger.Level; public let message: String }
    private let lines = Mutex<[Line]>([])
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .trace

    public init() {}

    public var all: [Line] { lines.withLock { $0 } }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        lines.withLock { $0.append(Line(level: event.level, message: "\(event.message)")) }
    }
}
