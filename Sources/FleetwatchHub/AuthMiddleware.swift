import FleetwatchStorage
import Foundation
import Hummingbird
import Logging

/// Guards `/api`: every request needs an API token (`Authorization: Bearer …`); reading needs the viewer
/// role, anything else the operator role. Missing or invalid credentials get 401, a viewer changing
/// something 403; every refused change is written to the audit log with who, when, from where and why.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = HubRequestContext
    let tokens: AccessTokens
    let audit: AuditLog
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // Decided on the path's first component, as the router splits it (`//api/…` is `/api/…` to the router).
        guard request.uri.path.split(separator: "/", omittingEmptySubsequences: true).first == "api" else {
            return try await next(request, context)
        }
        let changes = request.method != .get && request.method != .head
        let action = "\(request.method.rawValue) \(request.uri.path)"
        guard let token = Self.bearer(request) else {
            if changes { await audit.record(context.actor, action: action, outcome: "refused", bot: Self.bot(request), detail: "no credentials") }
            throw HTTPError(.unauthorized, headers: [.wwwAuthenticate: "Bearer realm=\"fleetwatch\""],
                            message: "sign in: send an API token as 'Authorization: Bearer <token>' (monitor-hub tokens add)")
        }
        let principal: AccessTokens.Principal?
        do {
            principal = try await tokens.principal(token: token)
        } catch {
            logger.error("cannot check an API token: \(String(reflecting: error))")
            throw HTTPError(.serviceUnavailable, message: "database unavailable")
        }
        guard let principal else {
            if changes { await audit.record(context.actor, action: action, outcome: "refused", bot: Self.bot(request), detail: "invalid or revoked token") }
            throw HTTPError(.unauthorized, headers: [.wwwAuthenticate: "Bearer realm=\"fleetwatch\", error=\"invalid_token\""],
                            message: "the API token is unknown or revoked")
        }
        var context = context
        context.principal = principal
        if changes, principal.role != .operator {
            await audit.record(context.actor, action: action, outcome: "refused", bot: Self.bot(request),
                               detail: "role \(principal.role.rawValue) may not change anything")
            throw HTTPError(.forbidden, message: "token '\(principal.name)' is a viewer; this needs an operator token")
        }
        return try await next(request, context)
    }

    static func bearer(_ request: Request) -> String? {
        guard let value = request.headers[.authorization] else { return nil }
        let parts = value.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let token = parts[1].trimmingCharacters(in: .whitespaces)
        return token.isEmpty ? nil : token
    }

    /// The bot a `/api/bots/{bot}/…` request is about, for the audit row.
    static func bot(_ request: Request) -> String? {
        let parts = request.uri.path.split(separator: "/")
        guard parts.count >= 3, parts[0] == "api", parts[1] == "bots" else { return nil }
        return String(parts[2]).removingPercentEncoding
    }
}
