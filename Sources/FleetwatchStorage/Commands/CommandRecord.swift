import FleetwatchProtocol
import FleetwatchControl
import Foundation

/// Who did something to the ledger: an API token's holder, a rule, a bot, or a hub replica.
public struct Actor: Sendable, Equatable {
    public enum Kind: String, Sendable, Codable {
        case `operator`, viewer, rule, bot, hub, anonymous
    }
    public var name: String
    public var kind: Kind
    /// Where the request came from (address), if over the network.
    public var remote: String?

    public init(name: String, kind: Kind, remote: String? = nil) {
        self.name = name
        self.kind = kind
        self.remote = remote
    }
}

/// One command of the ledger with its step results, as the API shows it.
public struct CommandRecord: Sendable, Equatable, Codable {
    public struct Step: Sendable, Equatable, Codable {
        public var step: String
        public var status: String
        public var detail: String
        /// When the agent finished the step (the bot's clock).
        public var at: Date
        /// When the hub recorded it.
        public var recordedAt: Date
    }

    public var id: CommandID
    public var bot: String
    /// `emergency_stop` or `resume`.
    public var kind: String
    /// `operator`, `rule` (automatic shutdown) or `bot` (declared by the bot itself).
    public var origin: String
    public var issuedBy: String
    public var reason: String
    /// Whether the liquidate step is sent (asked for and allowed for the bot).
    public var liquidate: Bool
    /// Whether liquidation was asked for (by the operator, the rule or the bot's own declaration).
    public var liquidationRequested: Bool
    /// Why the hub did not send the liquidate step that was asked for; nil if it was not refused.
    public var liquidationRefused: String?
    /// pending, delivered, acknowledged, completed or failed.
    public var state: String
    public var detail: String?
    public var createdAt: Date
    public var deliveredAt: Date?
    public var acknowledgedAt: Date?
    public var completedAt: Date?
    public var failedAt: Date?
    public var deliveries: Int
    public var deliveredBy: String?
    public var steps: [Step]

    /// Whether the command has ended.
    public var isFinal: Bool { CommandState(rawValue: state)?.isFinal ?? false }

    /// A command taken by a replica while the database was unreachable (`BreakGlassJournal`): an emergency stop
    /// without liquidation, sent by `hub` at `at`.
    public static func breakGlass(bot: String, origin: CommandOrigin, issuedBy: String, reason: String, hub: String, at: Date,
                                  id: CommandID = .random()) -> CommandRecord {
        CommandRecord(id: id, bot: bot, kind: CommandKind.emergencyStop.rawValue, origin: origin.rawValue, issuedBy: issuedBy, reason: reason,
                      liquidate: false, liquidationRequested: false, liquidationRefused: nil, state: CommandState.delivered.rawValue, detail: nil,
                      createdAt: at, deliveredAt: at, acknowledgedAt: nil, completedAt: nil, failedAt: nil, deliveries: 1,
                      deliveredBy: hub, steps: [])
    }
}

/// What an emergency-stop or resume request did.
public enum CommandRequestOutcome: Sendable, Equatable {
    /// A new command was stored.
    case created(CommandRecord)
    /// The same request (same idempotency key and body) was made before: its command.
    case existing(CommandRecord)
    /// The idempotency key was used before with a different request.
    case idempotencyConflict
    case unknownBot
    /// The request asks for liquidation, which is not allowed for this bot.
    case liquidationNotAllowed
    /// A resume for a bot that is not in emergency mode.
    case notInEmergency
    /// An automatic stop for a bot already in emergency mode: nothing new was stored.
    case alreadyInEmergency
}
