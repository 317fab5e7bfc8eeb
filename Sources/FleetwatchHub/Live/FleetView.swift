import FleetwatchProtocol
import FleetwatchStorage
import Foundation
import Hummingbird
import Logging
import PostgresNIO

/// The fleet as the dashboard shows it: the registry row, connection state, latched emergency and open
/// alerts of each bot from PostgreSQL (one query), joined with the newest values from `LiveFleet`.
struct FleetView: Sendable {
    let client: any PostgresQuerying
    let live: LiveFleet
    let staleAfter: Duration
    let logger: Logger

    struct AlertCounts: ResponseEncodable, Equatable {
        var critical: Int64
        var warning: Int64
        var info: Int64
    }

    /// One row of the fleet overview (`GET /api/bots`).
    struct BotSummary: ResponseEncodable {
        let id: String
        let profile: String
        /// online, stale (connected but silent), offline or emergency.
        let state: String
        let connected: Bool
        let connectedHub: String?
        let agentVersion: String?
        let firstSeen: Date?
        let lastSeen: Date?
        let createdAt: Date
        let emergencySince: Date?
        let emergencyCommandId: CommandID?
        let allowLiquidation: Bool
        /// When the newest value below was recorded.
        let metricsAt: Date?
        let metrics: [String: Double]
        let states: [String: String]
        let alerts: AlertCounts
    }

    struct BotStatus: ResponseEncodable, Equatable {
        let bot: String
        let state: String
        let connectedHub: String?
        let lastSeen: Date?
        let emergencySince: Date?
        let alertsCritical: Int64
        let alertsWarning: Int64
        let alertsInfo: Int64
        /// healthy, warning, critical or emergency, and why (the reference's `status` and `message`).
        let status: String
        let message: String
        /// The last periodic health check of this bot (`monitoring.health_check_interval`), if any.
        let lastCheck: HealthCheck?
    }

    struct HealthCheck: ResponseEncodable, Equatable {
        let at: Date
        let status: String
        let message: String
    }

    struct Totals: ResponseEncodable, Equatable {
        let totalPnl: Double
        let dailyPnl: Double
        let tradesExecuted: Double
        /// Trade-weighted success rate in percent; nil before any trade.
        let successRate: Double?
    }

    /// `GET /api/status` and the `system_status` of live messages.
    struct FleetStatus: ResponseEncodable, Equatable {
        let timestamp: Date
        /// healthy, warning, critical or emergency: the worst of the bots' (the reference's `status`).
        let status: String
        /// Which bots need attention and why (the reference's `message`).
        let message: String
        let bots: Int
        let byState: [String: Int]
        let alertsCritical: Int64
        let alertsWarning: Int64
        let alertsInfo: Int64
        let totals: Totals
        /// Each bot's status.
        let botStatuses: [BotStatus]
        /// When the fleet's last periodic health check ran, and on which replica.
        var lastHealthCheck: Date?
        var lastHealthCheckBy: String?
    }

    struct Row {
        let name: String, profile: String, state: String, connected: Bool, hub: String?, version: String?
        let first: Date?, last: Date?, created: Date, emergencySince: Date?, emergencyCommand: CommandID?, allowLiquidation: Bool
        let alerts: AlertCounts
        var firing: (critical: [String], warning: [String], info: [String]) = ([], [], [])
        var check: HealthCheck?
    }

    func rows(bot: String?) async throws -> [Row] {
        let out = try await FleetRoster(client: client, logger: logger).bots(bot, staleAfter: staleAfter.inSeconds).map { b in
            var entry = Row(name: b.name, profile: b.profile, state: b.state, connected: b.connected, hub: b.hub, version: b.version,
                            first: b.first, last: b.last, created: b.created, emergencySince: b.emergencySince,
                            emergencyCommand: b.emergencyCommand, allowLiquidation: b.allowLiquidation,
                            alerts: AlertCounts(critical: Int64(b.critical.count), warning: Int64(b.warning.count), info: Int64(b.info.count)))
            entry.firing = (b.critical, b.warning, b.info)
            entry.check = b.check.map { HealthCheck(at: $0.at, status: $0.status, message: $0.message) }
            return entry
        }
        if let bot, out.isEmpty { throw HTTPError(.notFound, message: "no bot named \(bot)") }
        return out
    }

