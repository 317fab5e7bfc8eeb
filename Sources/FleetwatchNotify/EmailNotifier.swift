import FleetwatchAlerting
import Foundation

/// Alerts by email over SMTP (plain, STARTTLS or TLS, optional authentication).
/// Subject: `[CRITICAL] kraken-1 daily_pnl: Daily loss beyond the limit`.
public struct EmailNotifier: Notifier {
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int = 587
        /// `plain`, `starttls` or `tls`.
        public var security: String = "starttls"
        public var username: String?
        public var password: String?
        public var from: String
        public var to: [String]
        public var verifyCertificate = true
        public var timeout: Duration = .seconds(15)
        public var minimumLevel: AlertLevel = .critical
        public init(host: String, from: String, to: [String]) {
            self.host = host
            self.from = from
            self.to = to
        }
    }

    public let name = "email"
    public var minimumLevel: AlertLevel { configuration.minimumLevel }
    let configuration: Configuration

    public init(configuration: Configuration) { self.configuration = configuration }

    /// The subject line for `event`.
    public static func subject(_ event: AlertEvent) -> String {
        let what = event.kind == .resolved ? "RESOLVED" : event.level.rawValue
        return "[\(what)] \(event.bot) \(event.metric): \(event.summary)"
    }

    /// The full message (headers and body).
    public static func message(_ event: AlertEvent, from: String, to: [String]) -> String {
        let date = DateFormatter()
        date.locale = Locale(identifier: "en_US_POSIX")
        date.dateFormat = "EEE, dd MMM yyyy HH:mm:ss Z"
        let iso = ISO8601DateFormatter()
        // Addresses are checked plain (MailFormat.isPlainAddress) by the configuration and the SMTP client; the
        // subject carries free text (a stop's reason) and is encoded; the body is quoted-printable.
        let headers = [
            "From: fleetwatch <\(from)>",
            "To: \(to.joined(separator: ", "))",
            "Subject: \(MailFormat.header(subject(event)))",
            "Date: \(date.string(from: event.at))",
            "Message-ID: <alert-\(event.alertID)-\(event.kind.rawValue)-\(Int(event.at.timeIntervalSince1970))@fleetwatch>",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: quoted-printable",
        ]
        let body = [
            event.headline,
            "",
            "Bot:       \(event.bot)",
            "Rule:      \(event.ruleID)",
            "Level:     \(event.level.rawValue)",
            "Event:     \(event.kind.rawValue)",
            "Value:     \(event.state ?? String(event.value))",
            "Limit:     \(event.limit)",
            "Fired at:  \(iso.string(from: event.firedAt))",
            "This mail: \(iso.string(from: event.at))",
            "Alert id:  \(event.alertID)",
        ]
        return headers.joined(separator: "\r\n") + "\r\n\r\n" + MailFormat.quotedPrintable(body.joined(separator: "\n"))
    }

    public func notify(_ event: AlertEvent) async throws {
        let c = configuration
        guard let security = SMTPClient.Security(rawValue: c.security) else {
            throw NotifyError("email security must be plain, starttls or tls", retryable: false)
        }
        let client = SMTPClient(host: c.host, port: c.port, security: security, username: c.username, password: c.password,
                                verifyCertificate: c.verifyCertificate, timeout: c.timeout)
        try await client.send(from: c.from, to: c.to, message: Self.message(event, from: c.from, to: c.to))
    }
}
