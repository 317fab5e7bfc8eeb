import FleetwatchTestSupport
import Foundation
import Testing

/// The dashboard in a real headless Chromium: sign in, the demo fleet, a live value changing, a bot's
/// charts, an emergency stop confirmed in the dialog and followed to `completed`; screenshots of the fleet
/// and a bot page at desktop and phone width go to the test artifacts. It runs alone after the other suites
/// (`scripts/test`): beside them, on two cores, Chromium was starved until a WebDriver command waited past its minute
/// (13 s alone, over 200 s in the main phase).
@Suite(.serialized, .enabled(if: hasDatabase, "needs FLEETWATCH_TEST_DATABASE_URL (run scripts/test)"), .enabled(if: runsHereNow(.quiet)))
struct DashboardBrowserTests {
    @Test(.timeLimit(.minutes(4)))
    func signInWatchTheFleetAndStopABot() async throws {
        let db = try await TestDatabase.create()
        try await registerBots(["alpha-bot", "beta-bot"], token: "secret", in: db)
        let artifacts = ProcessInfo.processInfo.environment["FLEETWATCH_TEST_ARTIFACTS"] ?? NSTemporaryDirectory()
        let config = "\(artifacts)/\(db.url.database)-browser.json"
        try #"{"dashboard": {"admin_password": "browser-test-password"}}"#.write(toFile: config, atomically: true, encoding: .utf8)
        let hub = try HubUnderTest(database: db)
        try await hub.start(extra: ["--config", config])
        defer { Task { await hub.kill(SIGTERM) } }
        // The simulated bot trades (its counters move every 200 ms); a second bot reports a hostile state string.
        let simbot = try ChildProcess(builtExecutable("fleetwatch-simbot"),
                                      ["--hub", hub.agentURL, "--bot-id", "alpha-bot", "--token", "secret", "--trade-rate", "20",
                                       "--flush-interval", "0.2"], logPath: "\(artifacts)/\(db.url.database)-simbot.log")
        defer { Task { await simbot.stop(signal: SIGTERM) } }
        let (agent, run) = try streamingAgent(bot: "beta-bot", hub: hub.agentURL)
        defer { run.cancel() }
        let hostile = "<img src=x onerror=\"window.__xss=1\">"
        agent.state("websocket_status").set(hostile)
        agent.gauge("total_pnl").set(-12.5)

        let browser = try await WebDriver(logPath: "\(artifacts)/\(db.url.database)-chromedriver.log")
        defer { Task { await browser.quit() } }
        let base = "http://127.0.0.1:\(hub.port)"

        // Signing in: the page without a session sends us to the sign-in form.
        try await browser.open(base + "/")
        try await browser.waitFor("the sign-in form", "return !!document.querySelector('#username');")
        try await browser.type("#username", "admin")
        try await browser.type("#password", "wrong-password-here")
        try await browser.click("#login-button")
        try await browser.waitFor("the refusal", "const e = document.querySelector('#login-error'); return !!e && e.textContent.length > 0;")
        try await browser.run("document.querySelector('#password').value = '';")
        try await browser.type("#password", "browser-test-password")
        try await browser.click("#login-button")

        // The fleet: both bots, live.
        let row = "#fleet-table tr[data-bot=\"alpha-bot\"]"
        try await browser.waitFor("both bots in the fleet table",
                                  "return !!document.querySelector(arguments[0]) && !!document.querySelector('#fleet-table tr[data-bot=\"beta-bot\"]');", [row])
        try await browser.waitFor("the live indicator", "return document.querySelector('#connection-status').textContent.trim() === 'Live';")
        try await browser.waitFor("a trade count", "const t = document.querySelector(arguments[0]); return !!t && /[0-9]/.test(t.textContent);",
                                  ["\(row) td[data-field=\"trades_executed\"]"])
        let before = try await browser.text("\(row) td[data-field=\"trades_executed\"]")
        try await browser.waitFor("the trade count to change live", timeout: .seconds(20),
                                  "return document.querySelector(arguments[0]).textContent.trim() !== arguments[1];",
                                  ["\(row) td[data-field=\"trades_executed\"]", before ?? ""])
        // Strings from bots are shown as text, never run.
        try await browser.waitFor("beta-bot's state string", "const c = document.querySelector(arguments[0]); return !!c && c.textContent === arguments[1];",
                                  ["#fleet-table tr[data-bot=\"beta-bot\"] td[data-field=\"websocket_status\"]", hostile])
        #expect(try await browser.run("return window.__xss === undefined && !document.querySelector('#fleet-table img');") as? Bool == true)
        #expect(try await browser.text("#fleet-table tr[data-bot=\"beta-bot\"] td[data-field=\"state\"]") == "online")
        // The fleet's overall status: beta-bot's WebSocket is not "connected" (a WARNING), so the fleet is at least
        // "warning" (the simulated bot's random API errors may make it critical) and the message names beta-bot.
        try await browser.waitFor("the fleet status banner", timeout: .seconds(30),
                                  "return ['warning', 'critical'].includes(document.querySelector('#fleet-health-status').textContent.trim()) && document.querySelector('#fleet-health-message').textContent.includes('beta-bot warning');")
        try await browser.screenshot(to: "\(artifacts)/screenshots/fleet-desktop.png")

        // A bot: its charts drawn by Chart.js from the history endpoint.
        try await browser.click("\(row) a.bot-link")
        try await browser.waitFor("the bot page", "const v = document.querySelector('#bot-view'); return !!v && v.dataset.bot === 'alpha-bot';")
        for metric in ["total_pnl", "memory_usage_mb", "success_rate"] {
            try await browser.waitFor("the \(metric) chart", timeout: .seconds(30),
                                      "const c = document.querySelector(arguments[0]); return !!c && c.dataset.drawn === 'true' && Number(c.dataset.points) > 0;",
                                      ["canvas[data-chart=\"\(metric)\"]"])
        }
        #expect(try await browser.run("return typeof Chart === 'function';") as? Bool == true)
        try await browser.waitFor("the thresholds", "return document.querySelectorAll('#thresholds input[data-rule]').length > 0;")
        // alpha-bot has no profile of its own: every limit comes from the fleet default.
        try await browser.waitFor("where limits come from",
                                  "const s = [...document.querySelectorAll('#thresholds [data-field=\"source\"]')].map(e => e.textContent.trim()); return s.length > 0 && s.every(t => t === 'fleet default');")
        try await browser.waitFor("the bot's health line", "return ['healthy', 'warning', 'critical'].includes(document.querySelector('#bot-health-status').textContent.trim());")
        try await browser.screenshot(to: "\(artifacts)/screenshots/bot-desktop.png")

        // Emergency stop: the dialog says what will happen and wants a reason; the command is followed to completed.
        try await browser.click("#emergency-stop-button")
        try await browser.waitFor("the confirmation dialog", "return document.querySelector('#stop-dialog').open === true;")
        let summary = try await browser.text("#stop-summary") ?? ""
        #expect(summary.contains("alpha-bot") && summary.lowercased().contains("cancel"), "\(summary)")
        try await browser.click("#stop-confirm")
        try await browser.waitFor("the missing-reason error", "const e = document.querySelector('#stop-error'); return !!e && e.textContent.trim().length > 0;")
        #expect(try await browser.run("return document.querySelectorAll('#command-history [data-command-id]').length;") as? Int == 0)
        try await browser.type("#stop-reason", "browser test: runaway losses")
        try await browser.click("#stop-confirm")
        try await browser.waitFor("the command to complete", timeout: .seconds(40),
                                  "const s = document.querySelector('#command-history [data-command-id] [data-field=\"state\"]'); return !!s && s.textContent.trim() === 'completed';")
        try await browser.waitFor("the emergency state and resume button", timeout: .seconds(20),
                                  "const b = document.querySelector('#resume-button'); return document.querySelector('#bot-state').textContent.trim() === 'emergency' && !!b && b.offsetParent !== null;")
        try await browser.waitFor("the bot's status to say emergency", timeout: .seconds(20),
                                  "return document.querySelector('#bot-health-status').textContent.trim() === 'emergency';")
        try await browser.screenshot(to: "\(artifacts)/screenshots/bot-stopped-desktop.png")

        // beta-bot sends two metrics only: its page lists the rules that cannot fire.
        try await browser.open(base + "/#/bot/beta-bot")
        try await browser.waitFor("beta-bot's blind rules", timeout: .seconds(20),
                                  "return [...document.querySelectorAll('#thresholds-cannot-fire li')].some(e => /api_error_rate_percent needs .*api_calls.*this bot has never sent/.test(e.textContent));")

        // Phone width: the same pages still render.
        try await browser.resize(width: 390, height: 844)
        try await Task.sleep(for: .milliseconds(500))
        try await browser.screenshot(to: "\(artifacts)/screenshots/bot-phone.png")
        try await browser.open(base + "/#/")
        try await browser.waitFor("the fleet at phone width", "return !!document.querySelector(arguments[0]);", [row])
        try await Task.sleep(for: .milliseconds(500))
        try await browser.screenshot(to: "\(artifacts)/screenshots/fleet-phone.png")
        #expect(try await browser.text("\(row) td[data-field=\"state\"]") == "emergency")

        // The alerts page shows the emergency-mode alert the stop raised.
        try await browser.open(base + "/#/alerts")
        try await browser.waitFor("the emergency alert", timeout: .seconds(20),
                                  "return [...document.querySelectorAll('#alerts-feed [data-alert-id]')].some(e => e.textContent.includes('alpha-bot'));")
        try await browser.screenshot(to: "\(artifacts)/screenshots/alerts-phone.png")
    }
}
