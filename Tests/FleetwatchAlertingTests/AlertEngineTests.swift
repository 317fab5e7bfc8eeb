import FleetwatchAlerting
import FleetwatchProtocol
import Foundation
import Logging
import Synchronization
import Testing

/// The engine against an in-memory store that behaves like the PostgreSQL one (conditional transitions).
actor MemoryAlertStore: AlertStore {
    var firing: [String: (id: Int64, lastMs: Int64)] = [:]
    var nextID: Int64 = 1
    var nowMs: Int64 = 0
    func advance(ms: Int64) { nowMs += ms }

    func fire(bot: String, rule: Rule, value: Double, state: String?) async throws -> AlertEvent? {
        let key = "\(bot)/\(rule.id)"
        guard firing[key] == nil else { return nil }
        firing[key] = (nextID, nowMs)
        nextID += 1
        return AlertEvent(alertID: nextID - 1, kind: .fired, bot: bot, ruleID: rule.id, metric: rule.metric, level: rule.level,
                          value: value, limit: rule.limit, summary: rule.summary, firedAt: Date(), at: Date())
    }
    func repeatIfDue(bot: String, rule: Rule, value: Double, state: String?, cooldownMs: Int64) async throws -> AlertEvent? {
        let key = "\(bot)/\(rule.id)"
        guard let f = firing[key], nowMs - f.lastMs >= cooldownMs else { return nil }
        firing[key] = (f.id, nowMs)
        return AlertEvent(alertID: f.id, kind: .repeated, bot: bot, ruleID: rule.id, metric: rule.metric, level: rule.level,
                          value: value, limit: rule.limit, summary: rule.summary, firedAt: Date(), at: Date())
    }
    func resolve(bot: String, rule: Rule, value: Double, state: String?) async throws -> AlertEvent? {
        guard let f = firing.removeValue(forKey: "\(bot)/\(rule.id)") else { return nil }
        return AlertEvent(alertID: f.id, kind: .resolved, bot: bot, ruleID: rule.id, metric: rule.metric, level: rule.level,
                          value: value, limit: rule.limit, summary: rule.summary, firedAt: Date(), at: Date())
    }
    func firingRules(bot: String) async throws -> Set<String> {
        Set(firing.keys.filter { $0.hasPrefix(bot + "/") }.map { String($0.dropFirst(bot.count + 1)) })
    }
    func isSilenced(bot: String, metric: String) async throws -> Bool { false }
}

actor EventLog: AlertSink {
    var events: [String] = []
    func deliver(_ event: AlertEvent) async { events.append("\(event.bot)/\(event.ruleID)/\(event.kind.rawValue)") }
}

@Suite struct AlertEngineTests {
    static func memory(_ v: Double, _ t: Int64) -> [FleetwatchProtocol.Series] {
        [.init(name: "memory_usage_mb", kind: .gauge, timestamps: [t], values: [v])]
    }

    /// Two engines (two replicas) fed the same bot's data through one store notify once per transition.
    @Test func twoEnginesOneStoreNotifyOnce() async {
        let store = MemoryAlertStore()
        let log = EventLog()
        let engines = (0..<2).map { _ in
            AlertEngine(store: store, sink: log, profiles: { _ in .standard }, logger: Logger(label: "t"))
        }
        for e in engines { Task { await e.run() } }
        for (i, v) in [600.0, 650, 620, 100].enumerated() {
            for e in engines { e.submit(bot: "b", series: Self.memory(v, Int64(i))) }
            for e in engines { await e.drainForTests() }
        }
        #expect(await log.events == ["b/memory_usage_mb/fired", "b/memory_usage_mb/resolved"])
    }

    /// A threshold change that arrives while a batch awaits the store is used from the next batch on: the
    /// evaluation in flight must not write back the rules it loaded before the change.
    @Test func anInvalidationDuringAnEvaluationIsNotLost() async throws {
        let store = GatedAlertStore()
        let log = EventLog()
        let limit = Mutex(500.0)
        let profiles: AlertEngine.ProfileSource = { _ in
            ThresholdProfile(name: "t", rules: [Rule(id: "mem", kind: .above(metric: "memory_usage_mb"), limit: limit.withLock { $0 },
                                                     level: .warning, summary: "Memory")], enableEmergencyShutdown: false)
        }
        // A long cache lifetime: only an invalidation makes the engine read the rules again.
        let engine = AlertEngine(store: store, sink: log, profiles: profiles, profileTTLMs: 3_600_000, logger: Logger(label: "t"))
        Task { await engine.run() }
        engine.submit(bot: "b", series: Self.memory(600, 1))      // fires; the store holds the engine in `fire`
        try await store.waitUntilHeld()
        limit.withLock { $0 = 700 }                                 // the operator raises the limit meanwhile
        await engine.invalidate(bot: "b")
        await store.release()
        await engine.drainForTests()
        engine.submit(bot: "b", series: Self.memory(650, 2))      // under the new limit: resolved
        await engine.drainForTests()
        #expect(await log.events == ["b/mem/fired", "b/mem/resolved"])
    }

    /// The backlog counts batches submitted and not yet evaluated: those waiting behind a store that holds the
    /// engine, until it lets go.
    @Test func theBacklogCountsBatchesNotYetEvaluated() async throws {
        let store = GatedAlertStore()
        let engine = AlertEngine(store: store, sink: EventLog(), profiles: { _ in .standard }, logger: Logger(label: "t"))
        #expect(engine.backlog == 0)
        engine.submit(bot: "b", series: Self.memory(600, 1))      // fires: held in the store
        for i in 2...4 { engine.submit(bot: "b", series: Self.memory(600, Int64(i))) }
        #expect(engine.backlog == 4)
        Task { await engine.run() }
        try await store.waitUntilHeld()
        #expect(engine.backlog == 4, "the first is still being evaluated")
        await store.release()
        await engine.drainForTests()
        #expect(engine.backlog == 0)
    }
}

/// `MemoryAlertStore` whose first `fire` waits until the test releases it.
actor GatedAlertStore: AlertStore {
    let inner = MemoryAlertStore()
    private var held: CheckedContinuation<Void, Never>?
    private var released = false
    private var holding = false

    func waitUntilHeld() async throws {
        for _ in 0..<500 where !holding { try await Task.sleep(for: .milliseconds(10)) }
        if !holding { throw CancellationError() }
    }

    func release() {
        released = true
        held?.resume()
        held = nil
    }

    func fire(bot: String, rule: Rule, value: Double, state: String?) async throws -> AlertEvent? {
        if !released {
            holding = true
            await withCheckedContinuation { held = $0 }
        }
        return try await inner.fire(bot: bot, rule: rule, value: value, state: state)
    }
    func repeatIfDue(bot: String, rule: Rule, value: Double, state: String?, cooldownMs: Int64) async throws -> AlertEvent? {
        try await inner.repeatIfDue(bot: bot, rule: rule, value: value, state: state, cooldownMs: cooldownMs)
    }
    func resolve(bot: String, rule: Rule, value: Double, state: String?) async throws -> AlertEvent? {
        try await inner.resolve(bot: bot, rule: rule, value: value, state: state)
    }
    func firingRules(bot: String) async throws -> Set<String> { try await inner.firingRules(bot: bot) }
    func isSilenced(bot: String, metric: String) async throws -> Bool { false }
}
