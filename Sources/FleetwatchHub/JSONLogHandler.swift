import Foundation
import Logging
import Synchronization

/// `--log-format json`: one JSON object per line on standard error, for log shippers (Loki, Elasticsearch,
/// CloudWatch): `{"time": "…", "level": "warning", "label": "fleetwatch.hub", "message": "…", "source": "…", …metadata}`.
/// Metadata keys become fields (a field named like one of the fixed ones is prefixed `meta_`).
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    let label: String
    private static let output = Mutex(FileHandle.standardError)
    static let reserved: Set<String> = ["time", "level", "label", "message", "source"]

    public init(label: String, level: Logger.Level = .info) {
        self.label = label
        self.logLevel = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, source: String,
                    file: String, function: String, line: UInt) {
        Self.output.withLock { $0.write(Self.line(level: level, message: message, label: label, source: source,
                                                  metadata: metadata.merging(metadataProvider?.get() ?? [:]) { $1 }
                                                      .merging(explicit ?? [:]) { $1 })) }
    }

    /// One line: the JSON object and a newline.
    static func line(level: Logger.Level, message: Logger.Message, label: String, source: String, metadata: Logger.Metadata,
                     at date: Date = Date()) -> Data {
        var object: [String: Any] = [:]
        for (key, value) in metadata { object[reserved.contains(key) ? "meta_" + key : key] = json(value) }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        object["time"] = formatter.string(from: date)
        object["level"] = level.rawValue
        object["label"] = label
        object["message"] = message.description
        object["source"] = source
        var data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        data.append(0x0A)
        return data
    }

    static func json(_ value: Logger.Metadata.Value) -> Any {
        switch value {
        case .string(let s): return s
        case .stringConvertible(let c): return c.description
        case .array(let a): return a.map(json)
        case .dictionary(let d): return d.mapValues(json)
        }
    }
}
