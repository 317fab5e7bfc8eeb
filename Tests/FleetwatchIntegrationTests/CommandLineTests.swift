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
}
