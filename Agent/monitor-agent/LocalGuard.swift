import Foundation
import HTTPTypes
import Hummingbird

/// The sidecar's local HTTP port can stop the bot (and liquidate), so every request must prove it comes from the
/// bot, not from any local process or a web page the operator happens to visit:
/// - `Authorization: Bearer <token>` with the sidecar's local token (given to the bot program in
///   `FLEETWATCH_SIDECAR_TOKEN`, and in `--local-token-file` when set) — 401 otherwise;
/// - a `Host` of 127.0.0.1, localhost or [::1] (any port) — 421 otherwise (DNS rebinding: a page whose name
///   resolves to 127.0.0.1 sends its own host name);
/// - no `Origin` header — 403 (browsers send one on cross-site requests; bots do not).
/// Bodies must be `application/json` (or `application/x-statsd` lines on /metrics): types a browser may send
/// cross-site without a preflight (`text/plain`, forms) are refused with 415 by the routes.
struct LocalGuard<Context: RequestContext>: RouterMiddleware {
    let token: String

    static func allowedHost(_ host: String?) -> Bool {
        guard let host, !host.isEmpty else { return false }
        let name: Substring
        if host.hasPrefix("[") {
            name = host.prefix { $0 != "]" }.dropFirst()
        } else {
            name = host.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        }
        return ["127.0.0.1", "localhost", "::1"].contains(name.lowercased())
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard Self.allowedHost(request.head.authority) else {
            throw HTTPError(.misdirectedRequest, message: "this port answers only to Host 127.0.0.1, localhost or [::1]")
        }
        guard request.headers[.origin] == nil else {
            throw HTTPError(.forbidden, message: "requests from web pages are refused")
        }
        let presented = request.headers[.authorization].flatMap { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : nil } ?? ""
        guard Self.constantTimeEqual(presented, token) else {
            throw HTTPError(.unauthorized, headers: [.wwwAuthenticate: "Bearer"],
                            message: "send Authorization: Bearer $FLEETWATCH_SIDECAR_TOKEN (the sidecar gives it to the bot program)")
        }
        return try await next(request, context)
    }

    /// Compares without stopping at the first difference (the length is not secret).
    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        return zip(x, y).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }
}
