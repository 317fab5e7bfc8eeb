import FleetwatchTestSupport
import Foundation

/// One emergency stop requested twice, the bot's acknowledgement lost on the way (connection cut), the bot
/// process SIGKILLed after it received the command and before it ran a step, then restarted: every step
/// runs exactly once, and the ledger ends completed with one result per step and the bot latched.
struct StopTwiceScenario {
    let h: Harness
    let full: Bool

    func run() async throws -> Report {
        var r = Report(scenario: "stop-twice-ack-lost-bot-killed")
        let bot = "twice-bot"
        let db = try await h.database([bot])
        let hubPort = try freeTCPPort(), proxyPort = try freeTCPPort()
        let hub = try h.hub(db, port: hubPort, name: "hub")
        try await h.waitReady(port: hubPort)
        let proxy = FaultProxy(port: proxyPort, target: hubPort)
        try proxy.open()
        defer { proxy.refuse(); _ = kill(hub.pid, SIGKILL) }
        let spool = "\(h.logDir)/\(db.url.database)-spool"
        let log = "\(h.logDir)/\(db.url.database)-simbot.log"
        func simbot() throws -> ChildProcess {
            try ChildProcess("\(h.binDir)/fleetwatch-simbot",
                             ["--hub", "ws://127.0.0.1:\(proxyPort)/agent/v1", "--bot-id", bot, "--token", "fault-token",
                              "--flush-interval", "0.2", "--spool", spool, "--step-delay", "4", "--log-level", "error"], logPath: log)
        }
        var process = try simbot()
        defer { _ = kill(process.pid, SIGKILL) }
        let connectDeadline = ContinuousClock.now + .seconds(30)
        while try await h.scalar(db, String.self, "SELECT connected_hub FROM bots WHERE name = \(bot)") == nil, ContinuousClock.now < connectDeadline {
            try await Task.sleep(for: .milliseconds(100))
        }

        // The bot's first reply to the command (received) is lost and its connection cut.
        proxy.dropCommandResults(1)
        let body = #"{"reason": "fault suite: stop twice"}"#
        let first = try await ReplicasRestartScenario.post(port: hubPort, path: "/api/bots/\(bot)/emergency-stop", body: body, key: "twice-1")
        let second = try await ReplicasRestartScenario.post(port: hubPort, path: "/api/bots/\(bot)/emergency-stop", body: body, key: "twice-1")
        let id = (try? JSONSerialization.jsonObject(with: Data(first.1.utf8)) as? [String: Any])?["id"] as? String ?? ""
        let secondID = (try? JSONSerialization.jsonObject(with: Data(second.1.utf8)) as? [String: Any])?["id"] as? String
        r.check(first.0 == 202 && second.0 == 200 && secondID == id, "stop requests answered \(first.0) then \(second.0) (\(secondID ?? "no id"))")
        let dropDeadline = ContinuousClock.now + .seconds(15)
        while proxy.stats.results < 1, ContinuousClock.now < dropDeadline { try await Task.sleep(for: .milliseconds(20)) }
        try await Task.sleep(for: .milliseconds(1500))   // reconnected; the hub delivers the command again

        // Killed between receipt and execution: no step has run yet.
        _ = await process.stop(signal: SIGKILL)
        let stepsBeforeKill = Self.executions(log, bot: bot)
        let journal = (try? String(contentsOfFile: "\(spool)/\(bot)/commands.journal", encoding: .utf8)) ?? ""
        process = try simbot()
        var record: [String: Any] = [:]
        let doneDeadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < doneDeadline {
            let (status, text) = try await ReplicasRestartScenario.get(port: hubPort, path: "/api/commands/\(id)")
            record = status == 200 ? (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]) ?? [:] : [:]
            if record["state"] as? String == "completed" || record["state"] as? String == "failed" { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        try await Task.sleep(for: .seconds(3))   // room for a second execution to show
        let executions = Self.executions(log, bot: bot)
        let steps = (record["steps"] as? [[String: Any]] ?? []).map { "\($0["step"] ?? "?")/\($0["status"] ?? "?")" }
        let latched = try await h.scalar(db, String.self, "SELECT emergency_command_id::text FROM bots WHERE name = \(bot)")
        let commands = try await h.scalar(db, Int64.self, "SELECT count(*) FROM commands") ?? -1
        r.figure("stop requests (same idempotency key) / commands stored", "2 / \(commands)")
        r.figure("bot replies dropped (connection cut)", proxy.stats.results)
        r.figure("deliveries of the command", record["deliveries"] ?? "?")
        r.figure("steps run before the kill / after the restart", "\(stepsBeforeKill.values.reduce(0, +)) / \(executions.map { "\($0.key)×\($0.value)" }.sorted().joined(separator: " "))")
        r.figure("ledger", "\(record["state"] ?? "?"), steps \(steps.sorted().joined(separator: ", "))")
        r.check(proxy.stats.results == 1, "the bot's reply was not dropped")
        let hexID = id.replacingOccurrences(of: "-", with: "").lowercased()
        r.check(!hexID.isEmpty && journal.lowercased().contains(hexID), "the killed bot's journal does not hold the command")
        r.check(stepsBeforeKill.isEmpty, "steps ran before the kill: \(stepsBeforeKill)")
        r.check(executions == ["stop_trading": 1, "cancel_orders": 1, "latch_emergency": 1], "steps ran \(executions)")
        r.check(record["state"] as? String == "completed", "the command ended \(record["state"] ?? "nowhere")")
        r.check(commands == 1, "\(commands) commands stored")
        r.check(latched?.lowercased() == id.lowercased(), "emergency mode is latched on \(latched ?? "nothing")")
        for step in ["stop_trading", "cancel_orders", "latch_emergency"] {
            r.check(steps.filter { $0.hasPrefix(step + "/") } == ["\(step)/succeeded"], "ledger results for \(step): \(steps)")
        }
        _ = await process.stop(signal: SIGTERM)
        _ = await hub.stop(signal: SIGTERM)
        return r
    }

    /// Steps the simulated bot ran, from its output (`BOT EMERGENCY step: detail`), across restarts.
    static func executions(_ log: String, bot: String) -> [String: Int] {
        var out: [String: Int] = [:]
        for line in ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n") {
            guard line.hasPrefix("\(bot) EMERGENCY ") else { continue }
            let step = line.dropFirst("\(bot) EMERGENCY ".count).split(separator: ":").first.map(String.init) ?? "?"
            out[step, default: 0] += 1
        }
        return out
    }
}
