import FleetwatchProtocol
import Foundation
import NIOCore

/// Command results on disk (`commands.journal` in the spool directory), so a restarted bot neither runs a
/// finished command again nor forgets one it was in the middle of. One hex-encoded result frame per line,
/// appended and flushed before the result is sent to the hub.
public struct CommandJournal {
    let url: URL
    private var handle: FileHandle?

    init(directory: String) throws {
        url = URL(fileURLWithPath: directory, isDirectory: true).appendingPathComponent("commands.journal")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    /// Every result recorded, oldest first; unreadable lines are skipped.
    func load() -> [CommandResultFrame] {
        guard let data = try? Data(contentsOf: url) else { return [] }
        return Self.parse(data)
    }

    /// The results in a journal file's contents, oldest first. Pure, and total: a line that is not the hex of
    /// a command result frame (a torn last write, a corrupt byte) is skipped, never fatal, and costs only that
    /// line (the parsers' fuzz target, `Fuzz/parsers`, feeds it arbitrary bytes).
    public static func parse(_ contents: Data) -> [CommandResultFrame] {
        // Invalid UTF-8 becomes U+FFFD, which no hex line contains: one bad byte loses one line, not the journal.
        let text = String(decoding: contents, as: UTF8.self)
        return text.split(separator: "\n").compactMap { line in
            guard let bytes = Self.bytes(hex: line), case .commandResult(let r)? = try? Frame.decode(ByteBuffer(bytes: bytes)) else { return nil }
            return r
        }
    }

    mutating func append(_ result: CommandResultFrame) {
        if handle == nil {   // created on first use, so a bot that never got a command has no journal
            if !FileManager.default.fileExists(atPath: url.path) { FileManager.default.createFile(atPath: url.path, contents: nil) }
            handle = try? FileHandle(forWritingTo: url)
            _ = try? handle?.seekToEnd()
        }
        let frame = Frame.commandResult(result).encoded()
        let line = frame.readableBytesView.map { String(format: "%02x", $0) }.joined() + "\n"
        try? handle?.write(contentsOf: Data(line.utf8))
        try? handle?.synchronize()
    }

    static func bytes(hex: Substring) -> [UInt8]? {
        guard hex.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(hex.count / 2)
        var i = hex.startIndex
        while i < hex.endIndex {
            let j = hex.index(i, offsetBy: 2)
            guard let b = UInt8(hex[i..<j], radix: 16) else { return nil }
            out.append(b)
            i = j
        }
        return out
    }
}
