import FleetwatchProtocol
import FleetwatchTestSupport
import FleetwatchAgent
import Foundation

/// The hub unreachable: first connections refused, then the network silently dropping everything with the
/// connections left open (half-open). Agents with room buffer everything; agents with a small buffer drop
/// the oldest batches and count exactly what they dropped; a half-open connection is noticed by the
/// heartbeat within two intervals.
struct UnreachableScenario {
    let h: Harness
    let full: Bool

    func run() async throws -> Report {
        var r = Report(scenario: "hub-unreachable")
        let outage: Duration = full ? .seconds(60) : .seconds(10)
        let roomy = (1...3).map { "roomy-\($0)" }, tight = (1...3).map { "tight-\($0)" }
        let db = try await h.database(roomy + tight)
        let hubPort = try freeTCPPort(), proxyPort = try freeTCPPort()
        let hub = try h.hub(db, port: hubPort, name: "hub", config: #"{"hub": {"heartbeat_interval": 1}}"#)
        try await h.waitReady(port: hubPort)
        let proxy = FaultProxy(port: proxyPort, target: hubPort)
        try proxy.open()
        defer { proxy.refuse() }
        let capacity = 100
        let ledger = Ledger()
        let roomyAgents = try roomy.map { try h.agent($0, port: proxyPort, ledger: ledger) }
        let tightAgents = try tight.map { try h.agent($0, port: proxyPort, ledger: ledger, capacity: capacity) }
        let all = roomyAgents + tightAgents
        let streaming = Streaming(all)
        defer { streaming.stop() }
        try await Task.sleep(for: .seconds(2))

        // 1. Connection refused for the outage.
        proxy.refuse()
        let maxBuffered = try await watchBuffers(tightAgents, for: outage)
        try proxy.open()
        try await Task.sleep(for: .seconds(2))

        // 2. Silently dropped: nothing gets through, nothing is closed. Time until each agent notices.
        proxy.set(.blackhole)
        let started = ContinuousClock.now
        var noticed: [Double] = []
        let deadline = started + .seconds(30)
        var waiting = Array(all.indices)
        while !waiting.isEmpty, ContinuousClock.now < deadline {
            var still: [Int] = []
            for i in waiting {
                if await all[i].status.connected { still.append(i) } else { noticed.append((ContinuousClock.now - started).inSeconds) }
            }
            waiting = still
            try await Task.sleep(for: .milliseconds(20))
        }
        let maxBufferedHalfOpen = try await watchBuffers(tightAgents, for: outage - .seconds(Int64(noticed.max() ?? 0)))
        proxy.set(.pass)
        proxy.cutAll()   // the half-open connections: agents already left them; close the proxy's ends

        try await Task.sleep(for: .seconds(2))
        streaming.recorder.cancel()
        let sealed = try await h.drain(all, ledger: ledger)
        let stored = try await h.stored(db)
        func samples(_ bot: String, _ map: [BatchKey: Int]) -> Int { map.filter { $0.key.bot == bot }.values.reduce(0, +) }
        r.figure("outage, each way", "\((outage).inSeconds) s refused, then \((outage).inSeconds) s silently dropped")
        r.figure("heartbeat interval", "1 s")
        r.figure("half-open connection noticed by the agents after", String(format: "%.2f s at most (%d agents)", noticed.max() ?? .nan, noticed.count))
        r.check(noticed.count == all.count, "\(all.count - noticed.count) agents never noticed the half-open connection")
        r.check((noticed.max() ?? 99) <= 2.5, "a half-open connection took \(noticed.max() ?? 99) s to notice (two intervals: 2 s, plus the 0.25 s check tick)")
        r.figure("small buffers: capacity / most buffered", "\(capacity) / \(max(maxBuffered, maxBufferedHalfOpen)) samples")
        r.check(max(maxBuffered, maxBufferedHalfOpen) <= capacity, "a buffer held more than its capacity")
        var roomyCount = Count()
        let roomyExpected = sealed.filter { roomy.contains($0.key.bot) }
        roomyCount = try await h.compare(roomyExpected, db)
        r.figure("agents with room: batches sealed / stored / lost / duplicated",
                 "\(roomyCount.expected) / \(roomyCount.expected - roomyCount.lost) / \(roomyCount.lost) / \(roomyCount.duplicated)")
        r.check(roomyCount.clean, "agents with room: \(roomyCount)")
        var tightLines: [String] = []
        for (name, agent) in zip(tight, tightAgents) {
            let dropped = Int(await agent.status.droppedSamples)
            let s = samples(name, sealed), st = samples(name, stored.mapValues { $0.samples })
            tightLines.append("\(s) sealed, \(st) stored, \(dropped) dropped")
            r.check(dropped > 0, "\(name) never overflowed: make the outage longer or the buffer smaller")
            // Every sealed sample is stored or counted as dropped. A batch the hub stored whose ack the silent
            // network swallowed, later dropped from the full buffer, is both: at most one buffer's worth.
            r.check(st + dropped >= s, "\(name): \(s - st - dropped) samples lost without being counted (\(s) sealed, \(st) stored, \(dropped) dropped)")
            r.check(st <= s, "\(name): \(st) samples stored but only \(s) sealed")
            r.check(st + dropped - s <= capacity, "\(name): \(st + dropped - s) samples both stored and counted as dropped (more than a buffer)")
        }
        r.figure("agents with a small buffer (samples)", tightLines.joined(separator: "; "))
        let duplicated = stored.values.filter { $0.copies > 1 }.count
        r.check(duplicated == 0, "\(duplicated) batches stored twice")
        _ = await hub.stop(signal: SIGTERM)
        return r
    }

    /// The largest number of samples any of `agents` buffered while watching for `duration`.
    func watchBuffers(_ agents: [MonitorAgent], for duration: Duration) async throws -> Int {
        var most = 0
        let end = ContinuousClock.now + max(duration, .zero)
        while ContinuousClock.now < end {
            for a in agents { most = max(most, await a.status.bufferedSamples) }
            try await Task.sleep(for: .milliseconds(100))
        }
        return most
    }
}
