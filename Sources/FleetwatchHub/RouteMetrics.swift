import Foundation
import Hummingbird
import Prometheus

/// Per-route HTTP metrics on `/metrics`: requests by route pattern (`/api/bots/{bot}`, never the bot's name, so a
/// stranger cannot grow the series), method and status, and their durations. Hummingbird's own metrics middleware
/// would do the same through swift-metrics, but without help texts and `_total` names that `promtool check
/// metrics` accepts.
struct RouteMetrics<Context: RequestContext>: RouterMiddleware {
    let registry: PrometheusCollectorRegistry
    static var buckets: [Duration] {
        [.milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
         .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5)]
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        do {
            let response = try await next(request, context)
            record(route: context.endpointPath ?? "unmatched", method: request.method.rawValue, status: response.status.code, since: started)
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status.code ?? 500
            record(route: context.endpointPath ?? "unmatched", method: request.method.rawValue, status: status, since: started)
            throw error
        }
    }

    private func record(route: String, method: String, status: Int, since started: ContinuousClock.Instant) {
        let labels = [("route", route), ("method", method), ("status", String(status))]
        registry.makeCounter(descriptor: .named("fleetwatch_http_requests_total", "HTTP requests by route pattern, method and status"),
                             labels: labels).increment()
        registry.makeDurationHistogram(descriptor: .named("fleetwatch_http_request_duration_seconds", "HTTP request durations by route pattern"),
                                       labels: [("route", route), ("method", method)], buckets: Self.buckets)
            .record(ContinuousClock.now - started)
    }
}
