import Logging
import Synchronization

/// Keeps what is logged through it (level and message), for tests that check what an operator reads.
final class RecordingLog: LogHandler, @unchecked Sendable {
    struct Line: Sendable { let level: Logger.Level; let message: String }
    private let lines = Mutex<[Line]>([])
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    var all: [Line] { lines.withLock { $0 } }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        lines.withLock { $0.append(Line(level: event.level, message: "\(event.message)")) }
    }
}
