/// Where an emergency command (a stop or a resume) is in its life. A state only ever moves forward (`rank`):
/// pending → delivered → acknowledged → completed or failed. The two final states share the top rank, so
/// neither replaces the other, and a late or repeated result never moves a command back.
public enum CommandState: String, Sendable, Codable, CaseIterable {
    /// Stored, not yet sent to the bot.
    case pending
    /// Sent to the bot's connection at least once.
    case delivered
    /// The agent reported that it received the command (or finished a step of it).
    case acknowledged
    /// The agent ran every step.
    case completed
    /// The agent reported the command as a whole failed.
    case failed

    /// Order of progress.
    public var rank: Int {
        switch self {
        case .pending: return 0
        case .delivered: return 1
        case .acknowledged: return 2
        case .completed, .failed: return 3
        }
    }

    /// Whether the command has ended.
    public var isFinal: Bool { rank == 3 }

    /// States of a command still under way: sent again on every connection of its bot until it ends.
    public static let open: [CommandState] = allCases.filter { !$0.isFinal }
}

/// What a command asks of the bot.
public enum CommandKind: String, Sendable, Codable, CaseIterable {
    case emergencyStop = "emergency_stop"
    case resume
}

/// Who asked for a command.
public enum CommandOrigin: String, Sendable, Codable, CaseIterable {
    /// A person or API client with an operator token.
    case `operator`
    /// An alert rule with automatic shutdown.
    case rule
    /// The bot itself (an emergency it declared and ran before telling the hub).
    case bot
}
