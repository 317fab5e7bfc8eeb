import FleetwatchStorage
import Foundation
import Hummingbird
import NIOCore

/// Decides whether a request may open the dashboard WebSocket `/ws`: a live session cookie (the browser)
/// or an API token (`Authorization: Bearer`, scripts); and, when the request names an Origin — a browser
/// always does — that origin must be the hub's own address or one configured in `dashboard.allowed_origins`
/// (a page on another site cannot ride the viewer's cookie).
struct ViewerGate: Sendable {
    let tokens: AccessTokens
    let sessions: Sessions
    let allowedOrigins: [String]

    struct Viewer: Sendable {
        let name: String
        let role: AccessTokens.Role
        /// The session to close the socket with on sign-out; nil for API tokens.
        let sessionID: Int64?
        /// The API token's SHA-256, to close the socket once it is revoked; nil for sessions.
        var tokenHash: ByteBuffer? = nil
        /// Only this bot's updates; nil for the fleet.
        let bot: String?
    }

    struct Refusal: Error {
        let status: HTTPResponse.Status
        let message: String
    }

    func check(_ head: HTTPRequest) async -> Result<Viewer, Refusal> {
        let bot = Self.query(head.path ?? "", "bot")
        do {
            // A token is not sent by browsers on their own, so it needs no origin check.
            if let token = AuthMiddleware.bearer(head.headerFields[.authorization]) {
                guard let p = try await tokens.principal(token: token) else {
                    return .failure(Refusal(status: .unauthorized, message: "WebSocket refused: the API token is unknown or revoked"))
                }
                return .success(Viewer(name: p.name, role: p.role, sessionID: nil, tokenHash: BotToken.hash(token), bot: bot))
            }
            // The cookie is: the page that opens the socket must be the dashboard itself.
            let origins = head.headerFields[values: .origin]
            guard !origins.isEmpty else {
                return .failure(Refusal(status: .forbidden, message: "WebSocket refused: a browser connection must send Origin"))
            }
            if let foreign = origins.first(where: { !originAllowed($0, authority: head.authority) }) {
                return .failure(Refusal(status: .forbidden, message: "WebSocket refused: origin \(foreign) is not this hub (dashboard.allowed_origins)"))
            }
            guard let secret = Self.cookie(head.headerFields[values: .cookie], AuthMiddleware.sessionCookie),
                  let s = try await sessions.session(secret: secret) else {
                return .failure(Refusal(status: .unauthorized, message: "WebSocket refused: sign in at /login first"))
            }
            return .success(Viewer(name: s.user, role: s.role, sessionID: s.id, bot: bot))
        } catch {
            return .failure(Refusal(status: .serviceUnavailable, message: "WebSocket refused: database unavailable"))
        }
    }

    /// The hub's own `http(s)://host:port` or a configured origin. A `ws://`/`wss://` origin cannot come
    /// from a web page (browsers send the page's http(s) origin), only from a program, so it passes;
    /// `null` (sandboxed frames, files) and other sites do not.
    func originAllowed(_ origin: String, authority: String?) -> Bool {
        if allowedOrigins.contains(origin) { return true }
        guard let url = URL(string: origin), let scheme = url.scheme?.lowercased() else { return false }
        if scheme == "ws" || scheme == "wss" { return true }
        guard let authority, scheme == "http" || scheme == "https", let host = url.host else { return false }
        let port = url.port.map { ":\($0)" } ?? ""
        return "\(host)\(port)".lowercased() == authority.lowercased()
    }

    static func cookie(_ headers: [String], _ name: String) -> String? {
        for header in headers {
            for part in header.split(separator: ";") {
                let kv = part.split(separator: "=", maxSplits: 1)
                if kv.count == 2, kv[0].trimmingCharacters(in: .whitespaces) == name {
                    return kv[1].trimmingCharacters(in: .whitespaces)
                }
            }
        }
        return nil
    }

    static func query(_ path: String, _ key: String) -> String? {
        guard let q = path.split(separator: "?", maxSplits: 1).dropFirst().first else { return nil }
        for part in q.split(separator: "&") {
            let kv = part.split(separator: "=", maxSplits: 1)
            if kv.count == 2, kv[0] == key { return String(kv[1]).removingPercentEncoding }
        }
        return nil
    }
}
