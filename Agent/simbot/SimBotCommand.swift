import ArgumentParser
import FleetwatchAgent
import FleetwatchProtocol
import Foundation
import Logging

/// `fleetwatch-simbot`: one or more simulated trading bots, each with its own agent and connection.
@main
struct SimBotCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleetwatch-simbot",
        abstract: "Simulated trading bots reporting to a fleetwatch hub through the agent library.",
        version: FleetwatchVersion.current)

    @Option(help: "The hub's agent endpoint.") var hub = "ws://127.0.0.1:8000/agent/v1"
    @Option(help: "How many bots to run in this process.") var bots = 1
    @Option(help: "Bot id (with --bots 1) or id prefix (bots are PREFIX-1, PREFIX-2, …).") var botId = "sim-bot"
    @Option(help: "The bot token (the same for every bot of this process). Visible to every local user in ps: prefer --token-file or FLEETWATCH_TOKEN(_FILE).")
    var token: String?
    @Option(help: "A file holding the bot token (e.g. a Docker secret).") var tokenFile: String?
    @Option(help: "For a wss:// hub with a private certificate: the PEM file to trust.") var caFile: String?
    @Option(help: "Trades per second per bot.") var tradeRate = 2.0
    @Option(help: "Share of trades that succeed (0–1).") var successRate = 0.95
    @Option(help: "Share of API calls that fail (0–1).") var apiErrorRate = 0.0003
    @Option(help: "Nonces generated per second per bot.") var nonceRate = 2500.0
    @Option(help: "Seconds between agent flushes.") var flushInterval = 1.0
    @Option(help: "Simulated memory leak, MB per second (pushes memory_usage_mb over its threshold).") var memoryLeak = 0.0
    @Option(help: "Simulated starting memory, MB.") var startMemory: Double?
    @Option(help: "Spool directory (a subdirectory per bot); none by default.") var spool: String?
    @Flag(help: "Report this process's real memory and CPU instead of simulated figures.") var realProcessMetrics = false
    @Flag(help: "Let emergency stops that ask for it close the simulated positions.") var allowLiquidation = false
    @Option(help: "Seconds the bot takes before its first emergency step (fault tests kill it in between).") var stepDelay = 0.0
    @Option(help: "Declare an emergency from the bot itself after this many seconds (demonstrates bot-initiated stops).")
    var declareEmergencyAfter: Double?
    @Option(help: "Write 'connected=N total=M' here every 2 s (for container health checks).") var statusFile: String?
    @Option(help: "Stop after this many seconds (default: run until interrupted).") var duration: Double?
    @Option(help: "How much the simulated bots log.") var logLevel: Logger.Level = .notice

    func run() async throws {
        let level = logLevel
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        let token = try BotTokenSource.resolve(option: token, file: tokenFile)
        var simulated: [SimulatedBot] = []
        for i in 1...max(bots, 1) {
            let id = bots == 1 ? botId : "\(botId)-\(i)"
            var c = AgentConfiguration(hubURL: hub, botID: id, token: token)
            c.flushInterval = .milliseconds(Int64(flushInterval * 1000))
            c.processCollector = realProcessMetrics
            c.spoolDirectory = spool.map { "\($0)/\(id)" }
            c.trustedCertificatesPath = caFile
            let agent = try MonitorAgent(configuration: c, logger: Logger(label: "agent.\(id)"))
            var rates = SimulatedBot.Rates()
            rates.tradesPerSecond = tradeRate
            rates.successRate = successRate
            rates.apiErrorRate = apiErrorRate
            rates.noncesPerSecond = nonceRate
            rates.memoryLeakMBPerSecond = memoryLeak
            rates.startMemoryMB = startMemory
            let bot = SimulatedBot(agent: agent, rates: rates, simulateResources: !realProcessMetrics)
            await agent.setEmergencyHandler(SimulatedEmergencyHandler(bot: id, exchange: bot.exchange,
                                                                      liquidationEnabled: allowLiquidation, stepDelay: stepDelay))
            simulated.append(bot)
        }
        print("running \(simulated.count) simulated bot(s) against \(hub)")
        let bots = simulated
        await withTaskGroup(of: Void.self) { group in
            for bot in bots {
                group.addTask { try? await bot.agent.run() }
                group.addTask { await bot.run() }
                if let after = declareEmergencyAfter {
                    group.addTask {
                        try? await Task.sleep(for: .milliseconds(Int64(after * 1000)))
                        guard !Task.isCancelled else { return }
                        await bot.agent.declareEmergency(reason: "simulated exchange outage detected by the bot")
                    }
                }
            }
            if let statusFile {
                group.addTask {
                    while !Task.isCancelled {
                        var connected = 0
                        for bot in bots where await bot.agent.status.connected { connected += 1 }
                        try? "connected=\(connected) total=\(bots.count)\n".write(toFile: statusFile, atomically: true, encoding: .utf8)
                        try? await Task.sleep(for: .seconds(2))
                    }
                }
            }
            if let duration {
                group.addTask { try? await Task.sleep(for: .milliseconds(Int64(duration * 1000))) }
                await group.next()
                group.cancelAll()
            }
            await group.waitForAll()
        }
    }
}

/// `--log-level` lists the allowed values in `--help`, and anything else is an error, not a silent default.
extension Logger.Level: @retroactive ExpressibleByArgument {}
