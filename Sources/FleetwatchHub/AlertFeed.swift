import FleetwatchStorage
import FleetwatchAlerting
import FleetwatchNotify
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle

/// The dashboard channel: recent alert events of the whole fleet, from every replica. Events travel
/// through PostgreSQL NOTIFY, so viewers of any replica see alerts raised by any other.
public actor AlertFeed {
    public struct Entry: Sendable, Codable {
        /// Position in this replica's feed; ask for `after` the last one seen.
        public let seq: Int64
        public let event: AlertEvent
    }
    private var entries: [Entry] = []
    private var next: Int64 = 1
    let capacity: Int

    public init(capacity: Int = 1000) { self.capacity = capacity }

    func append(_ event: AlertEvent) {
        entries.append(Entry(seq: next, event: event))
        next += 1
        if entries.count > capacity { entries.removeFirst(entries.count - capacity) }
    }

    /// The newest position: a viewer connecting now asks for events after it.
    public var latestSeq: Int64 { next - 1 }

    /// Events after `seq`, oldest first.
    public func events(after seq: Int64, limit: Int = 200) -> [Entry] {
        Array(entries.lazy.filter { $0.seq > seq }.prefix(limit))
    }

    static let channel = "fleetwatch_alerts"

    static func encode(_ event: AlertEvent) -> String {
        let e = JSONEncoder()
        e.dateEncodingStrategy = .iso8601
        return String(decoding: (try? e.encode(event)) ?? Data(), as: UTF8.self)
    }

    static func decode(_ payload: String) -> AlertEvent? {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        return try? d.decode(AlertEvent.self, from: Data(payload.utf8))
    }
}

/// Publishes alert events with `pg_notify` for every replica's feed.
struct DashboardNotifier: Notifier {
    let name = "dashboard"
    let minimumLevel: AlertLevel
    var receivesSilenced: Bool { true }
    let client: any PostgresQuerying
    let logger: Logger

    func notify(_ event: AlertEvent) async throws {
        try await Broadcast(client: client, logger: logger).publish(AlertFeed.channel, AlertFeed.encode(event))
    }
}

/// One PostgreSQL connection LISTENing on every channel the replica needs (not one pooled connection per
/// channel): each notification goes to its channel's handler, in order per channel. After a failure it
/// listens again; what was published meanwhile is picked up by the periodic passes behind every channel, or by
/// the channel's `listening` hook, run each time its LISTEN is in place (notifications sent before are lost).
struct NotificationListener: Service {
    struct Subscription: Sendable {
        let channel: String
        var listening: (@Sendable () async -> Void)? = nil
        let handle: @Sendable (String) async -> Void
    }

    let client: any PostgresQuerying
    let logger: Logger
    let subscriptions: [Subscription]

    func run() async throws {
        guard !subscriptions.isEmpty else { return }
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await client.withLeasedConnection { conn in
                        try await withThrowingTaskGroup(of: Void.self) { group in
                            for s in subscriptions {
                                group.addTask {
                                    try await conn.listen(on: s.channel) { notifications in
                                        await s.listening?()
                                        for try await n in notifications { await s.handle(n.payload) }
                                    }
                                }
                            }
                            try await group.next()
                            group.cancelAll()
                        }
                    }
                } catch {
                    if Task.isCancelled { return }
                    logger.warning("listening for notifications failed, retrying: \(String(reflecting: error))")
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        }
    }
}

/// Every delivery attempt, in the `notifications` table, written in groups (`NotificationLedgerWriter`).
struct PostgresNotificationLedger: NotificationLedger {
    let writer: NotificationLedgerWriter
    let metrics: HubMetrics?

    init(client: any PostgresQuerying, hubID: String, health: DatabaseHealth? = nil, logger: Logger, metrics: HubMetrics?) {
        writer = NotificationLedgerWriter(history: AlertHistory(client: client, logger: logger), hubID: hubID, health: health, logger: logger)
        self.metrics = metrics
    }

    func record(_ event: AlertEvent, channel: String, attempt: Int, outcome: String, error: String?, durationMs: Double) async {
        metrics?.notificationAttempt(channel: channel, outcome: outcome)
        await writer.add(AlertHistory.Delivery(alertID: event.alertID, event: event.kind.rawValue, channel: channel, attempt: attempt,
                                               outcome: outcome, error: error, at: Date(), durationMs: durationMs))
    }

    func flush() async { await writer.written() }
}
