import ArgumentParser
import FleetwatchHub
import FleetwatchProtocol
import FleetwatchStorage
import Foundation
import Logging

struct Users: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Dashboard users: viewers watch, operators also stop and resume bots and change thresholds.",
        subcommands: [Add.self, List.self, Passwd.self, Disable.self])

    /// The password from a file (first line), else `FLEETWATCH_USER_PASSWORD` (or the file named by
    /// `FLEETWATCH_USER_PASSWORD_FILE`), else a prompt.
    static func password(file: String?) throws -> String {
        if let file {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw ValidationError("cannot read \(file)") }
            return String(text.split(separator: "\n", omittingEmptySubsequences: false).first ?? "")
        }
        do {
            if let env = try EnvironmentSecret.read("FLEETWATCH_USER_PASSWORD"), !env.isEmpty { return env }
        } catch let f as EnvironmentSecret.Failure {
            throw ValidationError(f.description)
        }
        guard let typed = getpass("password (at least 12 characters): ") else { throw ValidationError("no password given") }
        return String(cString: typed)
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a dashboard user.")
        @OptionGroup var common: CommonOptions
        @Argument(help: "User name (1–64 of A–Z a–z 0–9 _ . @ -).") var name: String
        @Option(help: "viewer (reads) or operator (also changes settings and stops bots).") var role: AccessTokens.Role = .viewer
        @Option(help: "Read the password from this file's first line (else FLEETWATCH_USER_PASSWORD, else a prompt).")
        var passwordFile: String?

        func run() async throws {
            let password = try Users.password(file: passwordFile)
            try await HubAdmin(configuration: try common.load(), logger: Logger(label: "fleetwatch.admin"))
                .addUser(name: name, role: role.rawValue, password: password)
            print("\(role.rawValue) \(name) created")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List dashboard users.")
        @OptionGroup var common: CommonOptions
        @OptionGroup var output: JSONOutputOption

        func run() async throws {
            let users = try await HubAdmin(configuration: try common.load(), logger: Logger(label: "fleetwatch.admin")).listUsers()
            if output.json { return try output.print(users) }
            print("NAME\tROLE\tCREATED\tLAST SIGN-IN\tDISABLED")
            for u in users {
                print("\(u.name)\t\(u.role)\t\(u.createdAt)\t\(u.lastLoginAt.map { "\($0)" } ?? "never")\t\(u.disabledAt.map { "\($0)" } ?? "no")")
            }
        }
    }

    struct Passwd: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set a user's password; their sessions end.")
        @OptionGroup var common: CommonOptions
        @Argument(help: "The user's name (monitor-hub users list).") var name: String
        @Option(help: "Read the password from this file's first line.") var passwordFile: String?

        func run() async throws {
            let password = try Users.password(file: passwordFile)
            try await HubAdmin(configuration: try common.load(), logger: Logger(label: "fleetwatch.admin"))
                .setUserPassword(name: name, password: password)
            print("password of \(name) changed; their sessions ended")
        }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Disable a user; their sessions and open dashboards end at once.")
        @OptionGroup var common: CommonOptions
        @Argument(help: "The user's name (monitor-hub users list).") var name: String

        func run() async throws {
            try await HubAdmin(configuration: try common.load(), logger: Logger(label: "fleetwatch.admin")).disableUser(name: name)
            print("user \(name) disabled")
        }
    }
}
