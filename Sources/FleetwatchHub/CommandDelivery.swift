import FleetwatchIngest
import FleetwatchProtocol
import FleetwatchStorage
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle

/// The emergency-stop settings of a replica.
public struct EmergencyConfiguration: Sendable, Equatable {
    /// How long a command frame is valid after it is sent; the agent refuses it later (replay protection).
    public var frameTTL: Duration = .seconds(60)
    /// A command not acknowledged by the bot this long after the request raises a CRITICAL alert.
    public var acknowledgeTimeout: Duration = .seconds(30)
    /// How often the replica looks for pending commands of its bots even without a notification.
    public var pollInterval: Duration = .seconds(2)
    /// Stop and resume requests each API token may make per minute (per replica).
    public var requestsPerMinute = 30

    public init() {}
}

/// The ledger as ingest sees it: commands for a connecting bot, and the agent's reports.
struct LedgerCommandChannel: CommandChannel {
    let ledger: CommandLedger
    let alerts: EmergencyAlerts
    let hubID: String
    let frameTTL: Duration
    /// Break-glass commands (taken while the database was unreachable) and the health probe: ledger calls give
    /// up the moment the database is noticed down, so a connection's messages never wait on a dead pool.
    var breakGlass: BreakGlass?
    /// The wall clock the command frames' issue and expiry times come from.
    var clock: any MillisecondClock = SystemClock.wall

    private func ledgerCall<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        guard let breakGlass else { return try await body() }
        return try await breakGlass.ledgerCall(body)
    }

    func commandsOnConnect(_ session: BotSession) async throws -> [CommandFrame] {
        let now = clock.unsignedMs
        var journalled: [CommandFrame] = []
        if let b = breakGlass { journalled = await b.journal.unfinished(bot: session.botName).map { b.frame($0) } }
        // Provisional: the ledger is out of reach. No commands waiting: the store saw none as it let the bot in (a
        // command written since then is sent by the dispatcher, as one written after this read would be).
        if session.provisional || !session.commandsWaiting { return journalled }
        do {
            let ids = Set(journalled.map { (frame: CommandFrame) in frame.commandID })
            let fromLedger = try await ledgerCall { [ledger, hubID] in try await ledger.takeOnConnect(botID: session.botID, hub: hubID) }
            return journalled + fromLedger.map { $0.frame(nowMs: now, ttlMs: UInt64(max(0, frameTTL.wholeMilliseconds))) }.filter { !ids.contains($0.commandID) }
        } catch where !journalled.isEmpty {
            return journalled
        }
    }

    func record(_ result: CommandResultFrame, session: BotSession) async throws {
        if let journal = breakGlass?.journal, try await journal.record(result) { return }
        _ = try await ledgerCall { [ledger] in try await ledger.record(result, botID: session.botID, connectionID: session.connectionID) }
    }

    /// Records the declaration (only from the connection holding the bot's lease) and confirms it with the
    /// steps the hub holds the bot to: no liquidation unless the bot allows it.
    func declare(_ declaration: EmergencyDeclaration, session: BotSession) async throws -> CommandFrame? {
        let declared = try await ledgerCall { [ledger, hubID] in
            try await ledger.recordDeclaration(declaration, botID: session.botID, botName: session.botName,
                                               connectionID: session.connectionID, hub: hubID)
        }
        guard declared.leaseHeld else { return nil }
        if declared.recorded, case let id = declaration.commandID, let record = try await ledger.command(id: id),
           record.bot == session.botName {
            await alerts.latched(record)
        }
        let now = clock.unsignedMs
        return CommandFrame(commandID: declaration.commandID, botID: session.botName, issuedAtMs: now,
                            expiresAtMs: now + UInt64(max(0, frameTTL.wholeMilliseconds)), actions: declared.actions, reason: declaration.reason)
    }
}

/// Sends pending commands to the bots connected to this replica: woken by NOTIFY on the ledger's channel,
/// and every `pollInterval` regardless, so a missed notification delays a command but never loses it.
struct CommandDispatcher: Service {
    let ledger: CommandLedger
    let connections: LiveConnections
    /// Yields when a command was written (NOTIFY on the ledger's channel, from the replica's listener).
    let wakes: AsyncStream<Void>
    let hubID: String
    let configuration: EmergencyConfiguration
    let logger: Logger
    /// The wall clock the command frames' issue and expiry times come from.
    var clock: any MillisecondClock = SystemClock.wall

    func run() async throws {
        let (passes, pass) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let forward = Task { for await _ in wakes { pass.yield() } }
        let ticker = Task {
            while !Task.isCancelled {
                try await Task.sleep(for: configuration.pollInterval)
                pass.yield()
            }
        }
        defer {
            forward.cancel()
            ticker.cancel()
        }
        await cancelWhenGracefulShutdown {
            for await _ in passes { await deliverPending() }
        }
    }

    /// One pass: claims the pending commands of the bots connected here and pushes them to their sockets.
    func deliverPending() async {
        let leases = await connections.leases
        guard !leases.isEmpty else { return }
        do {
            let now = clock.unsignedMs
            for command in try await ledger.takePending(botIDs: leases.map(\.botID), connections: leases.map(\.connectionID), hub: hubID) {
                let sent = await connections.send(.command(command.frame(nowMs: now, ttlMs: UInt64(max(0, configuration.frameTTL.wholeMilliseconds)))),
                                                  to: command.bot, connection: command.connectionID)
                logger.notice("command \(command.id) for \(command.bot): \(sent ? "sent" : "bot left; sent again when it reconnects")")
            }
        } catch {
            logger.error("cannot read pending commands: \(String(reflecting: error))")
        }
    }
}

/// Raises a CRITICAL alert for each command not acknowledged within the configured time, and resolves it
/// once the bot has acknowledged. The ledger's conditional update makes exactly one replica raise it.
struct CommandWatchdog: Service {
    let ledger: CommandLedger
    let alerts: EmergencyAlerts
    let configuration: EmergencyConfiguration
    let logger: Logger

    func run() async throws {
        let timeout = configuration.acknowledgeTimeout
        let seconds = timeout.inSeconds
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    for overdue in try await ledger.takeOverdue(after: timeout) {
                        logger.critical("command \(overdue.id) for \(overdue.bot) not acknowledged after \(Int(seconds)) s (\(overdue.state))")
                        await alerts.unacknowledged(bot: overdue.bot, seconds: seconds, state: overdue.state)
                    }
                    for bot in try await ledger.botsNoLongerOverdue(ruleID: EmergencyAlerts.unacknowledgedRule.id, after: timeout) {
                        await alerts.acknowledged(bot: bot)
                    }
                } catch {
                    logger.error("command watchdog: \(String(reflecting: error))")
                }
                try? await Task.sleep(for: min(timeout / 4, .seconds(2)))
            }
        }
    }
}

/// On graceful shutdown, closes every agent connection after the message in hand (so each batch received is
/// stored and acknowledged first) and waits up to `timeout` for them to end. Agents reconnect, to another
/// replica if there is one. Listed after the HTTP server so that it shuts down before it.
struct ConnectionDrainer: Service {
    let connections: LiveConnections
    let timeout: Duration
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        let open = await connections.closeAll()
        guard open > 0 else { return }
        logger.notice("closing \(open) agent connection(s) after their current batch (1001 going away)")
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline, await connections.count > 0 {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
}
