import ArgumentParser
import FleetwatchProtocol
import FleetwatchTestSupport
import Foundation
import NIOCore

/// Bytes per sample on the wire for realistic batches, next to JSON + zlib of the same samples.
struct WireBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "wire", abstract: "Bytes per sample on the wire.")

    func run() throws {
        for (metrics, ticks) in [(50, 20), (50, 1), (15, 1)] {
            let payload = RealisticBatches.payload(metrics: metrics, ticks: ticks, startMs: 1_764_072_000_000)
            let frame = Frame.batch(try BatchFrame.make(bootEpoch: 1, sequence: 1, payload: payload)).encoded()
            var raw = ByteBuffer()
            payload.encode(into: &raw)
            let n = Double(payload.sampleCount)
            report("wire bytes/sample, \(payload.sampleCount)-sample batch (\(metrics) metrics x \(ticks) ticks)",
                   Double(frame.readableBytes) / n, "bytes")
            report("  uncompressed payload bytes/sample", Double(raw.readableBytes) / n, "bytes")
            // The same samples as JSON objects, zlib-compressed, for scale.
            var objects: [[String: Any]] = []
            for s in payload.series {
                for (t, v) in zip(s.timestamps, s.values) { objects.append(["metric": s.name, "ts": t, "value": v]) }
            }
            let json = try JSONSerialization.data(withJSONObject: objects)
            let jsonZ = try Zlib.compress(ByteBuffer(bytes: json))
            report("  JSON + zlib bytes/sample (for scale)", Double(jsonZ.readableBytes) / n, "bytes")
        }
    }
}
