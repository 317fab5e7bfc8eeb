import ArgumentParser
import FleetwatchHub
import FleetwatchStorage
import Logging

struct Tokens: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "API tokens for people and scripts: viewers read, operators also stop and resume bots.",
        subcommands: [Add.self, List.self, Revoke.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an API token and print it (shown once).")
        @OptionGroup var common: CommonOptions
        @Argument(help: "Who holds the token (recorded in the audit log), e.g. alice or grafana.") var name: String
        @Option(help: "viewer (reads) or operator (also changes settings and stops bots).") var role: AccessTokens.Role = .viewer

        func run() async throws {
            let token = try await HubAdmin(configuration: try common.load(), logger: Logger(label: "fleetwatch.admin"))
                .addAPIToken(name: name, role: role.rawValue)
            print("\(role.rawValue) token for \(name) (shown only now; send it as 'Authorization: Bearer <token>'):")
            print(token)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List API tokens.")
        @OptionGroup var common: CommonOptions
        @OptionGroup var output: JSONOutputOption

        func run() async throws {
            let tokens = try await HubAdmin(configuration: try common.load(), logger: Logger(label: "fleetwatch.admin")).listAPITokens()
            if output.json { return try output.print(tokens) }
            print("NAME\tROLE\tCREATED\tLAST USED\tREVOKED")
            for t in tokens {
                print("\(t.name)\t\(t.role)\t\(t.createdAt)\t\(t.lastUsedAt.map { "\($0)" } ?? "never")\t\(t.revokedAt.map { "\($0)" } ?? "no")")
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke an API token; it is refused from the next request.")
        @OptionGroup var common: CommonOptions
        @Argument(help: "The token's holder, as given to tokens add (monitor-hub tokens list).") var name: String

        func run() async throws {
            try await HubAdmin(configuration: try common.load(), logger: Logger(label: "fleetwatch.admin")).revokeAPIToken(name: name)
            print("API token of \(name) revoked")
        }
    }
}
