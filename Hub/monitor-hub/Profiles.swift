import ArgumentParser
import FleetwatchHub
import Logging

struct Profiles: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Threshold profiles and the fleet's default profile.",
        subcommands: [List.self, Default.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the stored threshold profiles and their rules.")
        @OptionGroup var common: CommonOptions
        @OptionGroup var output: JSONOutputOption

        struct Row: Encodable {
            struct RuleRow: Encodable { let rule: String, level: String, limit: Double }
            let profile: String, fleetDefault: Bool, automaticShutdown: Bool, rules: [RuleRow]
        }

        func run() async throws {
            let admin = HubAdmin(configuration: try common.load(), logger: Logger(label: "fleetwatch.admin"))
            let fleetDefault = try await admin.defaultProfile(set: nil)
            if output.json {
                return try output.print(try await admin.profiles().map { p in
                    Row(profile: p.name, fleetDefault: p.name == fleetDefault, automaticShutdown: p.enableEmergencyShutdown,
                        rules: p.rules.map { .init(rule: $0.id, level: $0.level.rawValue, limit: $0.limit) })
                })
            }
            for p in try await admin.profiles() {
                print("\(p.name)\(p.name == fleetDefault ? " (fleet default)" : ""): automatic shutdown \(p.enableEmergencyShutdown ? "on" : "off")")
                for r in p.rules { print("  \(r.id)\t\(r.level.rawValue)\t\(r.limit)") }
            }
        }
    }

    struct Default: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show, or set, the profile every bot without its own follows.",
            discussion: "The hub sets it from --config at every start; this changes it for every replica at once until then.")
        @OptionGroup var common: CommonOptions
        @Argument(help: "A stored profile to make the default (omit to show it).") var profile: String?

        func run() async throws {
            let name = try await HubAdmin(configuration: try common.load(), logger: Logger(label: "fleetwatch.admin"))
                .defaultProfile(set: profile)
            print("fleet default profile: \(name)")
        }
    }
}
