import FleetwatchStorage
import Hummingbird
import NIOCore

/// Per-request state: where the request came from and, once `AuthMiddleware` has run, who sent it.
struct HubRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    /// Who sent the request, for the audit log: `ip:port`, or `client via proxy:port` behind a trusted proxy
    /// (set by `ForwardedHeaders`).
    var remote: String
    /// The client's IP address (behind a trusted proxy, the one it forwarded for): the sign-in limiter's key.
    var clientAddress: String
    /// Whether the client's request was HTTPS (the hub's own TLS, or a trusted proxy's `X-Forwarded-Proto`).
    var isHTTPS = false
    /// The connection's peer.
    let peerIP: String
    let peerPort: Int
    /// The API token's holder or the signed-in user; nil before authentication and on public routes.
    var principal: AccessTokens.Principal?
    /// The dashboard session, when the request came with the session cookie instead of a token.
    var session: Sessions.Session?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        peerIP = TrustedProxies.canonical(source.channel.remoteAddress?.ipAddress ?? "unknown")
        peerPort = source.channel.remoteAddress?.port ?? 0
        remote = "\(peerIP):\(peerPort)"
        clientAddress = peerIP
    }

    /// The authenticated caller as a ledger actor.
    var actor: Actor {
        guard let p = principal else { return Actor(name: "anonymous", kind: .anonymous, remote: remote) }
        return Actor(name: p.name, kind: p.role == .operator ? .operator : .viewer, remote: remote)
    }
}
