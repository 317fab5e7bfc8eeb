import ArgumentParser
import FleetwatchAgent
import FleetwatchProtocol
import Foundation
import Hummingbird
import Logging
import UnixSignals
#if canImport(Glibc)
import Glibc
#endif

/// `monitor-agent`: the fleetwatch agent as a sidecar for a bot written in any language.
@main
struct MonitorAgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "monitor-agent",
        abstract: "Run any bot program under fleetwatch: health metrics, the bot's own metrics, remote emergency stop.",
        version: FleetwatchVersion.current,
        subcommands: [Run.self])
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start the bot program as a child process and report it to the hub.",
        discussion: """
            Example:
              monitor-agent run --bot-id kraken-py-1 --hub ws://hub:8000/agent/v1 --token-file /etc/kraken-py-1/hub-token \\
                --log-file /var/log/bot.log --on-stop-http http://127.0.0.1:5000/api/stop -- python3 bot.py
            The bot sends its own metrics to $FLEETWATCH_STATSD_ADDRESS (StatsD: name:value|c|g|ms|s) or to
            POST $FLEETWATCH_SIDECAR_URL/metrics with Authorization: Bearer $FLEETWATCH_SIDECAR_TOKEN, and can
            declare an emergency with POST /emergency.
            """)

    @Option(help: "Bot id, as registered at the hub.") var botId: String
    @Option(help: "The hub's agent endpoint, e.g. ws://hub:8000/agent/v1.") var hub: String
    @Option(help: "The bot's token. Visible to every local user in ps: prefer --token-file or FLEETWATCH_TOKEN(_FILE).") var token: String?
    @Option(help: "A file holding the bot's token (e.g. a Docker secret).") var tokenFile: String?
    @Option(help: "For a wss:// hub with a private certificate: the PEM file to trust.") var caFile: String?
    @Option(help: "The bot's log file, reported as log_file_size_mb.") var logFile: String?
    @Option(help: "Local UDP port for StatsD metrics (0: any free port).") var statsdPort = 8125
    @Flag(help: "Do not listen for StatsD metrics.") var noStatsd = false
    @Option(help: "Local HTTP port for POST /metrics, POST /emergency, GET /status (0: any free port).") var httpPort = 9102
    @Option(help: "The local HTTP port's token: read from this file, or generated and written there (mode 0600); default FLEETWATCH_SIDECAR_TOKEN_FILE. Without either a fresh token is generated; the bot program gets it in FLEETWATCH_SIDECAR_TOKEN either way.")
    var localTokenFile: String?
    @Flag(help: "Do not serve the local HTTP endpoint.") var noHttp = false
    @Option(help: "When to restart the bot program after it exits.") var restart: ChildSupervisor.RestartPolicy = .onFailure
    @Option(help: "Seconds to wait before a restart.") var restartDelay = 1.0
    @Option(help: "Emergency stop: signal sent to the bot program (TERM, INT, KILL, USR1, … or none).") var onStopSignal = "TERM"
    @Option(help: "Emergency stop: seconds to wait for the program to exit after the signal before SIGKILL.") var stopGrace = 10.0
    @Option(help: "Emergency stop: a shell command run before the signal.") var onStopExec: String?
    @Option(help: "Emergency stop: URL of the bot's own stop endpoint, called before the signal.") var onStopHttp: String?
    @Option(help: "HTTP method for --on-stop-http.") var onStopHttpMethod = "POST"
    @Option(help: "Emergency stop: a shell command that cancels the bot's open orders.") var cancelOrdersExec: String?
    @Option(help: "Emergency stop with liquidation: a shell command that closes positions (enables liquidation).") var liquidateExec: String?
    @Option(help: "Resume: a shell command run before the bot program is started again.") var onResumeExec: String?
    @Option(help: "Spool directory: keeps unsent metrics and command results across restarts.") var spool: String?
    @Option(help: "Seconds to wait for the hub to accept this bot before giving up (0: do not wait).") var connectTimeout = 15.0
    @Option(help: "Seconds between metric flushes.") var flushInterval = 1.0
    @Option(help: "Time zone whose midnight resets daily_pnl for trades reported with POST /trade or fleetwatch.trade (default UTC).") var timeZone = "UTC"
    @Option(help: "How much the sidecar logs.") var logLevel: Logger.Level = .notice
    @Argument(parsing: .postTerminator, help: "The bot program and its arguments, after --.") var command: [String] = []

    func validate() throws {
        guard !command.isEmpty else { throw ValidationError("name the bot program after --, e.g. -- python3 bot.py") }
        guard onStopSignal.lowercased() == "none" || ChildSupervisor.signal(named: onStopSignal) != nil else {
            throw ValidationError("--on-stop-signal: unknown signal \(onStopSignal)")
        }
        guard let url = URL(string: hub), ["ws", "wss"].contains(url.scheme ?? ""), let host = url.host else {
            throw ValidationError("--hub must be a ws:// or wss:// URL such as ws://hub:8000/agent/v1, not \(hub)")
        }
        if url.scheme == "wss", host.allSatisfy({ $0.isNumber || $0 == "." || $0 == ":" }) {
            throw ValidationError("--hub: use the host name of the hub's certificate with wss://, not an IP address (\(host))")
        }
        guard TimeZone(identifier: timeZone) != nil else { throw ValidationError("--time-zone: unknown time zone \(timeZone) (e.g. UTC, America/New_York)") }
        guard WireProtocol.isValidName(botId, maxBytes: WireProtocol.maxBotIDBytes) else {
            throw ValidationError("--bot-id must be 1–128 characters of A–Z a–z 0–9 _ . : - /")
        }
    }

    func run() async throws {
        let level = logLevel
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        let logger = Logger(label: "monitor-agent")
        let token = try BotTokenSource.resolve(option: token, file: tokenFile)
        var c = AgentConfiguration(hubURL: hub, botID: botId, token: token)
        c.flushInterval = .milliseconds(Int64(flushInterval * 1000))
        c.processCollector = false
        c.spoolDirectory = spool
        c.trustedCertificatesPath = caFile
        let agent = try MonitorAgent(configuration: c, logger: Logger(label: "monitor-agent.agent"))
        let trading = TradingMetrics(agent: agent, timeZone: TimeZone(identifier: timeZone)!)
        let localToken = try LocalToken.load(localTokenFile ?? ProcessInfo.processInfo.environment["FLEETWATCH_SIDECAR_TOKEN_FILE"].flatMap { $0.isEmpty ? nil : $0 })
        // The bot program does not get the hub token; it gets the sidecar's address and local token.
        var childEnvironment = ProcessInfo.processInfo.environment
        childEnvironment["FLEETWATCH_TOKEN"] = nil
        childEnvironment["FLEETWATCH_TOKEN_FILE"] = nil
        childEnvironment["FLEETWATCH_SIDECAR_TOKEN"] = localToken
        let child = ChildSupervisor(command: command, policy: restart,
                                    restartDelay: .milliseconds(Int64(restartDelay * 1000)), logger: logger,
                                    environment: childEnvironment)
        agent.register(ChildCollector(child: child, logFile: logFile))
        var actions = SidecarEmergencyHandler.Actions()
        actions.signal = onStopSignal.lowercased() == "none" ? nil : ChildSupervisor.signal(named: onStopSignal)
        actions.grace = .milliseconds(Int64(stopGrace * 1000))
        actions.stopCommand = onStopExec.map { ["/bin/sh", "-c", $0] }
        actions.httpURL = onStopHttp
        actions.httpMethod = onStopHttpMethod
        actions.cancelCommand = cancelOrdersExec.map { ["/bin/sh", "-c", $0] }
        actions.liquidateCommand = liquidateExec.map { ["/bin/sh", "-c", $0] }
        actions.resumeCommand = onResumeExec.map { ["/bin/sh", "-c", $0] }
        await agent.setEmergencyHandler(SidecarEmergencyHandler(child: child, actions: actions, logger: logger))

        let agentTask = Task { try await agent.run() }
        defer { agentTask.cancel() }
        if connectTimeout > 0 {
            try await waitForHub(agent, timeout: .milliseconds(Int64(connectTimeout * 1000)))
        }
        var listeners: [Task<Void, any Error>] = []
        if !noStatsd {
            let (channel, port) = try await StatsDListener(port: statsdPort, agent: agent, trading: trading, logger: logger).start()
            logger.notice("StatsD metrics: udp://127.0.0.1:\(port)")
            childEnvironment["FLEETWATCH_STATSD_ADDRESS"] = "127.0.0.1:\(port)"
            listeners.append(Task { try await withTaskCancellationHandler { try await channel.closeFuture.get() } onCancel: { channel.close(promise: nil) } })
        }
        if !noHttp {
            let (bound, boundContinuation) = AsyncStream<Int>.makeStream()
            let app = MetricsEndpoint(agent: agent, trading: trading, child: child, token: localToken).application(port: httpPort, logger: logger) { port in
                logger.notice("HTTP metrics: POST http://127.0.0.1:\(port)/metrics (also /emergency, /status; Authorization: Bearer $FLEETWATCH_SIDECAR_TOKEN)")
                boundContinuation.yield(port)
                boundContinuation.finish()
            }
            listeners.append(Task { try await app.runService(gracefulShutdownSignals: []) })
            // The bot program learns the port it may call before it starts.
            var iterator = bound.makeAsyncIterator()
            if let port = await iterator.next() { childEnvironment["FLEETWATCH_SIDECAR_URL"] = "http://127.0.0.1:\(port)" }
        }
        defer { listeners.forEach { $0.cancel() } }
        await child.setEnvironment(childEnvironment)

        try await child.start()
        // SIGTERM/SIGINT to the sidecar: pass it on to the bot program, then exit with its status.
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        let forward = Task {
            for await signal in signals {
                logger.notice("\(signal): stopping the bot program")
                _ = await child.stop(signal: signal == .sigint ? SIGINT : SIGTERM, grace: .milliseconds(Int64(stopGrace * 1000)))
                await child.finish()
            }
        }
        defer { forward.cancel() }
        let exit = await child.supervise()
        await agent.flush()
        try? await Task.sleep(for: .milliseconds(500))   // let the last flush reach the hub
        throw ExitCode(exit)
    }

    /// Waits until the hub welcomed this bot; exits with a clear message if it refuses or cannot be reached.
    private func waitForHub(_ agent: MonitorAgent, timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let status = await agent.status
            if status.connected { return }
            if let code = status.lastCloseCode.map({ CloseCode(rawValue: $0) }), code.isConfigurationError {
                FileHandle.standardError.write(Data("""
                    monitor-agent: the hub at \(hub) refused bot \(botId): \(code).
                    Check --bot-id and the token (a new token: monitor-hub bots rotate-token \(botId)).\n
                    """.utf8))
                throw ExitCode(2)
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        let why = await agent.status.lastError ?? "no answer"
        FileHandle.standardError.write(Data("""
            monitor-agent: cannot reach the hub at \(hub) within \(connectTimeout) s: \(why).
            Check --hub (e.g. ws://hub:8000/agent/v1) and that the hub is running, or pass --connect-timeout 0 to start anyway.\n
            """.utf8))
        throw ExitCode(2)
    }
}

/// `--log-level` lists the allowed values in `--help`, and anything else is an error, not a silent default.
extension Logger.Level: @retroactive ExpressibleByArgument {}
extension ChildSupervisor.RestartPolicy: ExpressibleByArgument {}
