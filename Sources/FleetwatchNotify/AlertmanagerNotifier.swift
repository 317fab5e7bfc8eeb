import AsyncHTTPClient
import FleetwatchAlerting
import FleetwatchProtocol
import Foundation
import NIOCore
import Synchronization

/// Posts alerts to Prometheus Alertmanager's v2 API (`POST /api/v2/alerts`), so Alertmanager's routing,
/// grouping, inhibition, silences and receivers apply to fleetwatch's alerts.
///
/// Alertmanager forgets an alert at its `endsAt`: like Prometheus, this channel re-posts every firing alert it
/// notified each `resendInterval` (`run()`, a service of the hub) with `endsAt` four intervals ahead, and a
/// resolution posts it once more with `endsAt` at the moment it resolved. An alert whose replica stops is
/// therefore resolved in Alertmanager four intervals later unless another event about it arrives.
public final class AlertmanagerNotifier: Notifier {
    public struct Configuration: Sendable {
        /// Alertmanager's base address (`http://alertmanager:9093`); `/api/v2/alerts` is appended.
        public var url: String
        public var minimumLevel: AlertLevel = .info
        public var timeout: Duration = .seconds(5)
        public var resendInterval: Duration = .seconds(60)
        /// This replica's id (the `hub` label).
        public var hubID: String
        /// The dashboard's public address (`https://fleet.example.com`); each alert links to its bot's page.
        public var dashboardURL: String?
        public init(url: String, hubID: String) {
            self.url = url
            self.hubID = hubID
        }
    }

    /// One alert as Alertmanager's v2 API takes it (`postableAlert`).
    public struct Posted: Codable, Sendable, Equatable {
        public var labels: [String: String]
        public var annotations: [String: String]
        public var startsAt: Date
        public var endsAt: Date
        public var generatorURL: String?
    }

    public let name = "alertmanager"
    public var minimumLevel: AlertLevel { configuration.minimumLevel }
    let configuration: Configuration
    let client: HTTPClient
    /// Alert id → the firing alert as last posted, for the periodic re-post.
    private let firing = Mutex<[Int64: Posted]>([:])

    public init(configuration: Configuration, client: HTTPClient = .shared) {
        self.configuration = configuration
        self.client = client
    }

    /// The alert posted for `event` at `now`: resolved events end when they resolved, others four resend
    /// intervals ahead.
    public func posted(_ event: AlertEvent, now: Date) -> Posted {
        var labels = [
            "alertname": event.ruleID, "bot": event.bot, "rule": event.ruleID, "metric": event.metric,
            "level": event.level.rawValue, "severity": event.level.rawValue.lowercased(), "hub": configuration.hubID,
        ]
        labels = labels.filter { !$0.value.isEmpty }
        var annotations = ["summary": event.summary, "description": event.headline, "value": AlertEvent.format(event.value),
                           "limit": AlertEvent.format(event.limit), "alert_id": String(event.alertID)]
        if let state = event.state { annotations["state"] = state }
        let link = configuration.dashboardURL.map { base in
            let bot = event.bot.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? event.bot
            return (base.hasSuffix("/") ? String(base.dropLast()) : base) + "/#/bot/" + bot
        }
        if let link { annotations["dashboard"] = link }
        let ends = event.kind == .resolved ? event.at : now.addingTimeInterval(4 * configuration.resendInterval.inSeconds)
        return Posted(labels: labels, annotations: annotations, startsAt: event.firedAt, endsAt: max(ends, event.firedAt),
                      generatorURL: link)
    }

    public func notify(_ event: AlertEvent) async throws {
        let now = Date()
        var alert = posted(event, now: now)
        firing.withLock { active in
            if event.kind == .resolved {
                // Resolve exactly the label set that fired (Alertmanager identifies an alert by its labels).
                if let fired = active.removeValue(forKey: event.alertID) { alert.labels = fired.labels }
            } else {
                active[event.alertID] = alert
            }
        }
        try await post([alert])
    }

    /// Re-posts every firing alert each `resendInterval` until the task is cancelled.
    public func run() async {
        while !Task.isCancelled {
            do { try await Task.sleep(for: configuration.resendInterval) } catch { return }
            await resend(now: Date())
        }
    }

    /// Re-posts the firing alerts with `endsAt` moved ahead; a failure waits for the next round.
    public func resend(now: Date) async {
        let ahead = now.addingTimeInterval(4 * configuration.resendInterval.inSeconds)
        let alerts = firing.withLock { active in
            for id in active.keys { active[id]!.endsAt = ahead }
            return Array(active.values)
        }
        guard !alerts.isEmpty else { return }
        try? await post(alerts)
    }

    /// Firing alerts this channel keeps alive in Alertmanager.
    public var firingCount: Int { firing.withLock { $0.count } }

    public static func body(_ alerts: [Posted]) throws -> Data {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys]
        return try encoder.encode(alerts)
    }

    private func post(_ alerts: [Posted]) async throws {
        let base = configuration.url.hasSuffix("/") ? String(configuration.url.dropLast()) : configuration.url
        var request = HTTPClientRequest(url: base + "/api/v2/alerts")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "fleetwatch-hub")
        request.body = .bytes(ByteBuffer(bytes: try Self.body(alerts)))
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: .milliseconds(configuration.timeout.wholeMilliseconds))
        } catch {
            throw NotifyError("Alertmanager \(base) unreachable: \(error)", retryable: true)
        }
        let answer = (try? await response.body.collect(upTo: 16 * 1024)).map { String(buffer: $0) } ?? ""
        let code = Int(response.status.code)
        switch code {
        case 200..<300: return
        case 429, 500..<600: throw NotifyError("Alertmanager answered \(code): \(answer.prefix(200))", retryable: true)
        default: throw NotifyError("Alertmanager answered \(code): \(answer.prefix(200)); not retried", retryable: false)
        }
    }
}
