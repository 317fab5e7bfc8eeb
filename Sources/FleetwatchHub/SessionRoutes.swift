import FleetwatchStorage
import Foundation
import Hummingbird
import Logging

/// Dashboard sign-in: `POST /auth/login` starts a session (HttpOnly, SameSite=Strict cookie) and returns
/// its CSRF token; `POST /auth/logout` ends it and closes its WebSockets on every replica;
/// `GET /api/session` says who is signed in.
struct SessionRoutes: Sendable {
    let accounts: UserAccounts
    let sessions: Sessions
    let audit: AuditLog
    let refusals: RefusalAudit
    let limiter: LoginLimiter
    /// Set the cookie's Secure attribute (the hub serves HTTPS).
    let secureCookie: Bool
    let logger: Logger

    struct Credentials: Decodable {
        let username: String
        let password: String
    }

    struct SessionInfo: ResponseEncodable {
        let user: String
        let role: String
        /// Send as `X-CSRF-Token` on every state-changing request; nil for API tokens (no cookie, no CSRF).
        let csrfToken: String?
        let expiresAt: Date?
    }

    func register(on router: Router<HubRequestContext>) {
        router.post("/auth/login") { request, context -> Response in
            let credentials: Credentials
            do {
                credentials = try await request.decode(as: Credentials.self, context: context)
            } catch {
                throw HTTPError(.badRequest, message: "send JSON {\"username\": …, \"password\": …}")
            }
            let address = context.clientAddress
            let name = String(credentials.username.prefix(64))
            let actor = Actor(name: name, kind: .anonymous, remote: context.remote)
            let verdict = await limiter.attempt(address: address, user: name)
            let tooMany = HTTPError(.tooManyRequests, headers: [.retryAfter: "60"],
                                    message: "too many sign-in attempts; wait a minute and try again")
            if verdict == .refused {
                await refusals.refused(actor, action: "POST /auth/login", detail: "too many sign-in attempts")
                throw tooMany
            }
            guard credentials.username.utf8.count <= 64, credentials.password.utf8.count <= 1024 else {
                await refusals.refused(actor, action: "POST /auth/login", detail: "user name or password too long")
                throw HTTPError(.badRequest, message: "user names have at most 64 characters, passwords at most 1024 bytes")
            }
            // Many addresses guessing this user's password: only addresses it signed in from lately go on.
            if verdict == .onlyFromKnownAddress, !(try await accounts.hasSignedIn(name: name, fromAddress: address)) {
                await refusals.refused(actor, action: "POST /auth/login", detail: "too many failed sign-ins for this user from new addresses")
                throw tooMany
            }
            guard let user = try await accounts.verify(name: credentials.username, password: credentials.password) else {
                await limiter.failed(address: address, user: name)
                await refusals.refused(actor, action: "POST /auth/login", detail: "wrong user name or password")
                throw HTTPError(.unauthorized, message: "wrong user name or password")
            }
            let (secret, session) = try await sessions.start(userID: user.id, remote: context.remote)
            await audit.record(Actor(name: session.user, kind: session.role == .operator ? .operator : .viewer, remote: context.remote),
                               action: "POST /auth/login", outcome: "accepted", bot: nil, detail: "session \(session.id)")
            var response = try SessionInfo(user: session.user, role: session.role.rawValue, csrfToken: session.csrfToken,
                                           expiresAt: session.expiresAt).response(from: request, context: context)
            response.setCookie(Cookie(name: AuthMiddleware.sessionCookie, value: secret, path: "/", secure: secureCookie || context.isHTTPS,
                                      httpOnly: true, sameSite: .strict))
            response.headers[.cacheControl] = "no-store"
            return response
        }
        router.post("/auth/logout") { request, context -> Response in
            var response = Response(status: .noContent)
            response.setCookie(Cookie(name: AuthMiddleware.sessionCookie, value: "", maxAge: 0, path: "/", secure: secureCookie || context.isHTTPS,
                                      httpOnly: true, sameSite: .strict))
            guard let secret = request.cookies[AuthMiddleware.sessionCookie]?.value,
                  let session = try await sessions.session(secret: secret) else { return response }
            guard AuthMiddleware.constantTimeEqual(request.headers[AuthMiddleware.csrfHeader] ?? "", session.csrfToken) else {
                throw HTTPError(.forbidden, message: "missing or wrong CSRF token: send the X-CSRF-Token header from GET /api/session")
            }
            try await sessions.end(id: session.id)
            await audit.record(Actor(name: session.user, kind: session.role == .operator ? .operator : .viewer, remote: context.remote),
                               action: "POST /auth/logout", outcome: "accepted", bot: nil, detail: "session \(session.id)")
            return response
        }
        router.get("/api/session") { _, context -> SessionInfo in
            guard let principal = context.principal else { throw HTTPError(.unauthorized) }
            return SessionInfo(user: principal.name, role: principal.role.rawValue, csrfToken: context.session?.csrfToken,
                               expiresAt: context.session?.expiresAt)
        }
    }
}
