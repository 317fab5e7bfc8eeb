import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The dashboard's pages and assets, embedded in the binary (Sources/FleetwatchHub/Dashboard), plus
/// Chart.js from Debian's libjs-chart.js. Every page is sent with a strict Content-Security-Policy: no
/// inline script, nothing from another origin.
struct DashboardRoutes: Sendable {
    let chartJSPath: String

    static let securityHeaders: HTTPFields = [
        .contentSecurityPolicy: "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        HTTPField.Name("X-Frame-Options")!: "DENY",
        .xContentTypeOptions: "nosniff",
        HTTPField.Name("Referrer-Policy")!: "no-referrer",
    ]

    func register(on router: Router<HubRequestContext>) {
        let pages: [(String, [UInt8], String)] = [
            ("/", PackageResources.index_html, "text/html; charset=utf-8"),
            ("/login", PackageResources.login_html, "text/html; charset=utf-8"),
            ("/assets/core.js", PackageResources.core_js, "text/javascript; charset=utf-8"),
            ("/assets/dom.js", PackageResources.dom_js, "text/javascript; charset=utf-8"),
            ("/assets/format.js", PackageResources.format_js, "text/javascript; charset=utf-8"),
            ("/assets/api.js", PackageResources.api_js, "text/javascript; charset=utf-8"),
            ("/assets/model.js", PackageResources.model_js, "text/javascript; charset=utf-8"),
            ("/assets/live.js", PackageResources.live_js, "text/javascript; charset=utf-8"),
            ("/assets/alert-list.js", PackageResources.alert_list_js, "text/javascript; charset=utf-8"),
            ("/assets/fleet.js", PackageResources.fleet_js, "text/javascript; charset=utf-8"),
            ("/assets/charts.js", PackageResources.charts_js, "text/javascript; charset=utf-8"),
            ("/assets/bot-thresholds.js", PackageResources.bot_thresholds_js, "text/javascript; charset=utf-8"),
            ("/assets/bot-commands.js", PackageResources.bot_commands_js, "text/javascript; charset=utf-8"),
            ("/assets/bot-dialogs.js", PackageResources.bot_dialogs_js, "text/javascript; charset=utf-8"),
            ("/assets/bot.js", PackageResources.bot_js, "text/javascript; charset=utf-8"),
            ("/assets/alerts.js", PackageResources.alerts_js, "text/javascript; charset=utf-8"),
            ("/assets/app.js", PackageResources.app_js, "text/javascript; charset=utf-8"),
            ("/assets/login.js", PackageResources.login_js, "text/javascript; charset=utf-8"),
            ("/assets/app.css", PackageResources.app_css, "text/css; charset=utf-8"),
        ]
        for (path, bytes, type) in pages {
            let body = ByteBuffer(bytes: bytes)
            router.get(RouterPath(path)) { _, _ -> Response in
                Self.respond(body, type: type, cache: "no-cache")
            }
        }
        let chartJSPath = self.chartJSPath
        router.get("/assets/chart.min.js") { _, _ -> Response in
            guard let data = FileManager.default.contents(atPath: chartJSPath) else {
                throw HTTPError(.notFound, message: "Chart.js is not installed at \(chartJSPath): apt install libjs-chart.js (or set dashboard.chartjs_path)")
            }
            return Self.respond(ByteBuffer(bytes: data), type: "text/javascript; charset=utf-8", cache: "max-age=86400")
        }
    }

    static func respond(_ body: ByteBuffer, type: String, cache: String) -> Response {
        var headers = securityHeaders
        headers[.contentType] = type
        headers[.cacheControl] = cache
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: body))
    }
}
