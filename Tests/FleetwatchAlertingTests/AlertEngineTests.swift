import FleetwatchAlerting
import FleetwatchProtocol
import FleetwatchTestSupport
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

    /// The engine gives back every batch it was handed once, when it has evaluated it (the hub's readers wait on
    /// that count), and a batch a finished engine refuses at once.
    @Test func everyBatchIsGivenBackOnceEvaluated() async throws {
        let store = GatedAlertStore()
        let given = Atomic<Int>(0)
        let engine = AlertEngine(store: store, sink: EventLog(), profiles: { _ in .standard }, logger: Logger(label: "t"),
                                 evaluated: { given.add(1, ordering: .relaxed) })
        Task { await engine.run() }
        for i in 1...4 { engine.submit(bot: "b", series: Self.memory(600, Int64(i))) }   // the first fires: held
        engine.submit(bot: "c", series: Self.memory(100, 1))
        try await store.waitUntilHeld()
        await engine.drainForTests()
        #expect(given.load(ordering: .relaxed) == 1, "only c's batch was evaluated while b's first is held")
        await store.release()
        await engine.drainForTests()
        #expect(given.load(ordering: .relaxed) == 5)
        engine.finish()
        engine.submit(bot: "b", series: Self.memory(600, 9))
        #expect(given.load(ordering: .relaxed) == 6, "a finished engine gives the batch back at once")
    }

    /// Batches that change no alert are evaluated as they arrive, the others in the bot's task with its later
    /// batches queued behind: whether the store answers at once or slowly (so that batches queue), the same
    /// batches give the same transitions, in order, and counters' rates see every reading once.
    @Test func slowOrQuickStoreTheSameBatchesGiveTheSameAlerts() async throws {
        let profile = ThresholdProfile(name: "t", rules: [
            Rule(id: "mem", kind: .above(metric: "memory_usage_mb"), limit: 500, level: .warning, summary: "Memory"),
            Rule(id: "orders", kind: .rateAbove(counter: "orders_total", windowSeconds: 60, perSeconds: 60), limit: 100,
                 level: .warning, summary: "Orders"),
        ], enableEmergencyShutdown: false)
        let memory: [Double] = [100, 600, 610, 100, 90, 700, 720, 100, 100, 650]
        func run(delayMs: Int) async -> [String] {
            let log = EventLog()
            let engine = AlertEngine(store: SlowAlertStore(delayMs: delayMs), sink: log, profiles: { _ in profile },
                                     logger: Logger(label: "t"))
            Task { await engine.run() }
            var orders = 0.0
            for (i, m) in memory.enumerated() {
                let t = Int64(1_000_000 + i * 1000)
                orders += i < 5 ? 1 : 50                   // the rise in a minute passes 100 at the 7th batch: fires
                engine.submit(bot: "b", series: [
                    .init(name: "memory_usage_mb", kind: .gauge, timestamps: [t], values: [m]),
                    .init(name: "orders_total", kind: .counter, timestamps: [t], values: [orders]),
                ])
                if i % 3 == 0 { await Task.yield() }
            }
            for _ in 0..<20 { await engine.drainForTests() }
            return await log.events
        }
        let quick = await run(delayMs: 0)
        let slow = await run(delayMs: 20)
        #expect(quick == slow)
        #expect(quick.filter { $0 == "b/mem/fired" }.count == 3, "\(quick)")
        #expect(quick.filter { $0 == "b/mem/resolved" }.count == 2, "\(quick)")
        #expect(quick.contains("b/orders/fired"), "\(quick)")
    }

    /// A bot back from silence resolves its no-data alert also when its batch would otherwise be evaluated as it
    /// arrives (cached rules, nothing breached); a batch right after asks nothing.
    @Test func aBotBackFromSilenceResolvesItsNoDataAlert() async throws {
        let clock = ManualClock()
        let store = MemoryAlertStore()
        let log = EventLog()
        let silent = Rule(id: "bot_silent", kind: .above(metric: "seconds_since_last_report"), limit: 0, level: .critical,
                          summary: "Silent")
        let engine = AlertEngine(store: store, sink: log, profiles: { _ in .standard }, noDataRule: silent, noDataMs: 120_000,
                                 logger: Logger(label: "t"), clock: clock)
        Task { await engine.run() }
        engine.submit(bot: "b", series: Self.memory(100, 1))     // first seen: the (absent) alert is resolved: nothing
        await engine.drainForTests()
        _ = try await store.fire(bot: "b", rule: silent, value: 130, state: nil)   // the silent-bot watcher fired it
        clock.advance(ms: 60_000)
        engine.submit(bot: "b", series: Self.memory(100, 2))     // back after half the no-data time: resolved
        await engine.drainForTests()
        engine.submit(bot: "b", series: Self.memory(100, 3))     // right after: nothing to ask
        await engine.drainForTests()
        #expect(await log.events == ["b/bot_silent/resolved"])
        #expect(try await store.firingRules(bot: "b").isEmpty)
    }

    /// Rules read in the background before an operator's change are not used after it, even when the bot's
    /// state was dropped by a failed evaluation in between (its rules are then read afresh, and must stay).
    @Test func aChangeWinsOverRulesReadBeforeIt() async throws {
        let clock = ManualClock()
        let limit = Mutex(500.0)
        let store = FailingOnceAlertStore()
        let log = EventLog()
        let engine = AlertEngine(store: store, sink: log, profiles: { _ in Self.memoryRule(limit: limit.withLock { $0 }) },
                                 profileTTLMs: 30_000, logger: Logger(label: "t"), clock: clock)
        Task { await engine.run() }
        engine.submit(bot: "b", series: Self.memory(100, 1))
        await engine.drainForTests()
        clock.advance(ms: 30_000)
        await store.failNextFire()
        engine.submit(bot: "b", series: Self.memory(600, 2))     // starts a background reading (limit 500), fails to fire
        await engine.drainForTests()
        limit.withLock { $0 = 700 }
        await engine.invalidate(bot: "b")                         // the operator's change
        engine.submit(bot: "b", series: Self.memory(650, 3))     // state read afresh: 650 is under 700
        await engine.drainForTests()
        engine.submit(bot: "b", series: Self.memory(650, 4))
        await engine.drainForTests()
        let events = await log.events
        #expect(events.isEmpty, "\(events): the rules read before the change were used")
        engine.submit(bot: "b", series: Self.memory(750, 5))
        await engine.drainForTests()
        #expect(await log.events == ["b/mem/fired"])
    }

    static func memoryRule(limit: Double) -> ThresholdProfile {
        ThresholdProfile(name: "t", rules: [Rule(id: "mem", kind: .above(metric: "memory_usage_mb"), limit: limit,
                                                 level: .warning, summary: "Memory")], enableEmergencyShutdown: false)
    }

    /// Rules past their cache lifetime are read again in the background: while that reading waits on a busy
    /// database, the bot's batches are still evaluated with the cached rules; the rules read are used from the
    /// batch after the reading on.
    @Test func expiredRulesAreReadAgainWithoutHoldingEvaluationUp() async throws {
        let clock = ManualClock()
        let source = HeldProfiles(first: Self.memoryRule(limit: 500), later: Self.memoryRule(limit: 700))
        let log = EventLog()
        let engine = AlertEngine(store: MemoryAlertStore(), sink: log, profiles: { _ in await source.profile() },
                                 profileTTLMs: 30_000, logger: Logger(label: "t"), clock: clock)
        Task { await engine.run() }
        engine.submit(bot: "b", series: Self.memory(400, 1))
        await engine.drainForTests()
        clock.advance(ms: 30_000)
        engine.submit(bot: "b", series: Self.memory(600, 2))       // the rules are read again, and that reading waits
        await engine.drainForTests()
        #expect(await log.events == ["b/mem/fired"], "evaluated with the cached limit of 500 while the reading waits")
        #expect(engine.backlog == 0)
        #expect(try await eventually(.seconds(30)) { await source.calls >= 2 })
        #expect(await source.calls == 2)
        await source.release()
        var t: Int64 = 3
        while await log.events.count < 2 && t < 300 {                // once the reading is taken up, 650 is under 700
            engine.submit(bot: "b", series: Self.memory(650, t))
            await engine.drainForTests()
            t += 1
        }
        #expect(await log.events == ["b/mem/fired", "b/mem/resolved"])
        #expect(await source.calls == 2, "one reading per lifetime, not one per batch")
    }

    /// A fleet whose rules were read together is not read again all at once: each reading is given an age of
    /// up to a quarter of the lifetime, so after 85 % of it some bots' rules are read again and others' are not.
    @Test func aFleetLoadedTogetherIsReadAgainSpreadOut() async throws {
        let clock = ManualClock()
        let calls = Mutex([String: Int]())
        let engine = AlertEngine(store: MemoryAlertStore(), sink: EventLog(),
                                 profiles: { bot in calls.withLock { $0[bot, default: 0] += 1 }; return .standard },
                                 profileTTLMs: 40_000, logger: Logger(label: "t"), clock: clock)
        Task { await engine.run() }
        let bots = (0..<200).map { "bot-\($0)" }
        for bot in bots { engine.submit(bot: bot, series: Self.memory(100, 1)) }
        await engine.drainForTests()
        #expect(calls.withLock { $0.values.allSatisfy { $0 == 1 } && $0.count == 200 })
        clock.advance(ms: 34_000)
        for bot in bots { engine.submit(bot: bot, series: Self.memory(100, 2)) }
        await engine.drainForTests()
        try await Task.sleep(for: .milliseconds(50))
        let readAgain = calls.withLock { $0.values.filter { $0 == 2 }.count }
        #expect(readAgain > 0 && readAgain < 200, "\(readAgain) of 200 read again at 85 % of the lifetime")
        clock.advance(ms: 6_000)                                      // the whole lifetime: every bot's rules
        for bot in bots { engine.submit(bot: bot, series: Self.memory(100, 3)) }
        await engine.drainForTests()
        #expect(try await eventually(.seconds(30)) { calls.withLock { $0.values.allSatisfy { $0 >= 2 } } })
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

/// `MemoryAlertStore` with a step of the test's own before each `fire`; everything else goes straight through.
protocol FireHookedAlertStore: AlertStore {
    var inner: MemoryAlertStore { get }
    func beforeFire() async throws
}

extension FireHookedAlertStore {
    func fire(bot: String, rule: Rule, value: Double, state: String?) async throws -> AlertEvent? {
        try await beforeFire()
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

/// `MemoryAlertStore` whose first `fire` waits until the test releases it.
actor GatedAlertStore: FireHookedAlertStore {
    nonisolated let inner = MemoryAlertStore()
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

    func beforeFire() async throws {
        if !released {
            holding = true
            await withCheckedContinuation { held = $0 }
        }
    }
}

/// A rule source whose first reading answers at once and whose later readings wait until the test releases them
/// (a database busy with other work).
actor HeldProfiles {
    let first: ThresholdProfile
    let later: ThresholdProfile
    private(set) var calls = 0
    private var released = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(first: ThresholdProfile, later: ThresholdProfile) {
        self.first = first
        self.later = later
    }

    func profile() async -> ThresholdProfile {
        calls += 1
        if calls == 1 { return first }
        if !released { await withCheckedContinuation { waiting.append($0) } }
        return later
    }

    func release() {
        released = true
        for w in waiting { w.resume() }
        waiting = []
    }
}

/// `MemoryAlertStore` that takes `delayMs` to answer every transition (a busy database).
actor SlowAlertStore: AlertStore {
    let inner = MemoryAlertStore()
    let delayMs: Int
    init(delayMs: Int) { self.delayMs = delayMs }

    private func pause() async { if delayMs > 0 { try? await Task.sleep(for: .milliseconds(delayMs)) } }

    func fire(bot: String, rule: Rule, value: Double, state: String?) async throws -> AlertEvent? {
        await pause()
        return try await inner.fire(bot: bot, rule: rule, value: value, state: state)
    }
    func repeatIfDue(bot: String, rule: Rule, value: Double, state: String?, cooldownMs: Int64) async throws -> AlertEvent? {
        await pause()
        return try await inner.repeatIfDue(bot: bot, rule: rule, value: value, state: state, cooldownMs: cooldownMs)
    }
    func resolve(bot: String, rule: Rule, value: Double, state: String?) async throws -> AlertEvent? {
        await pause()
        return try await inner.resolve(bot: bot, rule: rule, value: value, state: state)
    }
    func firingRules(bot: String) async throws -> Set<String> { try await inner.firingRules(bot: bot) }
    func isSilenced(bot: String, metric: String) async throws -> Bool { false }
}

/// `MemoryAlertStore` whose next `fire` throws once when told to (a database that failed a statement).
actor FailingOnceAlertStore: FireHookedAlertStore {
    struct Failed: Error {}
    nonisolated let inner = MemoryAlertStore()
    private var failFire = false
    func failNextFire() { failFire = true }

    func beforeFire() async throws {
        if failFire { failFire = false; throw Failed() }
    }
}
