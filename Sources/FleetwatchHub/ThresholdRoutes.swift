import FleetwatchAlerting
import FleetwatchStorage
import Foundation
import Hummingbird
import Logging
import PostgresNIO

/// The thresholds API: profiles, the fleet's default profile, a bot's effective rules with where each limit and
/// level comes from and which rules cannot fire for it, and per-bot overrides. Documented in docs/api.md.
struct ThresholdRoutes: Sendable {
    let client: any PostgresQuerying
    let logger: Logger

    struct RuleRecord: ResponseEncodable {
        let id: String
        let metric: String
        let limit: Double
        let level: String
        let hysteresis: Double
        let summary: String
        /// For a bot: where the limit comes from (`fleet default`, `profile`, `bot override`).
        var source: String?
        /// For a bot: where the level comes from.
        var levelSource: String?
        /// The metrics the rule reads.
        var needs: [String]?
        /// For a bot: those it has never sent (the rule cannot fire until it does).
        var missing: [String]?
    }

    struct ProfileRecord: ResponseEncodable {
        let name: String
        let enableEmergencyShutdown: Bool
        let rules: [RuleRecord]
        /// For a bot: the bot, whether it follows the fleet's default profile, and which that is.
        var bot: String?
        var followsFleetDefault: Bool?
        var fleetDefault: String?
        /// For a bot: a sentence for each rule that cannot fire.
        var cannotFire: [String]?

        init(_ p: ThresholdProfile) {
            name = p.name
            enableEmergencyShutdown = p.enableEmergencyShutdown
            rules = p.rules.map { RuleRecord(id: $0.id, metric: $0.metric, limit: $0.limit, level: $0.level.rawValue,
                                             hysteresis: $0.hysteresis, summary: $0.summary, needs: $0.metrics) }
        }

        init(bot: String, _ t: BotThresholds, fleetDefault: String, sent: Set<String>) {
            let coverage = Dictionary(uniqueKeysWithValues: RuleCoverage.of(t.profile, sent: sent).map { ($0.ruleID, $0) })
            name = t.profileName
            enableEmergencyShutdown = t.profile.enableEmergencyShutdown
            rules = t.profile.rules.map { r in
                RuleRecord(id: r.id, metric: r.metric, limit: r.limit, level: r.level.rawValue, hysteresis: r.hysteresis,
                           summary: r.summary, source: t.limitSources[r.id]?.rawValue, levelSource: t.levelSources[r.id]?.rawValue,
                           needs: r.metrics, missing: coverage[r.id]?.missing)
            }
            self.bot = bot
            followsFleetDefault = t.followsFleetDefault
            self.fleetDefault = fleetDefault
            cannotFire = t.profile.rules.compactMap { coverage[$0.id]?.explanation }
        }
    }

    struct ProfileUpdate: Decodable {
        var base: String?
        var limits: [String: ThresholdValue]
        var enableEmergencyShutdown: Bool?
    }

    struct DefaultProfile: Codable, ResponseEncodable {
        let profile: String
    }

    /// A bot's rules with their sources and coverage; 404 for an unknown bot.
    func botRecord(_ bot: String) async throws -> ProfileRecord {
        let store = ThresholdStore(client: client, logger: logger)
        guard let t = try await PostgresProfileSource(client: client, logger: logger).thresholds(bot: bot) else {
            throw HTTPError(.notFound, message: "no bot named \(bot)")
        }
        return ProfileRecord(bot: bot, t, fleetDefault: try await store.defaultProfile(), sent: try await store.metricNames(bot: bot))
    }

    static func settings(_ raw: [String: ThresholdValue]) throws -> ThresholdSettings {
        let settings: ThresholdSettings
        do { settings = try ThresholdSettings.parse(raw) } catch let error as ThresholdError {
            throw HTTPError(.badRequest, message: error.description)
        }
        let unknown = settings.unknownKeys()
        guard unknown.isEmpty else {
            throw HTTPError(.badRequest, message: "unknown thresholds: \(unknown.joined(separator: ", ")) (rule ids, or rule ids with .hysteresis or .level)")
        }
        return settings
    }

    func register(on router: Router<HubRequestContext>) {
        let store = ThresholdStore(client: client, logger: logger)
        router.get("/api/thresholds") { request, _ -> [ProfileRecord] in
            if let bot = request.uri.queryParameters.get("bot") { return [try await botRecord(bot)] }
            return try await store.profiles().map(ProfileRecord.init)
        }
        router.get("/api/bots/:bot/thresholds") { _, context -> ProfileRecord in
            try await botRecord(try context.parameters.require("bot"))
        }
        router.put("/api/bots/:bot/thresholds") { request, context -> ProfileRecord in
            let bot = try context.parameters.require("bot")
            let settings = try Self.settings(try await request.decode(as: [String: ThresholdValue].self, context: context))
            guard try await store.setOverrides(bot: bot, settings: settings, by: context.principal?.name ?? "api") != nil else {
                throw HTTPError(.notFound, message: "no bot named \(bot)")
            }
            return try await botRecord(bot)
        }
        router.delete("/api/bots/:bot/thresholds/:rule") { _, context -> HTTPResponse.Status in
            try await store.removeOverride(bot: try context.parameters.require("bot"), key: try context.parameters.require("rule"))
            return .noContent
        }
        router.put("/api/bots/:bot/profile") { request, context -> HTTPResponse.Status in
            struct Body: Decodable { let profile: String? }
            let body = try await request.decode(as: Body.self, context: context)
            guard try await store.setProfile(bot: try context.parameters.require("bot"), profile: body.profile) else {
                throw HTTPError(.notFound, message: "no such bot or profile")
            }
            return .noContent
        }
        router.put("/api/profiles/:name") { request, context -> ProfileRecord in
            let name = try context.parameters.require("name")
            let update = try await request.decode(as: ProfileUpdate.self, context: context)
            let base = update.base ?? (ThresholdProfile.builtIn[name] != nil ? name : "default")
            guard ThresholdProfile.builtIn[base] != nil else { throw HTTPError(.badRequest, message: "base must be default, production or development") }
            let settings = try Self.settings(update.limits)
            try await store.upsertProfile(name: name, base: base, settings: settings,
                                          enableEmergencyShutdown: update.enableEmergencyShutdown ?? (base == "production"))
            guard let p = try await store.profiles().first(where: { $0.name == name }) else { throw HTTPError(.internalServerError) }
            return ProfileRecord(p)
        }
        router.get("/api/fleet/default-profile") { _, _ -> DefaultProfile in
            DefaultProfile(profile: try await store.defaultProfile())
        }
        router.put("/api/fleet/default-profile") { request, context -> DefaultProfile in
            let body = try await request.decode(as: DefaultProfile.self, context: context)
            guard try await store.setDefaultProfile(body.profile, by: context.principal?.name ?? "api") else {
                throw HTTPError(.notFound, message: "no profile named \(body.profile) (PUT /api/profiles/NAME creates one)")
            }
            return body
        }
    }
}
