import AsyncHTTPClient
import FleetwatchTestSupport
import Foundation
import NIOCore
import NIOHTTP1

/// A small W3C WebDriver client for a real headless Chromium driven by chromedriver.
final class WebDriver: @unchecked Sendable {
    let driver: ChildProcess
    let port: Int
    private(set) var session = ""

    static let elementKey = "element-6066-11e4-a52e-4f735466cecf"

    struct Failure: Error, CustomStringConvertible { let description: String }

    /// Starts chromedriver and a headless Chromium session at `width`×`height`.
    init(logPath: String, width: Int = 1280, height: Int = 900) async throws {
        guard let chromedriver = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"].first(where: FileManager.default.isExecutableFile) else {
            throw Failure(description: "chromedriver is not installed: apt install chromium chromium-driver (scripts/test installs them)")
        }
        port = try freeTCPPort()
        driver = try ChildProcess(chromedriver, ["--port=\(port)"], logPath: logPath)
        var started = false
        for _ in 0..<100 where !started {
            started = (try? await call("GET", "/status")) != nil
            if !started { try await Task.sleep(for: .milliseconds(100)) }
        }
        guard started else { throw Failure(description: "chromedriver did not start: \(driver.log.suffix(1000))") }
        let capabilities: [String: Any] = ["capabilities": ["alwaysMatch": [
            "browserName": "chrome",
            "goog:chromeOptions": ["binary": "/usr/bin/chromium",
                                   "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                                            "--window-size=\(width),\(height)"]],
        ]]]
        let created = try await call("POST", "/session", capabilities)
        guard let id = (created as? [String: Any])?["sessionId"] as? String else {
            throw Failure(description: "no WebDriver session: \(String(describing: created))")
        }
        session = id
    }

    func quit() async {
        _ = try? await call("DELETE", "/session/\(session)")
        _ = await driver.stop(signal: SIGTERM)
    }

    @discardableResult
    func call(_ method: String, _ path: String, _ body: [String: Any]? = nil) async throws -> Any? {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = HTTPMethod(rawValue: method)
        if let body {
            request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
            request.headers.add(name: "Content-Type", value: "application/json")
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        let data = try await response.body.collect(upTo: 64 << 20)
        let json = try JSONSerialization.jsonObject(with: Data(buffer: data), options: [.fragmentsAllowed]) as? [String: Any]
        let value = json?["value"]
        if response.status.code >= 400 {
            throw Failure(description: "WebDriver \(method) \(path): \(response.status.code) \(String(describing: value))")
        }
        return value
    }

    func open(_ url: String) async throws { try await call("POST", "/session/\(session)/url", ["url": url]) }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page and returns its value.
    @discardableResult
    func run(_ script: String, _ args: [Any] = []) async throws -> Any? {
        try await call("POST", "/session/\(session)/execute/sync", ["script": script, "args": args])
    }

    func element(_ css: String) async throws -> String {
        let value = try await call("POST", "/session/\(session)/element", ["using": "css selector", "value": css])
        guard let id = (value as? [String: Any])?[Self.elementKey] as? String else { throw Failure(description: "no element \(css)") }
        return id
    }

    func click(_ css: String) async throws {
        try await call("POST", "/session/\(session)/element/\(try await element(css))/click", [:])
    }

    func type(_ css: String, _ text: String) async throws {
        try await call("POST", "/session/\(session)/element/\(try await element(css))/value", ["text": text])
    }

    /// The element's text content, nil if there is none.
    func text(_ css: String) async throws -> String? {
        try await run("const e = document.querySelector(arguments[0]); return e ? e.textContent.trim() : null;", [css]) as? String
    }

    func resize(width: Int, height: Int) async throws {
        try await call("POST", "/session/\(session)/window/rect", ["width": width, "height": height])
    }

    /// Saves a PNG of the viewport.
    func screenshot(to path: String) async throws {
        guard let b64 = try await call("GET", "/session/\(session)/screenshot") as? String, let png = Data(base64Encoded: b64) else {
            throw Failure(description: "no screenshot")
        }
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try png.write(to: URL(fileURLWithPath: path))
    }

    /// Waits until `script` returns true.
    func waitFor(_ what: String, timeout: Duration = .seconds(30), _ script: String, _ args: [Any] = []) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if (try? await run(script, args)) as? Bool == true { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        let url = (try? await run("return location.href;")) as? String ?? "?"
        let body = ((try? await run("return document.body ? document.body.innerText.slice(0, 1500) : '';")) as? String) ?? ""
        throw Failure(description: "timed out waiting for \(what) at \(url); page text:\n\(body)")
    }
}
