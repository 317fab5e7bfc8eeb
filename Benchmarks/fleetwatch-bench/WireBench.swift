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
        // Protocol 3: a connection's stream of delta batches, each coded against the ones before (ten minutes,
        // so the first batch's definitions weigh what they weigh over a connection's life).
        for (metrics, ticks) in [(50, 1), (15, 1), (50, 20)] {
            let batches = RealisticBatches.stream(metrics: metrics, seconds: 600, ticksPerBatch: ticks, startMs: 1_764_072_000_000)
            var encoder = DeltaEncoder()
            var bytes = 0, samples = 0, selfContained = 0
            for (i, batch) in batches.enumerated() {
                guard let frame = encoder.encode(epoch: 1_764_072_000_000_000, sequence: UInt64(i + 1), payload: batch) else {
                    throw ValidationError("batch \(i + 1) could not be coded as a delta batch")
                }
                bytes += frame.readableBytes
                samples += batch.sampleCount
                selfContained += Frame.batch(try BatchFrame.make(bootEpoch: 1, sequence: UInt64(i + 1), payload: batch)).encoded().readableBytes
            }
            report("wire bytes/sample, protocol 3 delta batches, \(metrics) metrics x \(ticks) tick(s) per batch, \(batches.count) batches",
                   Double(bytes) / Double(samples), "bytes")
            report("  the same batches self-contained (protocols 1 and 2)", Double(selfContained) / Double(samples), "bytes")
        }
    }
}
