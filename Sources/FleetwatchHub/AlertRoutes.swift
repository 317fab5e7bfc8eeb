import FleetwatchAlerting
import FleetwatchStorage
import Foundation
import Hummingbird
import Logging
import PostgresNIO

/// The alert API: alerts, acknowledgement, silences, the live event feed and the notification ledger
/// (thresholds: `ThresholdRoutes`). Documented in docs/api.md.
struct AlertRoutes: Sendable {
    let client: any PostgresQuerying
    let feed: AlertFeed
    let logger: Logger

    func register(on router: Router<HubRequestContext>) {
        let history = AlertHistory(client: client, logger: logger)
        router.get("/api/alerts") { request, _ -> [AlertHistory.Alert] in try await history.alerts(Self.filter(request.uri.queryParameters)) }
        router.post("/api/alerts/:id/acknowledge") { _, context -> AlertHistory.Alert in
            let id = try context.parameters.require("id", as: Int64.self)
            guard let record = try await history.acknowledge(id: id, by: context.principal?.name ?? "api") else {
                throw HTTPError(.notFound, message: "no alert \(id)")
            }
            return record
        }
        router.get("/api/events") { request, _ -> [AlertFeed.Entry] in
            await feed.events(after: request.uri.queryParameters.get("after", as: Int64.self) ?? 0)
        }
        router.get("/api/silences") { _, _ -> [AlertHistory.Silence] in try await history.activeSilences() }
        router.post("/api/silences") { request, context -> EditedResponse<AlertHistory.Silence> in
            var s = try await request.decode(as: AlertHistory.Silence.self, context: context)
            guard let id = try await history.addSilence(s) else { throw HTTPError(.notFound, message: "no bot named \(s.bot)") }
            s.id = id
            return EditedResponse(status: .created, response: s)
        }
        router.delete("/api/silences/:id") { _, context -> HTTPResponse.Status in
            try await history.endSilence(id: try context.parameters.require("id", as: Int64.self))
            return .noContent
        }
        router.get("/api/notifications") { request, _ -> [AlertHistory.Notification] in
            try await history.notifications(alert: request.uri.queryParameters.get("alert", as: Int64.self),
                                            limit: request.uri.queryParameters.get("limit", as: Int.self) ?? 200)
        }
    }

    /// `bot`, `level`, `state` (firing|resolved), `since`/`until` (ISO 8601), `id`, `limit`.
    static func filter(_ q: Parameters) -> AlertHistory.Filter {
        let iso = ISO8601DateFormatter()
        return AlertHistory.Filter(bot: q.get("bot"), level: q.get("level")?.uppercased(), state: q.get("state")?.lowercased(),
                                   since: q.get("since").flatMap { iso.date(from: $0) }, until: q.get("until").flatMap { iso.date(from: $0) },
                                   id: q.get("id", as: Int64.self), limit: q.get("limit", as: Int.self) ?? 200)
    }
}

extension AlertHistory.Alert: ResponseEncodable {}
extension AlertHistory.Silence: ResponseEncodable {}
extension AlertHistory.Notification: ResponseEncodable {}
