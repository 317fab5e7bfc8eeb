import FleetwatchAlerting
import FleetwatchStorage
import Foundation
import HummingbirdWebSocket
import Logging
import NIOCore

/// One dashboard WebSocket (`/ws`, `/ws?bot=NAME`): every `updateInterval` a `metrics_update` with the
/// values that changed since the last one (from any replica), new alert events and the fleet status
/// when it changed; a `ping` every `pingInterval`. The first message carries everything. Closed with
/// 4001 when its session ends (sign-out on any replica, expiry, disabled user) or its API token is revoked
/// (checked every `checkInterval`, `dashboard.session_check_interval`).
struct ViewerSocket: Sendable {
    let live: LiveFleet
    let feed: AlertFeed
    let status: FleetStatusCache
    let sessions: Sessions
    let tokens: AccessTokens
    let registry: ViewerRegistry
    let updateInterval: Duration
    let pingInterval: Duration
    let checkInterval: Duration
    let logger: Logger

    /// The reference system's message, in fleet form.
    struct Update: Encodable {
        let type = "metrics_update"
        let timestamp: Double
        /// `fleet` or `bot`.
        let scope: String
        let bot: String?
        /// Fleet: bot → metric → value; bot: metric → value. Only what changed since the last message.
        let metrics: Metrics
        let alerts: [AlertEvent]
        /// The fleet status (or the bot's), when it changed; null otherwise.
        let system_status: FleetView.FleetStatus?

        enum Metrics: Encodable {
            case fleet([String: [String: LiveFleet.Value]])
            case bot([String: LiveFleet.Value])
            func encode(to encoder: any Encoder) throws {
                switch self {
                case .fleet(let m): try m.encode(to: encoder)
                case .bot(let m): try m.encode(to: encoder)
                }
            }
        }
    }

    struct Ping: Encodable {
        let type = "ping"
        let timestamp: Double
    }

    enum Event: Sendable {
        case tick, ping, checkSession, close(String), ended
    }

    func serve(_ viewer: ViewerGate.Viewer, inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async {
        let (events, continuation) = AsyncStream.makeStream(of: Event.self, bufferingPolicy: .bufferingNewest(16))
        let id = UUID()
        await registry.add(id: id, session: viewer.sessionID) { continuation.yield(.close($0)) }
        let reader = Task {
            // Clients may send `{"type":"pong"}`; anything else is ignored. Size-capped by the server configuration.
            do { for try await _ in inbound.messages(maxSize: 4096) {} } catch {}
            continuation.yield(.ended)
        }
        let timers = Task {
            await withTaskGroup(of: Void.self) { group in
                for (event, every) in [(Event.tick, updateInterval), (.ping, pingInterval), (.checkSession, checkInterval)] {
                    group.addTask {
                        while !Task.isCancelled {
                            try? await Task.sleep(for: every)
                            continuation.yield(event)
                        }
                    }
                }
            }
        }
        defer {
            reader.cancel()
            timers.cancel()
        }
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        var version: UInt64 = 0
        var alertSeq = await feed.latestSeq
        var lastStatus: FleetView.FleetStatus?
        var first = true
        var iterator = events.makeAsyncIterator()
        do {
            loop: while true {
                if first {
                    first = false
                } else {
                    guard let event = await iterator.next() else { break }
                    switch event {
                    case .tick: break
                    case .ping:
                        try await outbound.write(.text(String(decoding: try encoder.encode(Ping(timestamp: Date().timeIntervalSince1970)), as: UTF8.self)))
                        continue loop
                    case .checkSession:
                        if let s = viewer.sessionID, (try? await sessions.isActive(id: s)) == false {
                            try? await outbound.close(.unknown(4001), reason: "session ended")
                            break loop
                        }
                        if let hash = viewer.tokenHash, (try? await tokens.isActive(hash: hash)) == false {
                            try? await outbound.close(.unknown(4001), reason: "API token revoked")
                            break loop
                        }
                        continue loop
                    case .close(let reason):
                        try? await outbound.close(.unknown(4001), reason: reason)
                        break loop
                    case .ended:
                        break loop
                    }
                }
                let (next, changed) = await live.changes(since: version, bot: viewer.bot)
                version = next
                let alerts = await feed.events(after: alertSeq, limit: 500)
                alertSeq = alerts.last?.seq ?? alertSeq
                var fleetStatus = await status.status()
                if let bot = viewer.bot { fleetStatus = fleetStatus?.restricted(to: bot, values: await live.bot(bot)?.numbers) }
                let statusChanged = fleetStatus.map { !$0.sameContent(as: lastStatus) } ?? false
                if statusChanged { lastStatus = fleetStatus }
                let events = alerts.map(\.event).filter { viewer.bot == nil || $0.bot == viewer.bot }
                guard !changed.isEmpty || !events.isEmpty || statusChanged else { continue }
                let metrics: Update.Metrics = viewer.bot.map { .bot(changed[$0] ?? [:]) } ?? .fleet(changed)
                let update = Update(timestamp: Date().timeIntervalSince1970, scope: viewer.bot == nil ? "fleet" : "bot", bot: viewer.bot,
                                    metrics: metrics, alerts: events, system_status: statusChanged ? fleetStatus : nil)
                try await outbound.write(.text(String(decoding: try encoder.encode(update), as: UTF8.self)))
            }
        } catch {
            logger.debug("dashboard WebSocket of \(viewer.name) ended: \(error)")
        }
        continuation.finish()
        await registry.remove(id: id)
    }
}

extension FleetView.FleetStatus {
    /// Equal apart from the timestamp.
    func sameContent(as other: Self?) -> Bool {
        guard let other else { return false }
        return bots == other.bots && byState == other.byState && alertsCritical == other.alertsCritical
            && alertsWarning == other.alertsWarning && alertsInfo == other.alertsInfo && totals == other.totals
            && status == other.status && message == other.message && botStatuses == other.botStatuses
    }

    /// The status of one bot only.
    func restricted(to bot: String, values: [String: Double]?) -> Self {
        let mine = botStatuses.filter { $0.bot == bot }
        return FleetView.fleetStatus(mine, totals: FleetView.totals(values.map { [$0] } ?? []), now: timestamp)
    }
}

/// The dashboard WebSockets open on this replica, by session: sign-out anywhere closes them here.
actor ViewerRegistry {
    private var sockets: [UUID: (session: Int64?, close: @Sendable (String) -> Void)] = [:]

    func add(id: UUID, session: Int64?, close: @escaping @Sendable (String) -> Void) {
        sockets[id] = (session, close)
    }

    func remove(id: UUID) { sockets[id] = nil }

    /// Closes every socket of `session`; returns how many.
    @discardableResult
    func close(session: Int64, reason: String = "signed out") -> Int {
        let matching = sockets.values.filter { $0.session == session }
        matching.forEach { $0.close(reason) }
        return matching.count
    }

    var count: Int { sockets.count }
}
