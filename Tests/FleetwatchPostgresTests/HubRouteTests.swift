@testable import FleetwatchHub
import FleetwatchSchema
import FleetwatchStorage
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import FleetwatchTestSupport
import Testing

@Suite(.enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
struct HubRouteTests {
    struct SessionBody: Decodable { let user: String; let role: String; let csrfToken: String?; let expiresAt: String? }
    struct Profile: Decodable { let name: String; let enableEmergencyShutdown: Bool; let rules: [Rule]; let bot: String?
                                struct Rule: Decodable { let id: String } }
    struct DefaultProfile: Decodable { let profile: String }
    struct Bot: Decodable { let id: String; let profile: String; let state: String; let connected: Bool
                            let metrics: [String: Double]; let alerts: [String: Int] }

    @Test(.timeLimit(.minutes(3)))
    func healthFollowsSchemaAndDatabase() async throws {
        try await InProcessHub.run { hub, client in
            let live = try await client.execute(uri: "/health/live", method: .get)
            #expect(live.status == .ok && live.body.readableBytes == 0)
            let ready = try await client.execute(uri: "/health/ready", method: .get)
            #expect(ready.status == .ok)
            #expect(String(buffer: ready.body) == "ready\n")
            hub.health.observed(failure: "simulated outage")          // DatabaseHealth → .down
            let down = try await client.execute(uri: "/health/ready", method: .get)
            #expect(down.status == .serviceUnavailable)
            #expect(String(buffer: down.body) == "database unavailable\n")
            let api = try await client.execute(uri: "/api/bots", method: .get)   // DatabaseGate runs before AuthMiddleware
            #expect(api.status == .serviceUnavailable)
            #expect(api.headers[.retryAfter] == "5")
            #expect(try json(APIError.self, api).error.message.hasPrefix("the database is unreachable (for "))
            #expect(try await client.execute(uri: "/health/live", method: .get).status == .ok)
        }
        try await InProcessHub.run(migrations: Array(Schema.migrations.dropLast())) { _, client in
            let ready = try await client.execute(uri: "/health/ready", method: .get)
            #expect(ready.status == .serviceUnavailable)
            #expect(String(buffer: ready.body) == "migrations pending\n")
        }
    }

    @Test(.timeLimit(.minutes(3)))
    func apiTokensAndRoles() async throws {
        try await InProcessHub.run { hub, client in
            let anonymous = try await client.execute(uri: "/api/bots", method: .get)
            #expect(anonymous.status == .unauthorized)
            #expect(anonymous.headers[.wwwAuthenticate] == #"Bearer realm="fleetwatch""#)
            #expect(try json(APIError.self, anonymous).error.message.hasPrefix("sign in at /login"))
            let forged = try await client.execute(uri: "/api/bots", method: .get, headers: [.authorization: "Bearer fwv_unknown"])
            #expect(forged.status == .unauthorized)
            #expect(forged.headers[.wwwAuthenticate] == #"Bearer realm="fleetwatch", error="invalid_token""#)

            let viewer = try await hub.token("ci-viewer", .viewer)
            let op = try await hub.token("ci-operator", .operator)
            let empty = try await client.execute(uri: "/api/bots", method: .get, headers: viewer)
            #expect(empty.status == .ok)
            #expect(String(buffer: empty.body) == "[]")
            let who = try await client.execute(uri: "/api/session", method: .get, headers: viewer)
            let info = try json(SessionBody.self, who)
            #expect(info.user == "ci-viewer" && info.role == "viewer" && info.csrfToken == nil && info.expiresAt == nil)

            let change = ByteBuffer(string: #"{"profile":"production"}"#)
            let refused = try await client.execute(uri: "/api/fleet/default-profile", method: .put, headers: viewer, body: change)
            #expect(refused.status == .forbidden)
            #expect(try json(APIError.self, refused).error.message == "'ci-viewer' is a viewer; this needs the operator role")
            let changed = try await client.execute(uri: "/api/fleet/default-profile", method: .put, headers: op, body: change)
            #expect(changed.status == .ok)
            #expect(try json(DefaultProfile.self, changed).profile == "production")
            // The refusal was audited at once (RefusalAudit writes the first of a kind immediately).
            let rows = try await hub.client.query(
                "SELECT actor, detail, remote FROM audit_log WHERE outcome = 'refused'", logger: hub.logger)
            var audited: [(String, String, String?)] = []
            for try await row in rows.decode((String, String, String?).self) { audited.append(row) }
            #expect(audited.count == 1)
            #expect(audited.first?.0 == "ci-viewer" && audited.first?.1 == "role viewer may not change anything")
            #expect(audited.first?.2 == "unknown:0")   // .router has no peer address
        }
    }

    @Test(.timeLimit(.minutes(3)))
    func signInSessionCookieAndCSRF() async throws {
        try await InProcessHub.run { hub, client in
            try await UserAccounts(client: hub.client, logger: hub.logger).add(name: "alice", role: .operator,
                                                                                 password: "correct-horse-battery")
            let wrong = try await client.execute(uri: "/auth/login", method: .post,
                                                 body: ByteBuffer(string: #"{"username":"alice","password":"not-the-password"}"#))
            #expect(wrong.status == .unauthorized)
            #expect(try json(APIError.self, wrong).error.message == "wrong user name or password")
            #expect(wrong.headers[.setCookie] == nil)

            let ok = try await client.execute(uri: "/auth/login", method: .post,
                                              body: ByteBuffer(string: #"{"username":"alice","password":"correct-horse-battery"}"#))
            #expect(ok.status == .ok)
            #expect(ok.headers[.cacheControl] == "no-store")
            let setCookie = try #require(ok.headers[.setCookie])
            #expect(setCookie.hasPrefix("fw_session=fws_"))
            #expect(setCookie.contains("HttpOnly") && setCookie.contains("SameSite=Strict") && setCookie.contains("Path=/"))
            #expect(!setCookie.contains("Secure"))                       // plain HTTP, no TLS configured
            let cookie = String(setCookie.split(separator: ";")[0])      // "fw_session=<secret>"
            let signedIn = try json(SessionBody.self, ok)
            #expect(signedIn.user == "alice" && signedIn.role == "operator" && signedIn.expiresAt != nil)
            let csrf = try #require(signedIn.csrfToken)

            let who = try await client.execute(uri: "/api/session", method: .get, headers: [.cookie: cookie])
            #expect(who.status == .ok)
            #expect(try json(SessionBody.self, who).csrfToken == csrf)
            let change = ByteBuffer(string: #"{"profile":"development"}"#)
            let noCSRF = try await client.execute(uri: "/api/fleet/default-profile", method: .put, headers: [.cookie: cookie], body: change)
            #expect(noCSRF.status == .forbidden)
            let withCSRF: HTTPFields = [.cookie: cookie, AuthMiddleware.csrfHeader: csrf]
            #expect(try await client.execute(uri: "/api/fleet/default-profile", method: .put, headers: withCSRF, body: change).status == .ok)

            #expect(try await client.execute(uri: "/auth/logout", method: .post, headers: withCSRF).status == .noContent)
            let after = try await client.execute(uri: "/api/session", method: .get, headers: [.cookie: cookie])
            #expect(after.status == .unauthorized)
            #expect(try json(APIError.self, after).error.message == "your session has ended: sign in again at /login")
        }
    }

    @Test(.timeLimit(.minutes(3)))
    func thresholdsAndFleet() async throws {
        try await InProcessHub.run { hub, client in
            let viewer = try await hub.token("reader", .viewer)
            let list = try await client.execute(uri: "/api/thresholds", method: .get, headers: viewer)
            #expect(list.status == .ok)
            let profiles = try json([Profile].self, list)
            #expect(profiles.map(\.name) == ["default", "development", "production"])
            #expect(profiles.map(\.enableEmergencyShutdown) == [false, false, true])
            #expect(profiles.allSatisfy { !$0.rules.isEmpty && $0.bot == nil })
            let ghost = try await client.execute(uri: "/api/thresholds?bot=ghost", method: .get, headers: viewer)
            #expect(ghost.status == .notFound)
            #expect(try json(APIError.self, ghost).error.message == "no bot named ghost")

            _ = try await BotRegistry(client: hub.client, logger: hub.logger)
                .add("bot-1", profile: nil, tokenHash: BotToken.hash(BotToken.generate()))
            let bots = try json([Bot].self, try await client.execute(uri: "/api/bots", method: .get, headers: viewer))
            #expect(bots.count == 1)
            #expect(bots.first?.id == "bot-1" && bots.first?.profile == "default" && bots.first?.state == "offline")
            #expect(bots.first?.connected == false && bots.first?.metrics == [:])
            #expect(bots.first?.alerts == ["critical": 0, "warning": 0, "info": 0])
            let missing = try await client.execute(uri: "/api/bots/ghost", method: .get, headers: viewer)
            #expect(missing.status == .notFound)
        }
    }

    @Test(.timeLimit(.minutes(3)))
    func metricsExposition() async throws {
        try await InProcessHub.run { _, client in
            _ = try await client.execute(uri: "/health/live", method: .get)
            _ = try await client.execute(uri: "/api/bots", method: .get)           // 401
            let scrape = try await client.execute(uri: "/metrics", method: .get)
            #expect(scrape.status == .ok)
            #expect(scrape.headers[.contentType] == "text/plain; version=0.0.4; charset=utf-8")
            let text = String(buffer: scrape.body)
            #expect(text.contains(#"fleetwatch_http_requests_total{route="/health/live",method="GET",status="200"} 1"#))
            #expect(text.contains(#"fleetwatch_http_requests_total{route="/api/bots",method="GET",status="401"} 1"#))
            #expect(text.contains("fleetwatch_postgres_up 1.0"))
            #expect(text.contains("fleetwatch_agents_connected 0.0"))
        }
        try await InProcessHub.run(configure: { $0.metricsAuth = .token }) { hub, client in
            #expect(try await client.execute(uri: "/metrics", method: .get).status == .unauthorized)
            let scraper = try await hub.token("scraper", .viewer)
            #expect(try await client.execute(uri: "/metrics", method: .get, headers: scraper).status == .ok)
        }
    }
}
