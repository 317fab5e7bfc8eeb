import FleetwatchAlerting

/// A delivery failure; `retryable` says whether trying again may help (network trouble, 5xx, 429).
public struct NotifyError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public let retryable: Bool
    public init(_ description: String, retryable: Bool) {
        self.description = description
        self.retryable = retryable
    }
}

/// One alert channel. It delivers or throws; retrying is the dispatcher's job, not the channel's.
public protocol Notifier: Sendable {
    /// The channel's name in the notification ledger (`console`, `log`, `webhook`, `email`, …).
    var name: String { get }
    /// Events below this level are not sent to this channel.
    var minimumLevel: AlertLevel { get }
    /// Whether events under a silence still reach this channel (a dashboard shows them, marked silenced).
    var receivesSilenced: Bool { get }
    func notify(_ event: AlertEvent) async throws
}

extension Notifier {
    public var receivesSilenced: Bool { false }
}

/// Where every delivery attempt is recorded (PostgreSQL's `notifications` table in the hub).
public protocol NotificationLedger: Sendable {
    func record(_ event: AlertEvent, channel: String, attempt: Int, outcome: String, error: String?, durationMs: Double) async
    /// Returns once the attempts recorded so far are written (a ledger that writes later: the dispatcher's last step).
    func flush() async
}

extension NotificationLedger {
    public func flush() async {}
}

/// A notifier made from a closure: the hook for code that embeds the hub (the reference system's
/// `register_dashboard_callback`).
public struct CallbackNotifier: Notifier {
    public let name: String
    public let minimumLevel: AlertLevel
    let body: @Sendable (AlertEvent) async throws -> Void

    public init(name: String, minimumLevel: AlertLevel = .info, _ body: @escaping @Sendable (AlertEvent) async throws -> Void) {
        self.name = name
        self.minimumLevel = minimumLevel
        self.body = body
    }

    public func notify(_ event: AlertEvent) async throws { try await body(event) }
}
