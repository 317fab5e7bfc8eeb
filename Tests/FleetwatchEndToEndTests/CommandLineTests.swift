import FleetwatchProtocol
import FleetwatchTestSupport
import Foundation
import Testing

/// Command-line conventions of every program: `--version`, and enumerated options that list their values and
/// refuse anything else instead of falling back silently.
struct CommandLineTests {
    static func run(_ program: String, _ args: [String]) async throws -> (Int32, String) {
        let log = NSTemporaryDirectory() + "fw-cli-\(UUID().uuidString.prefix(8)).log"
        let p = try ChildProcess(builtExecutable(program), args, logPath: log)
        let status = await p.stop(signal: 0, timeout: .seconds(30))
        return (status, p.log)
    }

    @Test(arguments: ["monitor-hub", "monitor-agent", "fleetwatch-simbot", "fleetwatch-bench", "fleetwatch-faults"])
    func everyProgramSaysItsVersion(program: String) async throws {
        let (status, out) = try await Self.run(program, ["--version"])
        #expect(status == 0 && out.trimmingCharacters(in: .whitespacesAndNewlines) == FleetwatchVersion.current, "\(program): \(status) \(out)")
    }

    @Test(.enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
    func everyListPrintsJSON() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["json-bot"], token: "secret", in: db)
        func list(_ what: String) async throws -> [[String: Any]] {
            let (status, out) = try await Self.run("monitor-hub", [what, "list", "--json", "--database-url", db.url.urlString, "--log-level", "error"])
            #expect(status == 0, "\(what) list --json: \(out)")
            let start = out.firstIndex(of: "[") ?? out.startIndex
            return try #require(try JSONSerialization.jsonObject(with: Data(out[start...].utf8)) as? [[String: Any]], "\(what): \(out)")
        }
        let bots = try await list("bots")
        #expect(bots.contains { $0["bot"] as? String == "json-bot" && $0["hasToken"] as? Bool == true && $0["connected"] as? Bool == false }, "\(bots)")
        let tokens = try await list("tokens")
        #expect(tokens.contains { $0["name"] as? String == "test-operator" && $0["role"] as? String == "operator" && $0["createdAt"] is String }, "\(tokens)")
        _ = try await list("users")
        let profiles = try await list("profiles")
        #expect(profiles.contains { $0["profile"] as? String == "default" && (($0["rules"] as? [Any])?.count ?? 0) > 5 }, "\(profiles)")
    }

    /// What an operator reads after a command at the default log level: its answer, not PostgresNIO's warning that
    /// the command's pool was used before it ran (every command opens one for itself: `withRunningClient`).
    @Test(.enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
    func commandsLogNoConnectionPoolWarning() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["quiet-bot"], token: "secret", in: db)
        for what in ["bots", "tokens", "users", "profiles", "bots", "tokens"] {
            let (status, out) = try await Self.run("monitor-hub", [what, "list", "--database-url", db.url.urlString])
            #expect(status == 0, "\(what) list: \(out)")
            #expect(!out.contains("[PostgresNIO]"), "\(what) list: \(out)")
        }
    }

    /// A long command says how far it is: `rollup` prints a progress line per day, then its result.
    @Test(.enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"))
    func rollupReportsProgressPerDay() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["rollup-bot"], token: "secret", in: db)
        let from = ISO8601DateFormatter().string(from: Date().addingTimeInterval(-2.5 * 86_400))
        let (status, out) = try await Self.run("monitor-hub", ["rollup", "--from", from, "--database-url", db.url.urlString, "--log-level", "error"])
        #expect(status == 0, "\(out)")
        for line in ["rollup: day 1 of 3,", "rollup: day 3 of 3,", "recomputed "] {
            #expect(out.contains(line), "missing '\(line)' in: \(out)")
        }
    }

    @Test func aBadLogLevelIsAnErrorThatListsTheLevels() async throws {
        for (program, args) in [("monitor-agent", ["run", "--log-level", "loud", "--", "true"]),
                                ("fleetwatch-simbot", ["--log-level", "loud"]),
                                ("monitor-hub", ["serve", "--log-format", "xml"])] {
            let (status, out) = try await Self.run(program, args)
            #expect(status != 0, "\(program) accepted a bad value: \(out)")
            #expect(out.contains("loud") || out.contains("xml"), "\(program): \(out)")
            #expect(out.contains("notice") || out.contains("json"), "\(program) does not list the allowed values: \(out)")
        }
        let (_, help) = try await Self.run("monitor-agent", ["run", "--help"])
        #expect(help.contains("trace") && help.contains("critical"), "\(help)")
    }

    /// Every enumerated option is refused with the allowed values listed, before anything is touched.
    @Test func everyEnumeratedOptionRefusesAnUnknownValue() async throws {
        for (program, args, allowed) in [("monitor-hub", ["tokens", "add", "x", "--role", "admin"], "operator"),
                                         ("monitor-hub", ["users", "add", "x", "--role", "root"], "viewer"),
                                         ("monitor-hub", ["report", "weekly", "--format", "xlsx"], "csv"),
                                         ("monitor-hub", ["bots", "list", "--log-level", "loud"], "notice"),
                                         ("monitor-hub", ["bots", "liquidation", "b", "maybe"], "off"),
                                         ("monitor-agent", ["run", "--bot-id", "b", "--hub", "ws://127.0.0.1:1/agent/v1", "--restart", "sometimes", "--", "true"], "on-failure")] {
            let (status, out) = try await Self.run(program, args)
            #expect(status != 0, "\(program) \(args) accepted a bad value: \(out)")
            #expect(out.contains(allowed), "\(program) \(args) does not list the allowed values: \(out)")
        }
    }

    /// The load benchmark refuses a drift limit that is not a number before it starts anything, and says what to pass.
    @Test(arguments: ["nan", "inf", "-inf"])
    func theLoadBenchmarkRefusesADriftLimitThatIsNotANumber(limit: String) async throws {
        let (status, out) = try await Self.run("fleetwatch-bench", ["load", "--database-url", "postgres://nobody@127.0.0.1:1/none",
                                                                    "--max-drift=\(limit)"])
        #expect(status != 0 && out.contains("--max-drift must be a number of per cent, like 10"), "\(status) \(out)")
    }

    /// Every argument of every visible command of every program has help text, and every option whose values
    /// form a closed set says so to the parser (help lists the values, anything else is refused).
    @Test(arguments: ["monitor-hub", "monitor-agent", "fleetwatch-simbot", "fleetwatch-bench", "fleetwatch-faults"])
    func everyArgumentHasHelpAndEveryClosedSetIsAnEnum(program: String) async throws {
        let (status, out) = try await Self.run(program, ["--experimental-dump-help"])
        #expect(status == 0)
        let dump = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any], "\(out)")
        let enumerated: Set<String> = ["role", "format", "log-level", "log-format", "restart", "setting"]
        var missingHelp: [String] = [], notEnums: [String] = []
        func walk(_ command: [String: Any], _ path: String) {
            guard command["shouldDisplay"] as? Bool ?? true else { return }
            for argument in command["arguments"] as? [[String: Any]] ?? [] where argument["shouldDisplay"] as? Bool ?? true {
                let name = argument["valueName"] as? String ?? "?"
                if path.hasSuffix(" help") { continue }   // argument-parser's own help command
                if (argument["abstract"] as? String ?? "").isEmpty { missingHelp.append("\(path) \(name)") }
                if enumerated.contains(name), (argument["allValues"] as? [String] ?? []).isEmpty { notEnums.append("\(path) \(name)") }
            }
            for sub in command["subcommands"] as? [[String: Any]] ?? [] {
                walk(sub, "\(path) \(sub["commandName"] as? String ?? "?")")
            }
        }
        walk(try #require(dump["command"] as? [String: Any]), program)
        #expect(missingHelp.isEmpty, "arguments without help: \(missingHelp)")
        #expect(notEnums.isEmpty, "closed sets taken as free text: \(notEnums)")
    }
}
