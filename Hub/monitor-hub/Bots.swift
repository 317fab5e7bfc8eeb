import ArgumentParser
import FleetwatchHub
import Foundation
import Logging

struct Bots: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Register bots and manage their tokens.",
        subcommands: [Add.self, List.self, RotateToken.self, Revoke.self, Liquidation.self, MetricNames.self, Check.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register a bot and print its token (shown once).")
        @OptionGroup var common: CommonOptions
        @Argument(help: "The bot id agents will send.") var bot: String
        @Option(help: "Threshold profile the bot follows (default: the fleet's default profile, set by the hub's --config).") var profile: String?

        func run() async throws {
            let token = try await HubAdmin(configuration: try common.load(), logger: Logger(label: "fleetwatch.admin"))
                .addBot(bot, profile: profile)
            print("bot \(bot) registered. Its token (shown only now; store it in the bot's secret store):")
            print(token)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List registered bots.")
        @OptionGroup var common: CommonOptions
        @OptionGroup var output: JSONOutputOption

        struct Row: Encodable {
            let bot: String, profile: String, hasToken: Bool, connected: Bool, lastSeen: Date?
        }

        func run() async throws {
            let bots = try await HubAdmin(configuration: try common.load(), logger: Logger(label: "fleetwatch.admin")).listBots()
            if output.json {
                return try output.print(bots.map { Row(bot: $0.name, profile: $0.profile, hasToken: $0.hasToken, connected: $0.connected, lastSeen: $0.lastSeen) })
            }
            print("BOT\tPROFILE\tTOKEN\tCONNECTED\tLAST SEEN")
            for b in bots { print("\(b.name)\t\(b.profile)\t\(b.hasToken ? "yes" : "revoked")\t\(b.connected ? "yes" : "no")\t\(b.lastSeen.map { "\($0)" } ?? "never")") }
        }
    }

    struct RotateToken: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Issue a new token for a bot; the old one stops working at once.")
        @OptionGroup var common: CommonOptions
        @Argument(help: "The bot's id, as registered (monitor-hub bots list).") var bot: String

        func run() async throws {
            let token = try await HubAdmin(configuration: try common.load(), logger: Logger(label: "fleetwatch.admin"))
                .rotateToken(bot)
            print(token)
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a bot's token; its agent is refused from its next connection.")
        @OptionGroup var common: CommonOptions
        @Argument(help: "The bot's id, as registered (monitor-hub bots list).") var bot: String

        func run() async throws {
            try await HubAdmin(configuration: try common.load(), logger: Logger(label: "fleetwatch.admin")).revoke(bot)
            print("token of \(bot) revoked")
        }
    }

    struct Liquidation: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Allow (on) or forbid (off) emergency stops that liquidate this bot's positions.")
        @OptionGroup var common: CommonOptions
        @Argument(help: "The bot's id, as registered (monitor-hub bots list).") var bot: String
        @Argument(help: "on: stops may liquidate; off: they never do.") var setting: Switch

        enum Switch: String, CaseIterable, ExpressibleByArgument { case on, off }

        func run() async throws {
            try await HubAdmin(configuration: try common.load(), logger: Logger(label: "fleetwatch.admin"))
                .setLiquidation(bot: bot, allowed: setting == .on)
            print("liquidation for \(bot): \(setting.rawValue)")
        }
    }

    struct MetricNames: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "metric-names",
            abstract: "Show the metric names a bot has used, or set its own limit of distinct names.",
            discussion: """
                A bot may use at most hub.max_metric_names_per_bot distinct metric names (default 1000) unless it has
                its own limit; samples of further names are refused (the batch is stored without them, the agent is
                told, and the alert metric_name_limit fires). Names the bot has used stay counted.
                """)
        @OptionGroup var common: CommonOptions
        @Argument(help: "The bot id.") var bot: String
        @Option(name: .customLong("limit"), help: "The bot's own limit (1–1000000), or 'default' for the hub's.") var limit: String?

        func run() async throws {
            let admin = HubAdmin(configuration: try common.load(), logger: Logger(label: "fleetwatch.admin"))
            if let limit {
                let value: Int? = limit == "default" ? nil : Int(limit)
                guard limit == "default" || value != nil else { throw ValidationError("--limit takes a number or 'default'") }
                let (stored, used) = try await admin.setMetricNameLimit(bot: bot, limit: value)
                print("metric-name limit of \(bot): \(stored.map(String.init) ?? "the hub's default"); \(used) names used")
                return
            }
            let (stored, names) = try await admin.metricNames(bot: bot)
            print("\(bot) uses \(names.count) metric names (limit: \(stored.map(String.init) ?? "the hub's default"))")
            for name in names { print(name) }
        }
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a bot's thresholds, where each comes from, and the rules that cannot fire for the metrics it sends.")
        @OptionGroup var common: CommonOptions
        @Argument(help: "The bot id.") var bot: String

        func run() async throws {
            let check = try await HubAdmin(configuration: try common.load(), logger: Logger(label: "fleetwatch.admin")).checkBot(bot)
            let t = check.thresholds
            print("\(bot) follows \(t.followsFleetDefault ? "the fleet's default profile, \(check.fleetDefault)" : "the profile \(t.profileName)")"
                  + "; automatic shutdown \(t.profile.enableEmergencyShutdown ? "on" : "off")")
            print("RULE\tLEVEL\tLIMIT\tLIMIT FROM\tLEVEL FROM\tNEEDS")
            for rule in t.profile.rules {
                print("\(rule.id)\t\(rule.level.rawValue)\t\(rule.limit)\t\(t.limitSources[rule.id]?.rawValue ?? "-")\t"
                      + "\(t.levelSources[rule.id]?.rawValue ?? "-")\t\(rule.metrics.joined(separator: ", "))")
            }
            let blind = check.coverage.compactMap(\.explanation)
            if blind.isEmpty {
                print("every rule can fire: the bot has sent every metric they read")
            } else {
                print("\(blind.count) rule(s) cannot fire:")
                for line in blind { print("  \(line)") }
            }
        }
    }
}
