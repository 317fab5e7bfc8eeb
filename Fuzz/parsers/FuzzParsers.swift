import FuzzDriver
import FleetwatchAgent
import FleetwatchHub
import FleetwatchProtocol
import Foundation
import NIOCore

/// One input through the parsers of configuration, commands and request bodies. The first byte picks the
/// parser (modulo 3), the rest is its input:
/// - 0: the hub's JSON configuration file (`HubConfiguration.parse`): a valid configuration or a
///   `ConfigurationError`, never another error or a crash;
/// - 1: the agent's command handling: the bytes as one frame and as a command journal (`CommandJournal.parse`),
///   whose hex lines are also frames, delivered to `CommandLog`s whose promises are checked;
/// - 2: the body of a stop or resume request (`CommandRoutes.StopRequest`, `ResumeRequest`) and the reason check.
func parseEverything(_ bytes: UnsafeRawBufferPointer) {
    guard let selector = bytes.first else { return }
    let input = Data(bytes.dropFirst())
    switch selector % 3 {
    case 0: parseConfiguration(input)
    case 1: handleCommands(input)
    default: parseCommandRequest(input)
    }
}

// MARK: 0: the configuration file

func parseConfiguration(_ json: Data) {
    let configuration: HubConfiguration
    do {
        configuration = try HubConfiguration.parse(json: json)
    } catch is ConfigurationError {
        return
    } catch {
        preconditionFailure("the configuration parser threw \(type(of: error)), not a ConfigurationError: \(error)")
    }
    // What the loader promises of a configuration it accepts (the hub converts these without further checks).
    let c = configuration
    precondition((0...65535).contains(c.port), "accepted port \(c.port)")
    precondition(c.monitoring.healthCheckInterval > 0 && c.monitoring.healthCheckInterval <= 1e9,
                 "accepted monitoring.health_check_interval \(c.monitoring.healthCheckInterval)")
    precondition(c.alerts.noDataSeconds >= 5 && c.alerts.noDataSeconds <= 1e9, "accepted alerts.no_data_seconds \(c.alerts.noDataSeconds)")
    for cooldown in [c.alerts.cooldownInfo, c.alerts.cooldownWarning, c.alerts.cooldownCritical] {
        precondition(cooldown >= 0 && cooldown <= 1e9, "accepted alerts.cooldowns \(cooldown)")
    }
    precondition(c.emergency.frameTTL >= .seconds(5) && c.emergency.frameTTL <= .seconds(3600), "accepted emergency.command_ttl \(c.emergency.frameTTL)")
    precondition(c.emergency.acknowledgeTimeout >= .seconds(1) && c.emergency.acknowledgeTimeout <= .seconds(1_000_000_000),
                 "accepted emergency.acknowledge_timeout \(c.emergency.acknowledgeTimeout)")
    precondition(c.dashboard.sessionIdleTimeout >= .seconds(60) && c.dashboard.sessionIdleTimeout <= .seconds(1_000_000_000),
                 "accepted dashboard.session_idle_timeout \(c.dashboard.sessionIdleTimeout)")
    precondition(c.alerts.webhookTimeout >= .zero && c.alerts.webhookTimeout <= .seconds(1_000_000_000),
                 "accepted alerts.webhook.timeout \(c.alerts.webhookTimeout)")
}

// MARK: 1: commands, the command log and the journal

/// The agent's bot and clock: the golden command vector (`Tests/FleetwatchProtocolTests/Golden/command.hex`) is
/// for this bot and valid at this time.
let fuzzBotID = "kraken-btc-01"
let fuzzNowMs: UInt64 = 1_764_072_030_000

func handleCommands(_ input: Data) {
    // The bytes as a journal file: never fatal; what it recovers is the logs' memory from "before a restart".
    let journal = CommandJournal.parse(input)
    for result in journal {
        precondition(result.commandID.bytes.count == 16, "the journal gave a command id of \(result.commandID.bytes.count) bytes")
    }
    // The bytes as one frame, as the agent receives it, then each line as the hex of one frame (the journal's
    // format): a sequence of deliveries, results and declarations.
    var frames: [Frame] = []
    if let frame = try? Frame.decode(ByteBuffer(bytes: input), maxFrameBytes: 1 << 20) { frames.append(frame) }
    for line in hexLines(input) {
        if let frame = try? Frame.decode(ByteBuffer(bytes: line), maxFrameBytes: 1 << 20) { frames.append(frame) }
    }
    for frame in frames {
        switch frame {
        case .command, .commandResult, .emergencyDeclaration:
            // These frames encode to what they decode from (the hub and the agent build them with `encoded()`).
            let again = try? Frame.decode(frame.encoded())
            precondition(again == frame, "\(frame) does not survive encoding and decoding")
        default:
            break
        }
    }
    // A log that remembers every command (so an id runs at most once, ever) without liquidation, and one that
    // forgets all but 2 finished commands, with liquidation.
    for (memory, liquidation) in [(Int.max, false), (2, true)] {
        var log = CheckedLog(journal: journal, memory: memory, liquidationEnabled: liquidation)
        for frame in frames {
            switch frame {
            case .command(let command): log.deliver(command)
            case .commandResult(let result): log.record(result)
            case .emergencyDeclaration(let declaration): log.declared(declaration.commandID)
            default: break
            }
        }
    }
}

/// A `CommandLog` of the bot `fuzzBotID` at `fuzzNowMs`, with what it was seen to do, to check its promises.
struct CheckedLog {
    var log: CommandLog
    let liquidationEnabled: Bool
    /// The log forgets nothing: a command id is executed at most once, however often it is delivered.
    let remembersAll: Bool
    /// Ids the log said to execute.
    var executed: Set<CommandID> = []
    /// Ids started (executed or declared) without a final result yet.
    var running: Set<CommandID> = []

