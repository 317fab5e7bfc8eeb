import FleetwatchAlerting
import FleetwatchNotify
import FleetwatchProtocol
import Foundation
import Logging
import Synchronization
import Testing

/// Records attempts in memory.
final class MemoryLedger: NotificationLedger, Sendable {
    let rows = Mutex<[String]>([])
    func record(_ event: AlertEvent, channel: String, attempt: Int, outcome: String, error: String?, durationMs: Double) async {
        rows.withLock { $0.append("\(channel)/\(attempt)/\(outcome)") }
    }
    var all: [String] { rows.withLock { $0 } }
}

@Suite struct DispatcherTests {
    static let event = AlertEvent(alertID: 7, kind: .fired, bot: "b", ruleID: "memory_usage_mb", metric: "memory_usage_mb",
                                  level: .warning, value: 600, limit: 500, summary: "Memory", firedAt: Date(), at: Date())

    static func fast() -> Dispatcher.RetryPolicy {
        var p = Dispatcher.RetryPolicy()
        p.initialDelay = .milliseconds(1)
        p.maxAttempts = 3
        return p
    }

    static func wait(_ condition: () -> Bool) async {
        for _ in 0..<500 where !condition() { try? await Task.sleep(for: .milliseconds(5)) }
    }

    /// Stopping ends retries: a send waiting to retry gives up, and `run` returns without waiting out the
    /// backoff; an event after the stop is not sent.
    @Test(.timeLimit(.minutes(1)))
    func finishingEndsRetries() async {
        let ledger = MemoryLedger()
        var slow = Dispatcher.RetryPolicy()
        slow.initialDelay = .seconds(3600)
        let d = Dispatcher(notifiers: [CallbackNotifier(name: "down") { _ in throw NotifyError("refused", retryable: true) }],
                           ledger: ledger, retry: slow, logger: Logger(label: "t"))
        let running = Task { await d.run() }
        await d.deliver(Self.event)
        await Self.wait { ledger.all == ["down/1/retrying"] }
        d.finish()
        await running.value
        await d.deliver(Self.event)
        try? await Task.sleep(for: .milliseconds(50))
        #expect(ledger.all == ["down/1/retrying"])
    }

    @Test func retryableFailuresAreRetriedOthersAreNot() async {
        let ledger = MemoryLedger()
        let flaky = Mutex(0)
        let d = Dispatcher(notifiers: [
            CallbackNotifier(name: "flaky") { _ in
                let n = flaky.withLock { $0 += 1; return $0 }
                if n < 3 { throw NotifyError("503", retryable: true) }
            },
            CallbackNotifier(name: "rejects") { _ in throw NotifyError("400", retryable: false) },
            CallbackNotifier(name: "down") { _ in throw NotifyError("refused", retryable: true) },
        ], ledger: ledger, retry: Self.fast(), logger: Logger(label: "t"))
        let running = Task { await d.run() }
        defer { running.cancel() }
        await d.deliver(Self.event)
        await Self.wait { ledger.all.count >= 7 }
        let rows = Set(ledger.all)
        #expect(rows == ["flaky/1/retrying", "flaky/2/retrying", "flaky/3/delivered", "rejects/1/failed",
                         "down/1/retrying", "down/2/retrying", "down/3/failed"])
    }

    @Test func aSlowChannelDoesNotDelayTheOthers() async {
        let ledger = MemoryLedger()
        let d = Dispatcher(notifiers: [
            CallbackNotifier(name: "slow") { _ in try await Task.sleep(for: .seconds(30)) },
            CallbackNotifier(name: "fast") { _ in },
        ], ledger: ledger, retry: Self.fast(), logger: Logger(label: "t"))
        let running = Task { await d.run() }
        defer { running.cancel() }
        let start = ContinuousClock.now
        await d.deliver(Self.event)
        #expect(ContinuousClock.now - start < .seconds(1))
        await Self.wait { ledger.all.contains("fast/1/delivered") }
        #expect(ledger.all == ["fast/1/delivered"])
    }

    @Test func levelsAndSilences() async {
        let ledger = MemoryLedger()
        let d = Dispatcher(notifiers: [
            CallbackNotifier(name: "critical-only", minimumLevel: .critical) { _ in },
            CallbackNotifier(name: "all") { _ in },
        ], ledger: ledger, retry: Self.fast(), logger: Logger(label: "t"))
        let running = Task { await d.run() }
        defer { running.cancel() }
        await d.deliver(Self.event)
        var silenced = Self.event
        silenced.silenced = true
        await d.deliver(silenced)
        await Self.wait { ledger.all.count >= 2 }
        try? await Task.sleep(for: .milliseconds(50))
        #expect(Set(ledger.all) == ["all/1/delivered", "all/0/silenced"])
    }

    @Test func webhookBodyAndSignature() throws {
        let body = try WebhookNotifier.body(Self.event)
        let json = try #require(try JSONSerialization.jsonObject(with: body) as? [String: Any])
        #expect(json["text"] as? String == "[WARNING] b memory_usage_mb: Memory (value 600, limit 500)")
        #expect(json["event"] as? String == "fired")
        // HMAC-SHA256("k", "1700000000.x"), computed independently with Python's hmac module.
        #expect(WebhookNotifier.signature(body: Data("x".utf8), secret: "k", timestamp: 1_700_000_000)
                == "t=1700000000,v1=35e785f0777ca89fd2c639cc4f8c9806af1aa1f62afa88698a7e1f158f227cfc")
        #expect(EmailNotifier.subject(Self.event) == "[WARNING] b memory_usage_mb: Memory")
    }
}
