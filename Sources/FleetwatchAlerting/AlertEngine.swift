import FleetwatchProtocol
import Logging
import Synchronization

/// Evaluates every stored batch against its bot's rules and drives the alerts' lives through the store.
///
/// `submit` never waits for evaluation. Each bot's batches are evaluated in arrival order: most change no
/// alert and are evaluated as they are taken in; a batch that needs the alert store (a breach, a clearance, a
/// bot back from silence, rules to read) goes on in a task of the bot's own, with the bot's later batches
/// queued behind it, so a slow database or channel holds up neither ingest nor the other bots.
///
/// A bot's rules are cached. Once they are `profileTTLMs` old they are read again in the background while
/// the bot's batches go on being evaluated with the cached rules, so a busy database never holds evaluation
/// up (a fleet that connected at once would otherwise wait on thousands of reads every `profileTTLMs`, and its
/// batches would pile up meanwhile). Each reading is given an age of up to a quarter of `profileTTLMs` at
/// random, which spreads the fleet's readings out. Rules an operator changed (`invalidate`) are read before
/// the bot's next batch.
public actor AlertEngine {
    /// Where each bot's rules come from.
    public typealias ProfileSource = @Sendable (_ bot: String) async throws -> ThresholdProfile

    struct BotState {
        var evaluator: RuleEvaluator
        /// One tracker per rule seen firing or breached: it says when to ask the store (a breach that lasts
        /// costs a database statement per cooldown, not per batch).
        var trackers: [String: AlertTracker]
        var loadedAtMs: Int64
        var lastBatchMs: Int64
    }

    let store: any AlertStore
    let sink: any AlertSink
    let profiles: ProfileSource
    let cooldowns: Cooldowns
    let logger: Logger
    /// How long a bot's rules are cached before they are read again.
    let profileTTLMs: Int64
    /// The no-data rule, resolved when a bot that was silent reports again.
    let noDataRule: Rule?
    let noDataMs: Int64
    /// Called once (on the replica that opened the alert) when a rule with `emergencyStop` fires.
    let emergency: (@Sendable (_ bot: String, _ rule: Rule, _ value: Double) async -> Void)?
    private var bots: [String: BotState] = [:]
    /// Invalidations so far (of any bot): an evaluation that awaited while one arrived does not write back the
    /// rules it loaded before it (rare, so one counter serves every bot; no lookup per batch).
    private var invalidations: UInt64 = 0
    private var queues: [String: [[Series]]] = [:]
    private var running: Set<String> = []
    /// Rules read in the background, taken up at the bot's next batch.
    private var refreshed: [String: ThresholdProfile] = [:]
    private var refreshing: Set<String> = []
    /// `loadedAtMs` of rules that must be read before the bot's next batch.
    private static let mustReload = Int64.min / 2
    private let clock: any MillisecondClock
    private nonisolated let input: AsyncStream<(String, [Series])>
    private nonisolated let inputContinuation: AsyncStream<(String, [Series])>.Continuation
    /// Batches submitted and not yet evaluated.
    private nonisolated let waiting = Atomic<Int>(0)
    /// Called once for every submitted batch, when it was evaluated (or refused by a finished engine).
    private nonisolated let evaluated: (@Sendable () -> Void)?

    /// Batches submitted and not yet evaluated, over all bots: a figure that keeps growing says evaluation does
    /// not keep up with ingest (`fleetwatch_alert_evaluation_backlog` on `/metrics`).
    public nonisolated var backlog: Int { waiting.load(ordering: .relaxed) }

    public init(store: any AlertStore, sink: any AlertSink, profiles: @escaping ProfileSource, cooldowns: Cooldowns = Cooldowns(),
                profileTTLMs: Int64 = 30_000, noDataRule: Rule? = nil, noDataMs: Int64 = 120_000, logger: Logger,
                clock: any MillisecondClock = SystemClock.monotonic,
                emergency: (@Sendable (_ bot: String, _ rule: Rule, _ value: Double) async -> Void)? = nil,
                evaluated: (@Sendable () -> Void)? = nil) {
        self.clock = clock
        self.evaluated = evaluated
        self.emergency = emergency
        self.noDataRule = noDataRule
        self.noDataMs = noDataMs
        (input, inputContinuation) = AsyncStream.makeStream(of: (String, [Series]).self)
        self.store = store
        self.sink = sink
        self.profiles = profiles
        self.cooldowns = cooldowns
        self.profileTTLMs = profileTTLMs
        self.logger = logger
    }

    /// Hands a stored batch of `bot` to the engine without waiting; batches keep their order.
    public nonisolated func submit(bot: String, series: [Series]) {
        waiting.add(1, ordering: .relaxed)
        if case .terminated = inputContinuation.yield((bot, series)) {
            waiting.subtract(1, ordering: .relaxed)
            evaluated?()
        }
    }

    /// Evaluates submitted batches until cancelled.
    public func run() async {
        for await (bot, series) in input {
            enqueue(bot: bot, series: series)
        }
    }

    /// Stops accepting batches; `run` returns once the queue is read.
    public nonisolated func finish() {
        inputContinuation.finish()
    }

    private func enqueue(bot: String, series: [Series]) {
        // Most batches change no alert and need nothing from the store: they are evaluated right here, without a
        // task of their own (under load each task waits its turn behind every connection's work, and batches
        // piled up meanwhile). A batch that needs the store goes on in the bot's task; the bot's later batches
        // queue behind it.
        if !running.contains(bot), let state = cachedState(bot) {
            let seen = invalidations
            let step = prepare(bot: bot, state: consume state, series: series)
            if step.actions.isEmpty && !step.noData {
                bots[bot] = step.state
                finished()
                return
            }
            running.insert(bot)
            Task {
                await self.complete(bot, step, seen: seen)
                self.finished()
                await self.drain(bot)
            }
            return
        }
        queues[bot, default: []].append(series)
        guard running.insert(bot).inserted else { return }
        Task { await self.drain(bot) }
    }

    /// A batch was evaluated.
    private func finished() {
        waiting.subtract(1, ordering: .relaxed)
        evaluated?()
    }

    /// Forgets cached rules of `bot` (every bot when nil): the next batch reads them again.
    public func invalidate(bot: String?) {
        if let bot {
            bots[bot]?.loadedAtMs = Self.mustReload
            refreshed[bot] = nil
        } else {
            for key in bots.keys { bots[key]?.loadedAtMs = Self.mustReload }
            refreshed.removeAll()
        }
        invalidations += 1
    }

    /// Waits until the batches submitted so far have been taken in and evaluated, and the rules being read in
    /// the background were read (tests; gives up after about two seconds).
    public func drainForTests() async {
        var settled: Bool { running.isEmpty && queues.isEmpty && refreshing.isEmpty && waiting.load(ordering: .relaxed) == 0 }
        for _ in 0..<200 {
            await Task.yield()
            if settled { try? await Task.sleep(for: .milliseconds(5)) }
            if settled { return }
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    /// Waits until every queued batch has been evaluated (tests, graceful shutdown).
    public func idle() async {
        while !running.isEmpty { try? await Task.sleep(for: .milliseconds(5)) }
    }

    private func drain(_ bot: String) async {
        while let next = queues[bot]?.first {
            queues[bot]?.removeFirst()
            await evaluate(bot: bot, series: next)
            finished()
        }
        queues[bot] = nil
        running.remove(bot)
    }

    /// What evaluating one batch asks of the store, worked out without it.
    struct Step {
        var state: BotState
        var nowMs: Int64
        /// The bot is back from silence (or new to this replica): its no-data alert is resolved.
        var noData: Bool
        var actions: [(rule: Rule, observation: Observation, tracker: AlertTracker, action: AlertTracker.Action)]
    }

    /// Evaluates a batch against the bot's state: no store, no waiting. Takes up rules read in the background,
    /// and starts a reading when the cached ones are old. The state is handed over (taken out of `bots`), so its
    /// counter windows and trackers are changed in place: a copy kept by the caller would make every change to
    /// them copy the whole dictionary.
    private func prepare(bot: String, state: consuming BotState, series: [Series]) -> Step {
        let now = nowMs()
        if !refreshed.isEmpty, let p = refreshed.removeValue(forKey: bot) { state.evaluator.update(profile: p) }
        if now - state.loadedAtMs >= profileTTLMs {
            state.loadedAtMs = loadedAt(now)
            refresh(bot)
        }
        let noData = noDataRule != nil && (state.lastBatchMs == 0 || now - state.lastBatchMs >= noDataMs / 2)
        state.lastBatchMs = now
        var actions: [(rule: Rule, observation: Observation, tracker: AlertTracker, action: AlertTracker.Action)] = []
        let observations = state.evaluator.evaluate(series)
        let rules = state.evaluator.profile.rules
        for o in observations {
            // The observation names its rule's place among the evaluator's rules (these rules).
            let r = o.ruleIndex
            // Most bots have no alert firing and no tracker at all: no lookup then.
            let known = state.trackers.isEmpty ? nil : state.trackers[o.ruleID]
            var tracker = known ?? AlertTracker()
            if let action = tracker.observe(rules[r], value: o.value, nowMs: now, cooldowns: cooldowns) {
                actions.append((rules[r], o, tracker, action))
            } else if known != nil || tracker.isFiring {
                // A rule without a tracker that stays quiet keeps none: most rules, most batches, no second lookup.
                state.trackers[o.ruleID] = tracker.isFiring ? tracker : nil
            }
        }
        return Step(state: consume state, nowMs: now, noData: noData, actions: actions)
    }

    /// Asks the store what `step` needs, delivers the events, and puts the bot's state back.
    private func complete(_ bot: String, _ step: Step, seen: UInt64) async {
        var state = step.state
        do {
            if step.noData, let rule = noDataRule {
                if let event = try await store.resolve(bot: bot, rule: rule, value: 0, state: nil) { await sink.deliver(event) }
            }
            for (rule, o, before, action) in step.actions {
                var tracker = before
                var event: AlertEvent?
                switch action {
                case .fire:
                    event = try await store.fire(bot: bot, rule: rule, value: o.value, state: o.state)
                case .repeatIfDue:
                    event = try await store.repeatIfDue(bot: bot, rule: rule, value: o.value, state: o.state,
                                                       cooldownMs: cooldowns.ms(for: rule.level))
                    if event != nil { tracker.repeated(rule, nowMs: step.nowMs, cooldowns: cooldowns) }
                case .resolve:
                    event = try await store.resolve(bot: bot, rule: rule, value: o.value, state: o.state)
                }
                state.trackers[rule.id] = tracker.isFiring ? tracker : nil
                if var e = event {
                    e.silenced = try await store.isSilenced(bot: bot, metric: rule.metric)
                    await sink.deliver(e)
                    if e.kind == .fired, rule.emergencyStop, let emergency { await emergency(bot, rule, o.value) }
                }
            }
            // Rules invalidated while this batch awaited the store are read again for the next one.
            if invalidations != seen { state.loadedAtMs = Self.mustReload }
            bots[bot] = state
        } catch {
            logger.error("alerting: evaluating a batch of \(bot) failed: \(String(reflecting: error))")
            bots[bot] = nil   // reload state from the store next time
            refreshed[bot] = nil
        }
    }

    private func evaluate(bot: String, series: [Series]) async {
        let seen = invalidations
        let state: BotState
        do {
            state = try await botState(bot)
        } catch {
            logger.error("alerting: evaluating a batch of \(bot) failed: \(String(reflecting: error))")
            bots[bot] = nil
            return
        }
        await complete(bot, prepare(bot: bot, state: consume state, series: series), seen: seen)
    }

    /// The bot's cached state, taken out of the registry, if its rules need not be read first.
    private func cachedState(_ bot: String) -> BotState? {
        guard let s = bots.removeValue(forKey: bot) else { return nil }
        if s.loadedAtMs == Self.mustReload {
            bots[bot] = s
            return nil
        }
        return s
    }

    private func nowMs() -> Int64 { clock.nowMs }

    private func botState(_ bot: String) async throws -> BotState {
        let now = nowMs()
        // Taken out of the registry while the batch is evaluated (put back by `complete`), so the counter
        // windows are mutated in place rather than copied.
        if var s = bots.removeValue(forKey: bot) {
            if s.loadedAtMs == Self.mustReload {
                refreshed[bot] = nil
                s.evaluator.update(profile: try await profiles(bot))
                s.loadedAtMs = loadedAt(now)
            }
            return s
        }
        refreshed[bot] = nil
        let firing = try await store.firingRules(bot: bot)
        return BotState(evaluator: RuleEvaluator(profile: try await profiles(bot)),
                        trackers: Dictionary(uniqueKeysWithValues: firing.map { ($0, AlertTracker(firing: true)) }),
                        loadedAtMs: loadedAt(now), lastBatchMs: 0)
    }

    /// The load time to record for rules read at `now`: up to a quarter of the cache's lifetime earlier, at
    /// random, so bots whose rules were read together are read again at different times.
    private func loadedAt(_ now: Int64) -> Int64 {
        profileTTLMs >= 4 ? now - Int64.random(in: 0..<(profileTTLMs / 4)) : now
    }

    /// Reads `bot`'s rules in the background (once at a time per bot); the result is taken up at its next
    /// batch unless an operator's change arrived meanwhile (that change is read before the next batch).
    private func refresh(_ bot: String) {
        guard refreshing.insert(bot).inserted else { return }
        let seen = invalidations
        Task {
            var profile: ThresholdProfile?
            do {
                profile = try await profiles(bot)
            } catch {
                logger.warning("alerting: reading the rules of \(bot) again failed; its cached rules stay in use: \(String(reflecting: error))")
            }
            self.refreshFinished(bot, profile, seen: seen)
        }
    }

    private func refreshFinished(_ bot: String, _ profile: ThresholdProfile?, seen: UInt64) {
        refreshing.remove(bot)
        guard let profile else { return }
        if invalidations == seen {
            refreshed[bot] = profile
        } else if let s = bots[bot], s.loadedAtMs != Self.mustReload {
            // Rules changed meanwhile (this bot's or another's: one counter serves all), so what was read may be
            // stale: read again at the bot's next batch rather than a whole lifetime later.
            bots[bot]?.loadedAtMs = nowMs() - profileTTLMs
        }
    }
}
