import AsyncHTTPClient
import Crypto
import FleetwatchAlerting
import Foundation
import NIOCore
import NIOHTTP1

/// HTTP POST of a JSON body per alert event (documented in docs/alerts.md), signed with HMAC-SHA256 over a
/// timestamp and the body, `X-Fleetwatch-Signature: t=<unix seconds>,v1=<hex>`, so a receiver can refuse stale
/// and replayed deliveries (as Stripe's and Slack's signatures allow). `X-Fleetwatch-Delivery` names the event,
/// the same on every retry. The body's `text` field makes it work as is with Slack, Discord and Mattermost
/// incoming webhooks. 5xx, 429 and network errors are retryable; other 4xx are not.
public struct WebhookNotifier: Notifier {
    public struct Configuration: Sendable {
        public var url: String
        /// Key for the signature header; nil sends no signature.
        public var secret: String?
        public var timeout: Duration = .seconds(5)
        public var minimumLevel: AlertLevel = .warning
        /// What the body looks like: fleetwatch's JSON, or a chat service's message.
        public var format: WebhookFormat = .fleetwatch
        /// Telegram's chat id (the `telegram` format).
        public var chatID: String?
        public init(url: String, secret: String? = nil) {
            self.url = url
            self.secret = secret
        }
    }

    public let name = "webhook"
    public var minimumLevel: AlertLevel { configuration.minimumLevel }
    let configuration: Configuration
    let client: HTTPClient

    public init(configuration: Configuration, client: HTTPClient = .shared) {
        self.configuration = configuration
        self.client = client
    }

    /// The JSON body for `event`.
    public static func body(_ event: AlertEvent) throws -> Data {
        struct Body: Encodable {
            let text: String
            let event: String
            let alert_id: Int64
            let bot: String
            let rule: String
            let metric: String
            let level: String
            let value: Double
            let limit: Double
            let state: String?
            let summary: String
            let fired_at: Date
            let at: Date
        }
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys]
        return try encoder.encode(Body(text: event.headline, event: event.kind.rawValue, alert_id: event.alertID, bot: event.bot,
                                       rule: event.ruleID, metric: event.metric, level: event.level.rawValue, value: event.value,
                                       limit: event.limit, state: event.state, summary: event.summary, fired_at: event.firedAt,
                                       at: event.at))
    }

    /// `t=<timestamp>,v1=<hex of HMAC-SHA256(secret, "<timestamp>." + body)>`.
    public static func signature(body: Data, secret: String, timestamp: Int64) -> String {
        var signed = Data("\(timestamp).".utf8)
        signed.append(body)
        let mac = HMAC<SHA256>.authenticationCode(for: signed, using: SymmetricKey(data: Data(secret.utf8)))
        return "t=\(timestamp),v1=" + mac.map { String(format: "%02x", $0) }.joined()
    }

    /// The event's id for receivers that deduplicate: the same on every retry of one delivery.
    public static func deliveryID(_ event: AlertEvent) -> String {
        "\(event.alertID)-\(event.kind.rawValue)-\(Int64((event.at.timeIntervalSince1970 * 1000).rounded()))"
    }

    public func notify(_ event: AlertEvent) async throws {
        let body = try configuration.format.body(event, chatID: configuration.chatID)
        var request = HTTPClientRequest(url: configuration.url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "fleetwatch-hub")
        request.headers.add(name: "X-Fleetwatch-Event", value: event.kind.rawValue)
        request.headers.add(name: "X-Fleetwatch-Delivery", value: Self.deliveryID(event))
        if let secret = configuration.secret {
            // Signed at each attempt: a retry carries a fresh timestamp.
            let now = Int64(Date().timeIntervalSince1970)
            request.headers.add(name: "X-Fleetwatch-Signature", value: Self.signature(body: body, secret: secret, timestamp: now))
        }
        request.body = .bytes(ByteBuffer(bytes: body))
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: .milliseconds(configuration.timeout.wholeMilliseconds))
        } catch {
            throw NotifyError("webhook \(configuration.url) unreachable: \(error)", retryable: true)
        }
        _ = try? await response.body.collect(upTo: 64 * 1024)
        let code = Int(response.status.code)
        switch code {
        case 200..<300: return
        case 429, 500..<600: throw NotifyError("webhook answered \(code)", retryable: true)
        default: throw NotifyError("webhook answered \(code); not retried", retryable: false)
        }
    }
}
