import Hummingbird
import HTTPTypes

/// First in the chain: works out who sent the request (`TrustedProxies`), so the audit log, the sign-in
/// limiter and the session cookie see the client and its scheme rather than the balancer; answers HTTPS
/// requests with `Strict-Transport-Security`.
struct ForwardedHeaders: RouterMiddleware {
    typealias Context = HubRequestContext
    let trusted: TrustedProxies
    let directTLS: Bool
    /// `Strict-Transport-Security` for responses to HTTPS requests (one year; sub-domains are the operator's call).
    static let hsts = "max-age=31536000"

    static let forwardedFor = HTTPField.Name("X-Forwarded-For")!
    static let forwardedProto = HTTPField.Name("X-Forwarded-Proto")!

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        let origin = trusted.origin(peerIP: context.peerIP, peerPort: context.peerPort,
                                    forwardedFor: request.headers[values: Self.forwardedFor].joined(separator: ","),
                                    forwardedProto: request.headers[Self.forwardedProto], directTLS: directTLS)
        context.remote = origin.remote
        context.clientAddress = origin.client
        context.isHTTPS = origin.https
        do {
            var response = try await next(request, context)
            if origin.https { response.headers[.strictTransportSecurity] = Self.hsts }
            return response
        } catch let error as HTTPResponseError {
            guard origin.https else { throw error }
            var response = try error.response(from: request, context: context)
            response.headers[.strictTransportSecurity] = Self.hsts
            return response
        }
    }
}
