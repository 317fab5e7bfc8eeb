import FleetwatchProtocol
import FleetwatchTestSupport
import Foundation
import NIOCore

/// A bot process (the simulated bot, with the agent's on-disk spool) SIGKILLed again and again, half of
/// the time while the hub is down so batches pile up on disk; restarted each time with the same spool.
/// Every batch that was on disk at a kill must end up in PostgreSQL exactly once.
struct AgentKillScenario {
    let h: Harness
    let full: Bool

    func run() async throws -> Report {
        var r = Report(scenario: "agent-kill")
        let bot = "spool-bot"
        let db = try await h.database([bot])
        let port = try freeTCPPort()
        var hub: ChildProcess? = try h.hub(db, port: port, name: "hub")
        try await h.waitReady(port: port)
        let spool = "\(h.logDir)/\(db.url.database)-spool"
        let botSpool = "\(spool)/\(bot)"
        let log = "\(h.logDir)/\(db.url.database)-simbot.log"
        func simbot() throws -> ChildProcess {
            try ChildProcess("\(h.binDir)/fleetwatch-simbot",
                             ["--hub", "ws://127.0.0.1:\(port)/agent/v1", "--bot-id", bot, "--token", "fault-token",
                              "--flush-interval", "0.1", "--trade-rate", "50", "--spool", spool, "--log-level", "error"], logPath: log)
        }
        var process = try simbot()
        defer { _ = kill(process.pid, SIGKILL); if let hub { _ = kill(hub.pid, SIGKILL) } }
        var spooled: [BatchKey: Int] = [:]
        var spooledAtKills: [Int] = []
        let kills = full ? 8 : 3
        for round in 1...kills {
            try await Task.sleep(for: .seconds(2))
            let hubDown = round % 2 == 1
            if hubDown {
                _ = await hub?.stop(signal: SIGTERM)
                hub = nil
                try await Task.sleep(for: .seconds(2))   // batches pile up in the spool
            }
            _ = await process.stop(signal: SIGKILL)
            let onDisk = Self.spooled(botSpool, bot: bot)
            spooledAtKills.append(onDisk.count)
            spooled.merge(onDisk) { a, _ in a }
            if hubDown {
                hub = try h.hub(db, port: port, name: "hub")
                try await h.waitReady(port: port)
            }
            process = try simbot()
        }
        // Let the last run deliver what it holds, then stop the bot with its spool empty.
        let deadline = ContinuousClock.now + .seconds(60)
        try await Task.sleep(for: .seconds(2))
        while ContinuousClock.now < deadline, !Self.spooled(botSpool, bot: bot).isEmpty { try await Task.sleep(for: .milliseconds(200)) }
        _ = await process.stop(signal: SIGKILL)
        let stored = try await h.stored(db)
        let lost = spooled.keys.filter { stored[$0] == nil }.count
        let mismatched = spooled.filter { stored[$0.key].map { $0.samples != $0.samples } ?? false }.count
        let duplicated = stored.values.filter { $0.copies > 1 }.count
        r.figure("SIGKILLs of the bot", "\(kills) (\((kills + 1) / 2) of them during a hub outage)")
        r.figure("batches on disk at each kill", spooledAtKills.map(String.init).joined(separator: ", "))
        r.figure("distinct spooled batches / stored", "\(spooled.count) / \(spooled.count - lost)")
        r.figure("batches stored in all / duplicated", "\(stored.count) / \(duplicated)")
        r.check(spooled.count > 0, "nothing was ever spooled")
        r.check(lost == 0, "\(lost) spooled batches never reached PostgreSQL")
        r.check(mismatched == 0, "\(mismatched) batches stored with other samples than spooled")
        r.check(duplicated == 0, "\(duplicated) batches stored twice")
        if let hub { _ = await hub.stop(signal: SIGTERM) }
        return r
    }

    /// The batches in a spool directory: file names are `EPOCH-SEQUENCE.batch`.
    static func spooled(_ dir: String, bot: String) -> [BatchKey: Int] {
        var out: [BatchKey: Int] = [:]
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where name.hasSuffix(".batch") {
            guard let data = FileManager.default.contents(atPath: "\(dir)/\(name)"),
                  case .batch(let frame)? = try? Frame.decode(ByteBuffer(bytes: data)) else { continue }
            out[BatchKey(bot: bot, epoch: frame.bootEpoch, seq: frame.sequence)] = Int(frame.sampleCount)
        }
        return out
    }
}
