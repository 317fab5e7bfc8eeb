import FleetwatchAlerting
import Foundation

/// The reference system's "log alerts" as a file: one JSON object per line for every alert event (fired,
/// repeated, resolved), appended to `path`. When the file would pass `maxBytes` it is rotated: `path.1` …
/// `path.keep` (the oldest is deleted). The file is created 0640; one writer per replica (give each replica its
/// own path, or the replicas' lines interleave whole).
public actor LogFileNotifier: Notifier {
    public nonisolated let name = "log_file"
    public nonisolated let minimumLevel: AlertLevel
    let path: String
    let maxBytes: Int
    let keep: Int
    private var handle: FileHandle?
    private var size = 0
    private let encoder: JSONEncoder

    public init(path: String, maxBytes: Int = 10 << 20, keep: Int = 5, minimumLevel: AlertLevel = .info) {
        self.path = path
        self.maxBytes = max(maxBytes, 4096)
        self.keep = max(keep, 1)
        self.minimumLevel = minimumLevel
        let e = JSONEncoder()
        e.dateEncodingStrategy = .iso8601
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder = e
    }

    /// One line per event: the event's fields and its headline.
    struct Line: Encodable {
        let at: Date
        let event: String
        let alertID: Int64
        let bot: String
        let rule: String
        let metric: String
        let level: String
        let value: Double
        let limit: Double
        let state: String?
        let summary: String
        let headline: String
        let firedAt: Date
    }

    public func notify(_ event: AlertEvent) async throws {
        var data = try encoder.encode(Line(at: event.at, event: event.kind.rawValue, alertID: event.alertID, bot: event.bot,
                                           rule: event.ruleID, metric: event.metric, level: event.level.rawValue,
                                           value: event.value.isFinite ? event.value : 0, limit: event.limit.isFinite ? event.limit : 0,
                                           state: event.state, summary: event.summary, headline: event.headline, firedAt: event.firedAt))
        data.append(0x0A)
        do {
            if handle == nil { try open() }
            if size > 0, size + data.count > maxBytes { try rotate() }
            try handle?.write(contentsOf: data)
            size += data.count
        } catch {
            handle = nil
            throw NotifyError("cannot write the alert log \(path): \(error.localizedDescription)", retryable: true)
        }
    }

    private func open() throws {
        let fm = FileManager.default
        if !fm.fileExists(atPath: path) {
            guard fm.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o640]) else {
                throw NotifyError("cannot create the alert log \(path) (does its directory exist and may the hub write it?)", retryable: false)
            }
        }
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        size = Int(try h.seekToEnd())
        handle = h
    }

    private func rotate() throws {
        try handle?.close()
        handle = nil
        let fm = FileManager.default
        try? fm.removeItem(atPath: "\(path).\(keep)")
        for n in stride(from: keep - 1, through: 1, by: -1) where fm.fileExists(atPath: "\(path).\(n)") {
            try fm.moveItem(atPath: "\(path).\(n)", toPath: "\(path).\(n + 1)")
        }
        try fm.moveItem(atPath: path, toPath: "\(path).1")
        try open()
    }
}