    func summaries(bot: String?) async throws -> [BotSummary] {
        let rows = try await rows(bot: bot)
        let values = await live.all()
        return rows.map { r in
            let v = values[r.name]
            return BotSummary(id: r.name, profile: r.profile, state: r.state, connected: r.connected, connectedHub: r.hub,
                              agentVersion: r.version, firstSeen: r.first, lastSeen: r.last, createdAt: r.created,
                              emergencySince: r.emergencySince, emergencyCommandId: r.emergencyCommand,
                              allowLiquidation: r.allowLiquidation, metricsAt: v?.at, metrics: v?.numbers ?? [:],
                              states: v?.texts ?? [:], alerts: r.alerts)
        }
    }

    func status(bot: String?) async throws -> FleetStatus {
        let rows = try await rows(bot: bot)
        let values = await live.all()
        let now = Date()
        let status = rows.map { r -> BotStatus in
            let (word, message) = HealthAssessment.bot(Self.facts(r), now: now)
            return BotStatus(bot: r.name, state: r.state, connectedHub: r.hub, lastSeen: r.last, emergencySince: r.emergencySince,
                             alertsCritical: r.alerts.critical, alertsWarning: r.alerts.warning, alertsInfo: r.alerts.info,
                             status: word.rawValue, message: message, lastCheck: r.check)
        }
        var fleet = Self.fleetStatus(status, totals: Self.totals(rows.compactMap { values[$0.name]?.numbers }), now: now)
        if let last = try await HealthCheckStore(client: client, logger: logger).lastCheck() {
            fleet.lastHealthCheck = last.at
            fleet.lastHealthCheckBy = last.hub
        }
        return fleet
    }

    /// The fleet status of `bots`' statuses.
    static func fleetStatus(_ bots: [BotStatus], totals: Totals, now: Date) -> FleetStatus {
        let (word, message) = HealthAssessment.fleet(bots.map {
            ($0.bot, HealthAssessment.Word(rawValue: $0.status) ?? .healthy, $0.message)
        })
        return FleetStatus(timestamp: now, status: word.rawValue, message: message, bots: bots.count,
                           byState: Dictionary(grouping: bots, by: \.state).mapValues(\.count),
                           alertsCritical: bots.reduce(0) { $0 + $1.alertsCritical },
                           alertsWarning: bots.reduce(0) { $0 + $1.alertsWarning },
                           alertsInfo: bots.reduce(0) { $0 + $1.alertsInfo },
                           totals: totals, botStatuses: bots)
    }

    static func facts(_ r: Row) -> HealthAssessment.Facts {
        HealthAssessment.Facts(bot: r.name, state: r.state, lastSeen: r.last, emergencySince: r.emergencySince,
                               critical: r.firing.critical, warning: r.firing.warning, info: r.firing.info)
    }

    /// Sums PnL and trades; the success rate is weighted by each bot's trades.
    static func totals(_ bots: [[String: Double]]) -> Totals {
        var pnl = 0.0, daily = 0.0, trades = 0.0, weighted = 0.0, weight = 0.0
        for m in bots {
            pnl += m["total_pnl"] ?? 0
            daily += m["daily_pnl"] ?? 0
            let t = m["trades_executed"] ?? 0
            trades += t
            if let rate = m["success_rate"], t > 0 {
                weighted += rate * t
                weight += t
            }
        }
        return Totals(totalPnl: pnl, dailyPnl: daily, tradesExecuted: trades, successRate: weight > 0 ? weighted / weight : nil)
    }
}

/// The fleet status for live messages, computed at most once per `maxAge` however many viewers ask.
actor FleetStatusCache {
    let view: FleetView
    let maxAge: Duration
    private var cached: (at: ContinuousClock.Instant, status: FleetView.FleetStatus)?
    private var refreshing: Task<FleetView.FleetStatus?, Never>?

    init(view: FleetView, maxAge: Duration = .seconds(1)) {
        self.view = view
        self.maxAge = maxAge
    }

    func status() async -> FleetView.FleetStatus? {
        if let cached, ContinuousClock.now - cached.at < maxAge { return cached.status }
        if let refreshing { return await refreshing.value }
        let view = self.view
        let task = Task { try? await view.status(bot: nil) }
        refreshing = task
        let status = await task.value
        refreshing = nil
        if let status { cached = (ContinuousClock.now, status) }
        return status ?? cached?.status
    }
}
