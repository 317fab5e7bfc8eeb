import Foundation

/// Where an agent program takes its bot token from, first match wins: `--token-file`, `--token`,
/// `FLEETWATCH_TOKEN_FILE`, `FLEETWATCH_TOKEN`. A token on the command line is visible to every local user
/// (`ps`); a file or the environment is not.
public enum BotTokenSource {
    public struct Missing: Error, CustomStringConvertible {
        public let description: String
    }

    public static func resolve(option: String?, file: String?,
                               environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        do {
            if let file { return try EnvironmentSecret.file(file) }
            if let option, !option.isEmpty { return option }
            if let value = try EnvironmentSecret.read("FLEETWATCH_TOKEN", environment), !value.isEmpty { return value }
        } catch let f as EnvironmentSecret.Failure {
            throw Missing(description: "the bot token: \(f.description)")
        }
        throw Missing(description: "give the bot's token with --token-file FILE, FLEETWATCH_TOKEN_FILE or FLEETWATCH_TOKEN")
    }
}
