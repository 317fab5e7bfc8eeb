import FleetwatchTestSupport
import AsyncHTTPClient
import Foundation
import NIOCore

/// The hub commits a batch, its ack is lost on the way back and the connection cut: the agent resends,
/// the hub recognises the batch and acknowledges it again without storing a second copy.
struct AckLostScenario {
    let h: Harness
    let full: Bool

    func run() async throws -> Report {
        var r = Report(scenario: "ack-lost")
        let bots = (1...5).map { "ack-\($0)" }
        let db = try await h.database(bots)
        let hubPort = try freeTCPPort(), proxyPort = try freeTCPPort()
        let hub = try h.hub(db, port: hubPort, name: "hub")
        try await h.waitReady(port: hubPort)
        let proxy = FaultProxy(port: proxyPort, target: hubPort)
        try proxy.open()
        defer { proxy.refuse() }
        let ledger = Ledger()
        let agents = try bots.map { try h.agent($0, port: proxyPort, ledger: ledger) }
        let streaming = Streaming(agents)
        defer { streaming.stop() }
        try await Task.sleep(for: .seconds(1))
        let drops = full ? 100 : 20
        for i in 1...drops {
            proxy.dropAcks(1)
            let deadline = ContinuousClock.now + .seconds(10)
            while proxy.stats.acks < i, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            try await Task.sleep(for: .milliseconds(150))
        }
        try await Task.sleep(for: .seconds(1))
        streaming.recorder.cancel()
        let drained = try await h.drain(agents, ledger: ledger)
        let count = try await h.compare(drained, db)
        let duplicates = try await Self.duplicates(port: hubPort)
        _ = await hub.stop(signal: SIGTERM)
        r.figure("acks dropped after the commit (connection cut each time)", proxy.stats.acks)
        // On reconnect the hub's welcome carries the stored high-water mark of the agent's epoch, so the agent
        // drops batches whose ack was lost instead of resending them; a resend would be recognised as well.
        r.figure("batches resent and recognised as already stored", duplicates)
        r.counts(count)
        r.check(proxy.stats.acks == drops, "only \(proxy.stats.acks) of \(drops) acks were dropped")
        return r
    }

    static func duplicates(port: Int) async throws -> Int64 {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/api/ingest")
        request.headers.add(name: "Authorization", value: "Bearer \(Harness.operatorToken)")
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 1 << 20)
        let json = try JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any]
        return (json?["duplicateBatches"] as? NSNumber)?.int64Value ?? -1
    }
}
