import FleetwatchProtocol

/// The agent's memory of commands: what each reported so far, which are running. Pure: commands, results
/// and time come in, decisions come out. A command id is executed at most once however often it is
/// delivered; a command interrupted by a restart (its results come back from the journal) runs only the
/// steps that had not yet succeeded.
public struct CommandLog: Sendable {
    public enum Decision: Equatable, Sendable {
        /// Run these steps, in order; report "received" first unless it was reported before.
        case execute(steps: [CommandFrame.Actions], liquidationSkipped: Bool, reportReceived: Bool)
        /// Known: send these results again, do nothing else.
        case resend([CommandResultFrame])
        /// Known from before a restart and latched at the hub: enter emergency mode again (no new results).
        case relatch([CommandResultFrame])
        /// Refuse, with the reason reported to the hub (not remembered: a fresh delivery may still run).
        case refuse(String)
    }

    struct Entry: Sendable {
        var results: [CommandResultFrame] = []
        var fromJournal = false
        var isFinal: Bool { results.contains { $0.step == 0 && $0.status.isFinal } }
        var doneSteps: Set<UInt8> {
            Set(results.filter { $0.status == .succeeded || $0.status == .skipped }.map(\.step))
        }
    }

    public let botID: String
    private var entries: [CommandID: Entry] = [:]
    private var order: [CommandID] = []
    private var running: Set<CommandID> = []
    let memory: Int

    /// - Parameter journal: results recorded before a restart, oldest first.
    public init(botID: String, journal: [CommandResultFrame] = [], memory: Int = 1024) {
        self.botID = botID
        self.memory = memory
        for r in journal {
            if entries[r.commandID] == nil { order.append(r.commandID) }
            entries[r.commandID, default: Entry(fromJournal: true)].results.append(r)
        }
        trim()
    }

    public mutating func decide(_ command: CommandFrame, nowMs: UInt64, liquidationEnabled: Bool) -> Decision {
        let id = command.commandID
        if var entry = entries[id] {
            if running.contains(id) { return .resend(entry.results) }
            if entry.isFinal {
                guard entry.fromJournal else { return .resend(entry.results) }
                entry.fromJournal = false
                entries[id] = entry
                return command.actions.contains(.latchEmergency) ? .relatch(entry.results) : .resend(entry.results)
            }
        }
        guard command.botID == botID else { return .refuse("command is bound to bot \(command.botID), this is \(botID)") }
        guard nowMs <= command.expiresAtMs else { return .refuse("command expired at \(command.expiresAtMs), now \(nowMs)") }
        let known = entries[id]
        let done = known?.doneSteps ?? []
        var steps: [CommandFrame.Actions] = []
        var skipped = false
        for step in [CommandFrame.Actions.stopTrading, .cancelOrders, .liquidate, .latchEmergency, .resume]
        where command.actions.contains(step) && !done.contains(step.rawValue) {
            if step == .liquidate && !liquidationEnabled { skipped = true; continue }
            steps.append(step)
        }
        if known == nil { order.append(id) }
        entries[id, default: Entry()].fromJournal = false
        running.insert(id)
        trim()
        return .execute(steps: steps, liquidationSkipped: skipped, reportReceived: known == nil)
    }

    /// Starts a command the bot itself declared (runs like a delivered one).
    public mutating func declared(_ id: CommandID) {
        if entries[id] == nil { order.append(id) }
        entries[id, default: Entry()].fromJournal = false
        running.insert(id)
        trim()
    }

    /// Records a result as it is reported; a final one ends the run.
    public mutating func record(_ result: CommandResultFrame) {
        if entries[result.commandID] == nil { order.append(result.commandID) }
        entries[result.commandID, default: Entry()].results.append(result)
        if result.step == 0 && result.status.isFinal { running.remove(result.commandID) }
        trim()
    }

    /// Results reported for `id` so far.
    public func results(_ id: CommandID) -> [CommandResultFrame] { entries[id]?.results ?? [] }

    private mutating func trim() {
        while order.count > memory, let oldest = order.first, !running.contains(oldest) {
            order.removeFirst()
            entries[oldest] = nil
        }
    }
}
