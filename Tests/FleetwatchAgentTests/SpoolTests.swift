@testable import FleetwatchAgent
import FleetwatchProtocol
import Dispatch
import Foundation
import NIOCore
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

/// The spool and the journal are written off the agent's actor: a stalled disk holds neither the agent's state
/// nor the bot's other calls; `flush()` still returns only once its batch is on disk.
@Suite struct AgentDiskTests {
    @Test func aStalledDiskDoesNotHoldTheAgent() async throws {
        let dir = NSTemporaryDirectory() + "fw-disk-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var c = AgentConfiguration(hubURL: "ws://127.0.0.1:1/agent/v1", botID: "bot", token: "t")
        c.processCollector = false
        c.spoolDirectory = dir
        let agent = try MonitorAgent(configuration: c)
        let release = DispatchSemaphore(value: 0)
        agent.core.disk.stall(until: release)
        agent.counter("trades_executed").increment(by: 1)
        let flushed = Task { await agent.flush() }
        // The batch is sealed and waits for the disk; the agent's state answers meanwhile.
        while await agent.status.unackedBatches == 0 { await Task.yield() }
        #expect(await agent.status.unackedBatches == 1)
        #expect(Self.files(dir).isEmpty)
        release.signal()
        await flushed.value
        #expect(Self.files(dir).count == 1)          // on disk once flush() returned
        #expect(agent.core.disk.spooledBytes > 0)
    }

    /// The periodic flush does not wait for a stalled disk (samples keep flowing to the hub), and a stalled disk
    /// queues a bounded number of writes: past it a batch keeps no disk copy (it stays in memory).
    @Test func thePeriodicFlushAndTheQueueDoNotWaitForAStalledDisk() async throws {
        let dir = NSTemporaryDirectory() + "fw-disk-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var c = AgentConfiguration(hubURL: "ws://127.0.0.1:1/agent/v1", botID: "bot", token: "t")
        c.processCollector = false
        c.spoolDirectory = dir
        let agent = try MonitorAgent(configuration: c)
        let release = DispatchSemaphore(value: 0)
        agent.core.disk.stall(until: release)
        agent.counter("trades_executed").increment(by: 1)
        await agent.flush(waitForDisk: false)         // returns with the disk stalled
        #expect(await agent.status.unackedBatches == 1)
        func batch(_ n: Int) -> SealedBatch { SealedBatch(epoch: 9, sequence: UInt64(n), sampleCount: 1, frame: ByteBuffer(bytes: [1, 2, 3])) }
        var queued = 1                                 // the flush's batch
        while agent.core.disk.write(batch(queued)) { queued += 1 }
        #expect(queued == AgentDisk.maxQueuedWrites)
        release.signal()
        await agent.core.disk.drain()
        #expect(agent.core.disk.write(batch(queued)))  // room again once the disk caught up
        await agent.core.disk.drain()
    }

    /// Writes and removals land in the order they were asked for.
    @Test func writesAndRemovalsKeepTheirOrder() async throws {
        let dir = NSTemporaryDirectory() + "fw-disk-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let disk = AgentDisk(spool: try Spool(directory: dir, maxBytes: 1 << 20), journal: nil)
        let batches = (1...5).map { SealedBatch(epoch: 7, sequence: UInt64($0), sampleCount: 1, frame: ByteBuffer(bytes: [UInt8](repeating: UInt8($0), count: 10))) }
        for b in batches { disk.write(b) }
        disk.remove(Array(batches[0..<3]))
        disk.write(batches[0])                        // written again after its removal: kept
        await disk.drain()
        #expect(Self.files(dir) == [1, 4, 5].map { Spool.fileName(epoch: 7, sequence: $0) })
    }

    static func files(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".batch") }.sorted()
    }
}
