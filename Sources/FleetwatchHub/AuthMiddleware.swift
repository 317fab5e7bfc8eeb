import FleetwatchStorage
import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// Guards `/api` (and `/metrics…` under `hub.metrics_auth token`): every request needs an API token (`Authorization: Bearer …`, for scripts) or the
/// dashboard's session cookie. Reading needs the viewer role, anything else the operator role, and a
/// state-changing request with the cookie also needs the session's CSRF token in `X-CSRF-Token`.
/// Missing or invalid credentials get 401, a viewer changing something or a missing CSRF token 403;
/// every refused change is written to the audit log with who, when, from where and why.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = HubRequestContext
    let tokens: AccessTokens
    let sessions: Sessions
    let refusals: RefusalAudit
    let logger: Logger
    /// While PostgreSQL is unreachable, credentials verified recently are accepted from here (only the
    /// break-glass routes get this far then: `DatabaseGate` answers 503 for the rest).
    var health: DatabaseHealth?
    var recent = VerifiedCredentials(maxAge: .zero)
    /// `hub.metrics_auth token`: `/metrics` and `/metrics/bots` need credentials too (any role may read them).
    var guardsMetrics = false

    static let sessionCookie = "fw_session"
    static let csrfHeader = HTTPField.Name("X-CSRF-Token")!

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // Decided on the path's first component, as the router splits it (`//api/…` is `/api/…` to the router).
        let first = request.uri.path.split(separator: "/", omittingEmptySubsequences: true).first
        guard first == "api" || (guardsMetrics && first == "metrics") else {
            return try await next(request, context)
        }
        let changes = request.method != .get && request.method != .head
        let action = "\(request.method.rawValue) \(request.uri.path)"
        var context = context
        if let token = Self.bearer(request) {
            let cached = { [recent] in recent.recent("token", token).map(\.principal) }
            guard let principal = try await lookup({ try await tokens.principal(token: token) }, cached: cached,
                                                   remember: { recent.remember("token", token, principal: $0) },
                                                   forget: { recent.forget("token", token) }) else {
                if changes { await refusals.refused(context.actor, action: action, bot: Self.bot(request), detail: "invalid or revoked token") }
                throw HTTPError(.unauthorized, headers: [.wwwAuthenticate: "Bearer realm=\"fleetwatch\", error=\"invalid_token\""],
                                message: "the API token is unknown or revoked")
            }
            context.principal = principal
        } else if let secret = request.cookies[Self.sessionCookie]?.value {
            let cached = { [recent] in recent.recent("session", secret)?.session }
            guard let session = try await lookup({ try await sessions.session(secret: secret) }, cached: cached,
                                                 remember: { recent.remember("session", secret, principal: .init(name: $0.user, role: $0.role), session: $0) },
                                                 forget: { recent.forget("session", secret) }) else {
                if changes { await refusals.refused(context.actor, action: action, bot: Self.bot(request), detail: "session ended") }
                throw HTTPError(.unauthorized, message: "your session has ended: sign in again at /login")
            }
            context.principal = AccessTokens.Principal(name: session.user, role: session.role)
            context.session = session
            if changes, !Self.constantTimeEqual(request.headers[Self.csrfHeader] ?? "", session.csrfToken) {
                await refusals.refused(context.actor, action: action, bot: Self.bot(request), detail: "missing or wrong CSRF token")
                throw HTTPError(.forbidden, message: "missing or wrong CSRF token: send the X-CSRF-Token header from GET /api/session")
            }
        } else {
            if changes { await refusals.refused(context.actor, action: action, bot: Self.bot(request), detail: "no credentials") }
            throw HTTPError(.unauthorized, headers: [.wwwAuthenticate: "Bearer realm=\"fleetwatch\""],
                            message: "sign in at /login, or send an API token as 'Authorization: Bearer <token>' (monitor-hub tokens add)")
        }
        if changes, let principal = context.principal, principal.role != .operator {
            await refusals.refused(context.actor, action: action, bot: Self.bot(request), detail: "role \(principal.role.rawValue) may not change anything")
            throw HTTPError(.forbidden, message: "'\(principal.name)' is a viewer; this needs the operator role")
        }
        return try await next(request, context)
    }

    /// Checks credentials in PostgreSQL; while it is unreachable, against what this replica verified recently.
    private func lookup<T: Sendable>(_ body: @escaping @Sendable () async throws -> T?, cached: () -> T?,
                                     remember: (T) -> Void, forget: () -> Void) async throws -> T? {
        do {
            let found: T?
            if let health { found = try await health.failFast(body) } else { found = try await body() }
            if let found { remember(found) } else { forget() }
            return found
        } catch {
            if let found = cached() {
                logger.warning("database unreachable: credentials accepted as verified by this replica within hub.outage_credentials_max_age")
                return found
            }
            logger.error("cannot check credentials: \(String(reflecting: error))")
            throw HTTPError(.serviceUnavailable, headers: [.retryAfter: "5"],
                            message: "the database is unreachable and these credentials were not verified by this replica recently (hub.outage_credentials_max_age); retry shortly")
        }
    }

    static func bearer(_ request: Request) -> String? {
        bearer(request.headers[.authorization])
    }

    static func bearer(_ value: String?) -> String? {
        guard let value else { return nil }
        let parts = value.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let token = parts[1].trimmingCharacters(in: .whitespaces)
        return token.isEmpty ? nil : token
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count, !x.isEmpty else { return false }
        var diff: UInt8 = 0
        for i in 0..<x.count { diff |= x[i] ^ y[i] }
        return diff == 0
    }

    /// The bot a `/api/bots/{bot}/…` request is about, for the audit row.
    static func bot(_ request: Request) -> String? {
        let parts = request.uri.path.split(separator: "/")
        guard parts.count >= 3, parts[0] == "api", parts[1] == "bots" else { return nil }
        return String(parts[2]).removingPercentEncoding
    }
}
