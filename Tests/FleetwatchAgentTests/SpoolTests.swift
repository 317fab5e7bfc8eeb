@testable import FleetwatchAgent
import FleetwatchProtocol
import Foundation
import Testing

@Suite struct SpoolTests {
    /// A bot restarted during a hub outage finds its unacknowledged batches in the spool.
    @Test func batchesSurviveARestart() async throws {
        let dir = NSTemporaryDirectory() + "fw-spool-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var c = AgentConfiguration(hubURL: "ws://127.0.0.1:1/agent/v1", botID: "bot", token: "t")
        c.processCollector = false
        c.spoolDirectory = dir
        let first = try MonitorAgent(configuration: c)
        first.counter("trades_executed").increment(by: 5)
        await first.flush()
        await first.flush()
        let status = await first.status
        #expect(status.unackedBatches == 2)
        let firstEpoch = await first.epoch

        let second = try MonitorAgent(configuration: c)
        let recovered = await second.core.unackedForTests
        #expect(recovered.map(\.epoch) == [firstEpoch, firstEpoch])
        #expect(recovered.map(\.sequence) == [1, 2])
        #expect(await second.epoch != firstEpoch)
    }

    @Test func spoolRespectsItsSizeCap() throws {
        let dir = NSTemporaryDirectory() + "fw-spool-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var spool = try Spool(directory: dir, maxBytes: 500)
        var buffer = BatchBuffer(epoch: 1, configuration: .init(maxBatchSamples: 100))
        for i in 0..<20 {
            _ = buffer.append([Series(name: "m", kind: .gauge, timestamps: [Int64(i)], values: [Double(i) * 1.234567])])
            spool.write(buffer.seal()!)
        }
        #expect(spool.totalBytes <= 500)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir)
        #expect(files.count < 20)
        #expect(files.sorted().last == Spool.fileName(epoch: 1, sequence: 20))
    }
}
