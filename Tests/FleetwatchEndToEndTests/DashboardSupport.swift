import AsyncHTTPClient
import FleetwatchAgent
import FleetwatchTestSupport
import Foundation
import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import NIOWebSocket
import Synchronization
import Testing
import WSClient

/// A signed-in dashboard user, as the browser holds it: the session cookie and the CSRF token.
struct DashboardSession {
    let cookie: String
    let csrf: String
    let setCookie: String

    var headers: [(String, String)] { [("Cookie", cookie), ("X-CSRF-Token", csrf)] }
    var cookieOnly: [(String, String)] { [("Cookie", cookie)] }
}

/// Signs in through `POST /auth/login`; nil when refused (the status is in `status`).
func signIn(port: Int, user: String, password: String) async throws -> (Int, DashboardSession?) {
    let body = String(decoding: try JSONSerialization.data(withJSONObject: ["username": user, "password": password]), as: UTF8.self)
    let (status, headers, text) = try await http("POST", port: port, path: "/auth/login", body: body, token: nil)
    guard status == 200, let set = headers["Set-Cookie"].first, let json = jsonObject(text) as? [String: Any],
          let csrf = json["csrfToken"] as? String else { return (status, nil) }
    let pair = String(set.split(separator: ";")[0])
    return (status, DashboardSession(cookie: pair, csrf: csrf, setCookie: set))
}

/// The first-start password the hub generated: its standard output is not a terminal, so it is in the data
/// directory's `initial-admin-password` (mode 0600), and the log names the file.
func printedAdminPassword(_ hub: HubUnderTest) -> String? {
    let path = hub.dataDirectory + "/initial-admin-password"
    guard hub.log.contains("its password is in \(path) (mode 0600)"),
          let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
    return text.trimmingCharacters(in: .whitespacesAndNewlines)
}

/// A dashboard WebSocket client collecting every text message; `close` is what the server closed with.
final class ViewerClient: @unchecked Sendable {
    let messages = Mutex<[String]>([])
    let closeCode = Mutex<Int?>(nil)
    private var task: Task<Void, Never>?

    /// Connects to `/ws` (or `/ws?bot=`) with the given headers; returns the upgrade failure if refused.
    static func connect(port: Int, path: String = "/ws", headers: [(String, String)]) async throws -> ViewerClient {
        let client = ViewerClient()
        var config = WebSocketClientConfiguration()
        for (name, value) in headers { config.additionalHeaders[HTTPField.Name(name)!] = value }
        var logger = Logger(label: "viewer")
        logger.logLevel = .critical
        let opened = AsyncStream.makeStream(of: Result<Void, any Error>.self)
        client.task = Task {
            do {
                let close = try await WebSocketClient.connect(url: "ws://127.0.0.1:\(port)\(path)", configuration: config, logger: logger) { inbound, _, _ in
                    opened.continuation.yield(.success(()))
                    for try await message in inbound.messages(maxSize: 16 << 20) {
                        if case .text(let text) = message { client.messages.withLock { $0.append(text) } }
                    }
                }
                client.closeCode.withLock { $0 = close.map { Int(UInt16(webSocketErrorCode: $0.closeCode)) } ?? 1000 }
            } catch {
                opened.continuation.yield(.failure(error))
                client.closeCode.withLock { $0 = -1 }
            }
            opened.continuation.finish()
        }
        for await result in opened.stream {
            try result.get()
            return client
        }
        throw TestSupportError("WebSocket never opened")
    }

    /// Every message so far, parsed.
    var all: [[String: Any]] { messages.withLock { $0 }.compactMap { jsonObject($0) as? [String: Any] } }

    func stop() { task?.cancel() }
}

/// An in-process agent streaming a few reference metrics every 200 ms until stopped.
func streamingAgent(bot: String, hub: String, token: String = "secret") throws -> (MonitorAgent, Task<Void, any Error>) {
    var c = AgentConfiguration(hubURL: hub, botID: bot, token: token)
    c.flushInterval = .milliseconds(200)
    c.processCollector = false
    c.backoff = Backoff(initial: .milliseconds(50), maximum: .milliseconds(300))
    var logger = Logger(label: "agent")
    logger.logLevel = .error
    let agent = try MonitorAgent(configuration: c, logger: logger)
    let task = Task { try await agent.run() }
    return (agent, task)
}
