import AsyncHTTPClient
import FleetwatchAgent
import Foundation
import Logging
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// What the sidecar does for each emergency step, configured on the command line:
/// stop trading = the bot's HTTP stop endpoint and/or a command, then a signal to the child;
/// cancel orders / liquidate = a command each (optional); emergency mode = the child is held down
/// (not restarted) until an operator resumes, which restarts it.
struct SidecarEmergencyHandler: EmergencyHandler {
    struct Actions: Sendable {
        var signal: Int32? = SIGTERM
        var grace: Duration = .seconds(10)
        var stopCommand: [String]?
        var httpURL: String?
        var httpMethod = "POST"
        var cancelCommand: [String]?
        var liquidateCommand: [String]?
        var resumeCommand: [String]?
    }

    let child: ChildSupervisor
    let actions: Actions
    let logger: Logger

    var liquidationEnabled: Bool { actions.liquidateCommand != nil }

    func stopTrading() async throws -> String {
        var done: [String] = []
        if let url = actions.httpURL { done.append(try await call(url)) }
        if let command = actions.stopCommand { done.append(try await run(command)) }
        if let signal = actions.signal { done.append(await child.stop(signal: signal, grace: actions.grace)) }
        if done.isEmpty { done.append("no stop action configured") }
        return done.joined(separator: "; ")
    }

    func cancelOpenOrders() async throws -> String {
        guard let command = actions.cancelCommand else { return "no cancel-orders command configured (the bot's stop handles its orders)" }
        return try await run(command)
    }

    func liquidatePositions() async throws -> String {
        guard let command = actions.liquidateCommand else { return "no liquidation command configured" }
        return try await run(command)
    }

    func setEmergencyMode() async throws -> String {
        await child.hold()
        return "emergency mode: the bot program is not restarted until an operator resumes"
    }

    func resume() async throws -> String {
        var done: [String] = []
        if let command = actions.resumeCommand { done.append(try await run(command)) }
        done.append(try await child.release())
        return done.joined(separator: "; ")
    }

    /// Runs `command` to completion (at most 60 s); throws on a non-zero exit.
    private func run(_ command: [String]) async throws -> String {
        let path = try ChildSupervisor.resolve(command[0])
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        // The stop commands get the bot program's environment (no hub token; the sidecar's address and token).
        let envp: [UnsafeMutablePointer<CChar>?] = await child.environment.map { strdup($0) } + [nil]
        defer { envp.forEach { free($0) } }
        let rc = ChildSupervisor.spawn(&pid, path, argv, envp)
        guard rc == 0 else { throw SidecarError("cannot run \(command[0]): \(String(cString: strerror(rc)))") }
        let deadline = ContinuousClock.now + .seconds(60)
        var status: Int32 = 0
        while waitpid(pid, &status, WNOHANG) != pid {
            if ContinuousClock.now > deadline {
                kill(pid, SIGKILL)
                waitpid(pid, &status, 0)
                throw SidecarError("\(command.joined(separator: " ")) did not finish within 60 s; killed")
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        let exit = ChildSupervisor.exitCode(status)
        guard exit == 0 else { throw SidecarError("\(command.joined(separator: " ")) exited with status \(exit)") }
        return "ran \(command.joined(separator: " "))"
    }

    /// Calls the bot's own API; throws unless it answers 2xx within 10 s.
    private func call(_ url: String) async throws -> String {
        var request = HTTPClientRequest(url: url)
        request.method = .init(rawValue: actions.httpMethod)
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: #"{"reason": "fleetwatch emergency stop"}"#))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        _ = try? await response.body.collect(upTo: 64 * 1024)
        guard (200..<300).contains(response.status.code) else {
            throw SidecarError("\(actions.httpMethod) \(url) answered \(response.status.code)")
        }
        return "\(actions.httpMethod) \(url): \(response.status.code)"
    }
}
