import FleetwatchProtocol
import Logging
import NIOCore
import NIOSSL
import NIOWebSocket
import ServiceLifecycle
import Synchronization
import WSClient
#if canImport(Glibc)
import Glibc
#endif

/// The monitoring agent a bot runs in-process.
///
/// ```swift
/// let agent = try MonitorAgent(configuration: .init(hubURL: "ws://hub:8000/agent/v1", botID: "kraken-1", token: token))
/// let trades = agent.counter("trades_executed")
/// Task { try await agent.run() }
/// trades.increment()
/// ```
/// Recording never blocks, throws or allocates; `run()` flushes, connects and reconnects until cancelled
/// or until graceful shutdown, and never throws for network trouble.
public final class MonitorAgent: Service, Sendable {
    public let configuration: AgentConfiguration
    let registry: MetricRegistry
    let collectors: CollectorRunner
    let core: AgentCore
    let logger: Logger
    /// Emergency work runs one piece at a time, in arrival order (a resume never overtakes the stop before it).
    private let commandChain = Mutex<Task<Void, Never>?>(nil)

    /// - Parameter onSeal: called with every batch as it is sealed (tests and benchmarks use it).
    public init(configuration: AgentConfiguration, logger: Logger = Logger(label: "fleetwatch.agent"),
                onSeal: (@Sendable (SealedBatch) -> Void)? = nil) throws {
        self.configuration = configuration
        self.logger = logger
        registry = MetricRegistry(durationCapacity: configuration.durationCapacity,
                                  stateRepeatMs: Int64(configuration.stateRepeatInterval.inSeconds * 1000))
        collectors = CollectorRunner(timeout: configuration.collectorTimeout, logger: logger)
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let epoch = UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec / 1000)
        core = try AgentCore(configuration: configuration, epoch: epoch, logger: logger, onSeal: onSeal)
        if configuration.processCollector {
            collectors.add(ProcessCollector(logFilePath: configuration.logFilePath))
        }
    }

    /// The counter named `name`, created on first use.
    public func counter(_ name: String) -> CounterHandle { registry.counter(name) }
    /// The gauge named `name`, created on first use.
    public func gauge(_ name: String) -> GaugeHandle { registry.gauge(name) }
    /// The duration metric named `name`, created on first use.
    public func duration(_ name: String) -> DurationHandle { registry.duration(name) }
    /// The string state named `name`, created on first use.
    public func state(_ name: String) -> StateHandle { registry.state(name) }

    /// Registers what the bot does on an emergency stop from the hub (stop trading, cancel orders, liquidate,
    /// emergency mode) and on resume. Without a handler, commands are reported to the hub as failed.
    public func setEmergencyHandler(_ handler: any EmergencyHandler) async { await core.setHandler(handler) }

    /// The bot declares an emergency itself: runs the handler's steps now (stop trading, cancel orders,
    /// liquidate if asked and enabled, emergency mode) and records it at the hub as bot-initiated, latched until
    /// an operator resumes. Returns the command id. Works while the hub is away (sent when it is back).
    @discardableResult
    public func declareEmergency(reason: String, liquidate: Bool = false) async -> CommandID {
        let (command, work) = await core.declare(reason: String(reason.utf8.prefix(1000)) ?? reason, liquidate: liquidate)
        if let work { await enqueue(work).value }
        return command.commandID
    }

    /// Whether the bot is in emergency mode.
    public var isInEmergencyMode: Bool { get async { await core.emergencyMode } }

    /// Queues `work` behind the emergency work already queued; the task ends when it has run.
    @discardableResult
    func enqueue(_ work: CommandWork) -> Task<Void, Never> {
        commandChain.withLock { last in
            let previous = last
            let task = Task { await previous?.value; await self.perform(work) }
            last = task
            return task
        }
    }

    func perform(_ work: CommandWork) async {
        switch work {
        case .run(let command, let steps, let skipped, let reportReceived, let handler):
            await EmergencyRunner.run(command, steps: steps, handler: handler, liquidationSkipped: skipped,
                                      reportReceived: reportReceived, clock: { UInt64(CoarseClock.preciseNowMs()) }) { result in
                await self.core.report(result)
            }
        case .relatch(let handler):
            do {
                _ = try await handler.stopTrading()
                _ = try await handler.setEmergencyMode()
                await core.relatched()
            } catch {
                logger.critical("re-entering emergency mode failed: \(error)")
            }
        }
    }

    /// Adds a collector polled at each flush.
    public func register(_ collector: any MetricCollector) { collectors.add(collector) }

    /// This run's boot epoch.
    public var epoch: UInt64 { get async { await core.epoch } }

    /// Where the agent stands.
    public var status: AgentStatus { get async { await core.status } }

    /// Takes one snapshot of every metric and collector and queues it for sending.
    public func flush() async {
        await flush(waitForDisk: true)
    }

    /// One snapshot; with `waitForDisk`, returns once its batch is on disk. The periodic loop does not wait: a
    /// stalled disk must not stop the samples from reaching the hub.
    func flush(waitForDisk: Bool) async {
        let now = CoarseClock.preciseNowMs()
        var (series, refused) = registry.snapshot(nowMs: now)
        series += await collectors.collect(nowMs: now)
        let dropped = await core.droppedSamples
        if dropped > 0 {
            series.append(Series(name: "fleetwatch_agent_dropped_samples", kind: .counter,
                                 timestamps: [now], values: [Double(dropped)]))
        }
        if refused > 0 {
            registry.counter("fleetwatch_agent_refused_values").increment(by: refused)
        }
        let refusedByHub = await core.hubRefusedSamples
        if refusedByHub > 0 {
            series.append(Series(name: "fleetwatch_agent_hub_refused_samples", kind: .counter,
                                 timestamps: [now], values: [Double(refusedByHub)]))
        }
        await core.add(series)
        if waitForDisk { await core.disk.drain() }   // the write itself is off the core's actor
    }

    /// Flushes every `flushInterval` and keeps a connection to the hub, until cancelled or shut down.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.flushLoop() }
                group.addTask { await self.connectionLoop() }
                await group.waitForAll()
            }
        }
        await flush()
        await core.sealPending()
        await core.disk.drain()
        await core.stop()
    }

    private func flushLoop() async {
        let clock = ContinuousClock()
        var next = clock.now.advanced(by: configuration.flushInterval)
        while !Task.isCancelled {
            do { try await clock.sleep(until: next) } catch { return }
            next = next.advanced(by: configuration.flushInterval)
            if next < clock.now { next = clock.now.advanced(by: configuration.flushInterval) }
            await flush(waitForDisk: false)
        }
    }

    private func connectionLoop() async {
        var action = await core.start()
        while !Task.isCancelled {
            switch action {
            case .connect:
                action = await connectOnce()
            case .wait(let delay):
                do { try await Task.sleep(for: delay) } catch { return }
                action = await core.waited()
            default:
                return
            }
        }
    }

    /// TLS for `wss://` hubs: certificate and host name verified, against `trustedCertificatesPath` if set.
    private func tlsConfiguration() throws -> TLSConfiguration? {
        guard configuration.hubURL.lowercased().hasPrefix("wss://") else { return nil }
        var tls = TLSConfiguration.makeClientConfiguration()
        if let path = configuration.trustedCertificatesPath {
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(path))
        }
        return tls
    }

    private func connectOnce() async -> ConnectionStateMachine.Action {
        switch await attemptWithTimeout() {
        case .closed(let close):
            let code = close.map { CloseCode(rawValue: UInt16(webSocketErrorCode: $0.closeCode)) }
            return await core.closed(code: code, error: nil)
        case .failed(let error):
            if !Task.isCancelled { logger.debug("connection to \(configuration.hubURL) failed: \(error)") }
            return await core.closed(code: nil, error: error)
        case .timedOut:
            logger.debug("connection to \(configuration.hubURL) not open after \(configuration.connectTimeout): retrying")
            return await core.closed(code: nil, error: ConnectTimeout(after: configuration.connectTimeout))
        }
    }

    enum Attempt: Sendable {
        case closed(WebSocketCloseFrame?)
        case failed(any Error)
        case timedOut
    }

    /// Who won the race between an attempt opening and its timeout, and the one answer to the caller.
    final class AttemptGate: Sendable {
        enum Phase { case connecting, open, abandoned }
        private struct State {
            var phase = Phase.connecting
            var outcome: Attempt?
            var waiter: CheckedContinuation<Attempt, Never>?
            var answered = false
        }
        private let state = Mutex(State())

        /// Moves from connecting to `phase`; false if the other side already moved.
        func move(to phase: Phase) -> Bool {
            state.withLock { s in
                guard s.phase == .connecting else { return false }
                s.phase = phase
                return true
            }
        }

        /// The first outcome wins; it goes to the waiter now or when it arrives.
        func finish(_ outcome: Attempt) {
            let waiter = state.withLock { s -> CheckedContinuation<Attempt, Never>? in
                guard s.outcome == nil else { return nil }
                s.outcome = outcome
                return s.answered ? nil : s.waiter.map { w in s.answered = true; return w }
            }
            waiter?.resume(returning: outcome)
        }

        func wait(_ continuation: CheckedContinuation<Attempt, Never>) {
            let ready = state.withLock { s -> Attempt? in
                if let outcome = s.outcome, !s.answered { s.answered = true; return outcome }
                s.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    struct ConnectTimeout: Error, CustomStringConvertible {
        let after: Duration
        var description: String { "the connection did not open within \(after)" }
    }

    /// One connection attempt. The WebSocket client has no timeout of its own for the TCP connect and the
    /// upgrade, and does not give up when the peer vanishes meanwhile; an attempt not open after
    /// `connectTimeout` is abandoned (cancelled, and refused by the handler should it open later).
    /// Cancelling the caller cancels the attempt.
    private func attemptWithTimeout() async -> Attempt {
        let config = WebSocketClientConfiguration(maxFrameSize: configuration.maxFrameBytes, closeTimeout: .seconds(2))
        let gate = AttemptGate()
        let hubURL = configuration.hubURL, timeout = configuration.connectTimeout, logger = self.logger
        let tls: TLSConfiguration?
        do { tls = try tlsConfiguration() } catch { return .failed(error) }
        let attempt = Task {
            do {
                let close = try await WebSocketClient.connect(url: hubURL, configuration: config, tlsConfiguration: tls,
                                                              logger: logger) { inbound, outbound, _ in
                    guard gate.move(to: .open) else { return }
                    try await self.session(inbound: inbound, outbound: outbound)
                }
                gate.finish(.closed(close))
            } catch {
                gate.finish(.failed(error))
            }
        }
        let timer = Task {
            try await Task.sleep(for: timeout)
            if gate.move(to: .abandoned) {
                attempt.cancel()
                gate.finish(.timedOut)
            }
        }
        defer { timer.cancel() }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { gate.wait($0) }
        } onCancel: {
            attempt.cancel()
            gate.finish(.failed(CancellationError()))
        }
    }

    private func session(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async throws {
        let (hello, wake) = await core.opened(botID: configuration.botID, token: configuration.token,
                                              agentVersion: configuration.agentVersion)
        try await outbound.write(.binary(hello))
        let maxFrame = configuration.maxFrameBytes
        let tick = min(configuration.heartbeatInterval / 4, .milliseconds(250))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for try await message in inbound.messages(maxSize: maxFrame) {
                    guard case .binary(let bytes) = message else { continue }
                    if let work = await self.core.received(try Frame.decode(bytes)) { self.enqueue(work) }
                }
            }
            group.addTask {
                var iterator = wake.makeAsyncIterator()
                let ticker = Task {
                    while !Task.isCancelled {
                        try await Task.sleep(for: tick)
                        await self.core.poke()
                    }
                }
                defer { ticker.cancel() }
                while true {
                    let work = await self.core.nextWork()
                    if work.closeSilent {
                        try await outbound.close(.unknown(CloseCode.heartbeatTimeout.rawValue), reason: "hub silent")
                        return
                    }
                    for frame in work.frames { try await outbound.write(.binary(frame)) }
                    guard await iterator.next() != nil else { return }
                }
            }
            try await group.next()
            group.cancelAll()
        }
    }
}
