import FleetwatchProtocol
import Foundation
import NIOCore

/// Sealed, unacknowledged batches kept on disk so a bot restarted during a hub outage still delivers them.
///
/// One file per batch, named by epoch and sequence, holding the encoded frame; deleted on ack.
/// When the directory would exceed `maxBytes`, the oldest files go first.
struct Spool {
    let directory: URL
    let maxBytes: Int
    private(set) var totalBytes = 0
    private var sizes: [String: Int] = [:]
    private var order: [String] = []

    init(directory: String, maxBytes: Int) throws {
        self.directory = URL(fileURLWithPath: directory, isDirectory: true)
        self.maxBytes = maxBytes
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
    }

    static func fileName(epoch: UInt64, sequence: UInt64) -> String {
        let e = String(epoch), s = String(sequence)
        return String(repeating: "0", count: 20 - e.count) + e + "-" + String(repeating: "0", count: 20 - s.count) + s + ".batch"
    }

    /// Reads every spooled batch, oldest first; unreadable files are removed.
    mutating func load() -> [SealedBatch] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
            .filter { $0.hasSuffix(".batch") }.sorted()
        var batches: [SealedBatch] = []
        for name in names {
            let url = directory.appendingPathComponent(name)
            guard let data = try? Data(contentsOf: url),
                  case .batch(let frame)? = try? Frame.decode(ByteBuffer(bytes: data))
            else {
                try? FileManager.default.removeItem(at: url)
                continue
            }
            batches.append(SealedBatch(epoch: frame.bootEpoch, sequence: frame.sequence,
                                       sampleCount: Int(frame.sampleCount), frame: ByteBuffer(bytes: data)))
            sizes[name] = data.count
            order.append(name)
            totalBytes += data.count
        }
        return batches
    }

    /// Writes a batch. When the directory would exceed `maxBytes`, the oldest files are deleted: those
    /// batches stay in memory (and are still delivered if the bot keeps running) but lose their disk copy.
    mutating func write(_ batch: SealedBatch) {
        let name = Self.fileName(epoch: batch.epoch, sequence: batch.sequence)
        let data = Data(batch.frame.readableBytesView)
        do {
            try data.write(to: directory.appendingPathComponent(name), options: .atomic)
        } catch {
            return
        }
        sizes[name] = data.count
        order.append(name)
        totalBytes += data.count
        while totalBytes > maxBytes, let oldest = order.first {
            order.removeFirst()
            totalBytes -= sizes.removeValue(forKey: oldest) ?? 0
            try? FileManager.default.removeItem(at: directory.appendingPathComponent(oldest))
        }
    }

    /// Deletes the files of acknowledged or dropped batches.
    mutating func remove(_ batches: [SealedBatch]) {
        for b in batches {
            let name = Self.fileName(epoch: b.epoch, sequence: b.sequence)
            guard let size = sizes.removeValue(forKey: name) else { continue }
            totalBytes -= size
            if order.first == name { order.removeFirst() } else { order.removeAll { $0 == name } }
            try? FileManager.default.removeItem(at: directory.appendingPathComponent(name))
        }
    }
}
