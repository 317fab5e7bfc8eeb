import ArgumentParser
import FleetwatchHub
import Logging

struct Bots: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Register bots and manage their tokens.",
        subcommands: [Add.self, List.self, RotateToken.self, Revoke.self, Liquidation.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register a bot and print its token (shown once).")
        @OptionGroup var common: CommonOptions
        @Argument(help: "The bot id agents will send.") var bot: String
        @Option(help: "Threshold profile the bot follows.") var profile = "default"

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

        func run() async throws {
            let bots = try await HubAdmin(configuration: try common.load(), logger: Logger(label: "fleetwatch.admin")).listBots()
            print("BOT\tPROFILE\tTOKEN\tCONNECTED\tLAST SEEN")
            for b in bots { print("\(b.name)\t\(b.profile)\t\(b.hasToken ? "yes" : "revoked")\t\(b.connected ? "yes" : "no")\t\(b.lastSeen.map { "\($0)" } ?? "never")") }
        }
    }

    struct RotateToken: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Issue a new token for a bot; the old one stops working at once.")
        @OptionGroup var common: CommonOptions
        @Argument var bot: String

        func run() async throws {
            let token = try await HubAdmin(configuration: try common.load(), logger: Logger(label: "fleetwatch.admin"))
                .rotateToken(bot)
            print(token)
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a bot's token; its agent is refused from its next connection.")
        @OptionGroup var common: CommonOptions
        @Argument var bot: String

        func run() async throws {
            try await HubAdmin(configuration: try common.load(), logger: Logger(label: "fleetwatch.admin")).revoke(bot)
            print("token of \(bot) revoked")
        }
    }

    struct Liquidation: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Allow (on) or forbid (off) emergency stops that liquidate this bot's positions.")
        @OptionGroup var common: CommonOptions
        @Argument var bot: String
        @Argument(help: "on or off.") var setting: String

        func run() async throws {
            guard setting == "on" || setting == "off" else { throw ValidationError("say on or off") }
            try await HubAdmin(configuration: try common.load(), logger: Logger(label: "fleetwatch.admin"))
                .setLiquidation(bot: bot, allowed: setting == "on")
            print("liquidation for \(bot): \(setting)")
        }
    }
}
