import FleetwatchStorage
import Hummingbird
import NIOCore

/// Per-request state: where the request came from and, once `AuthMiddleware` has run, who sent it.
struct HubRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    /// The peer's address (`ip:port`).
    let remote: String
    /// The API token's holder or the signed-in user; nil before authentication and on public routes.
    var principal: AccessTokens.Principal?
    /// The dashboard session, when the request came with the session cookie instead of a token.
    var session: Sessions.Session?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        if let address = source.channel.remoteAddress {
            remote = "\(address.ipAddress ?? "?"):\(address.port ?? 0)"
        } else {
            remote = "unknown"
        }
    }

    /// The authenticated caller as a ledger actor.
    var actor: Actor {
        guard let p = principal else { return Actor(name: "anonymous", kind: .anonymous, remote: remote) }
        return Actor(name: p.name, kind: p.role == .operator ? .operator : .viewer, remote: remote)
    }
}