    init(journal: [CommandResultFrame], memory: Int, liquidationEnabled: Bool) {
        log = CommandLog(botID: fuzzBotID, journal: journal, memory: memory)
        self.liquidationEnabled = liquidationEnabled
        remembersAll = memory == .max
    }

    /// A command delivered, then the same frame again (a redelivery or a replay).
    mutating func deliver(_ command: CommandFrame) {
        let id = command.commandID
        let done = Set(log.results(id).filter { $0.status == .succeeded || $0.status == .skipped }.map(\.step))
        let first = log.decide(command, nowMs: fuzzNowMs, liquidationEnabled: liquidationEnabled)
        let again = log.decide(command, nowMs: fuzzNowMs, liquidationEnabled: liquidationEnabled)
        switch first {
        case .execute(let steps, let skipped, _):
            precondition(command.botID == fuzzBotID, "executed a command bound to bot \(command.botID)")
            precondition(fuzzNowMs <= command.expiresAtMs, "executed a command that expired at \(command.expiresAtMs)")
            precondition(!running.contains(id), "executed command \(id) while it was running")
            precondition(!remembersAll || !executed.contains(id), "executed command \(id) twice")
            var previous: UInt8 = 0
            for step in steps {
                precondition(step.rawValue.nonzeroBitCount == 1 && step.rawValue & 0x1F != 0, "step \(step.rawValue) is not one known step")
                precondition(step.rawValue > previous, "steps \(steps.map(\.rawValue)) are not in order, once each")
                precondition(command.actions.contains(step), "step \(step.rawValue) was not asked for (\(command.actions.rawValue))")
                precondition(!done.contains(step.rawValue), "step \(step.rawValue) had already succeeded")
                previous = step.rawValue
            }
            precondition(liquidationEnabled || !steps.contains(.liquidate), "liquidated without permission")
            precondition(!skipped || (!liquidationEnabled && command.actions.contains(.liquidate)), "skipped a liquidation not asked for")
            guard case .resend = again else { preconditionFailure("a running command delivered again gave \(again)") }
            executed.insert(id)
            running.insert(id)
        case .relatch(let results):
            // Re-entering emergency mode happens once per restart, not once per delivery.
            precondition(again == .resend(results), "a relatched command delivered again gave \(again)")
        case .resend:
            precondition(again == first, "a known command delivered again gave \(again) after \(first)")
        case .refuse:
            precondition(command.botID != fuzzBotID || fuzzNowMs > command.expiresAtMs, "refused a valid command: \(first)")
            precondition(again == first, "a refused command delivered again gave \(again) after \(first)")
        }
    }

    mutating func record(_ result: CommandResultFrame) {
        log.record(result)
        if result.step == 0 && result.status.isFinal { running.remove(result.commandID) }
        if remembersAll {
            precondition(log.results(result.commandID).last == result, "a recorded result was not remembered")
        }
    }

    mutating func declared(_ id: CommandID) {
        log.declared(id)
        running.insert(id)
    }
}

/// Each line of `text` that is an even number of hex digits, as bytes (the journal's line format).
func hexLines(_ text: Data) -> [[UInt8]] {
    text.split(separator: UInt8(ascii: "\n")).compactMap { line -> [UInt8]? in
        guard line.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(line.count / 2)
        var high: UInt8?
        for character in line {
            guard let nibble = hexValue(character) else { return nil }
            if let h = high {
                out.append((h << 4) | nibble)
                high = nil
            } else {
                high = nibble
            }
        }
        return out
    }
}

func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
    default: return nil
    }
}

// MARK: 2: stop and resume request bodies

func parseCommandRequest(_ json: Data) {
    if let stop = try? JSONDecoder().decode(CommandRoutes.StopRequest.self, from: json) {
        checkReason(CommandRoutes.validatedReason(stop.reason))
    }
    if let resume = try? JSONDecoder().decode(CommandRoutes.ResumeRequest.self, from: json) {
        checkReason(CommandRoutes.validatedReason(resume.reason))
    }
    // The whole input as a reason, for the trimming and the length check on any text.
    checkReason(CommandRoutes.validatedReason(String(decoding: json, as: UTF8.self)))
}

/// A reason the API accepts is what the ledger may record: not blank, at most 1000 bytes, trimmed, and itself accepted unchanged.
func checkReason(_ reason: String?) {
    guard let reason else { return }
    precondition(!reason.isEmpty && reason.utf8.count <= 1000, "accepted a reason of \(reason.utf8.count) bytes")
    precondition(reason.trimmingCharacters(in: .whitespacesAndNewlines) == reason, "accepted an untrimmed reason")
    precondition(CommandRoutes.validatedReason(reason) == reason, "a checked reason changed when checked again")
}

#if FUZZING
/// libFuzzer's entry point (built by scripts/fuzz with -sanitize=fuzzer,address).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    parseEverything(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

/// SwiftPM links an executable's entry point as `<module>_main`; hand control to libFuzzer's driver.
@_cdecl("FuzzParsers_main")
public func fuzzDriverMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    FuzzDriver.run(argc, argv) { data, size in fuzzOneInput(data, size) }
}
#else
/// Without the fuzzer: replays files (a corpus, crash reproducers) through the same parsers, as a regression
/// test. `fleetwatch-fuzz-parsers FILE_OR_DIRECTORY…`
@main
struct ReplayParsers {
    static func main() throws {
        try FuzzDriver.replay(Array(CommandLine.arguments.dropFirst())) { parseEverything($0) }
    }
}
#endif
