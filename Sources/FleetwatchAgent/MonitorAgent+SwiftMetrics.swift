import CoreMetrics

/// An apple/swift-metrics backend that records into a `MonitorAgent`, so code already instrumented with
/// swift-metrics is monitored unchanged: `MetricsSystem.bootstrap(agent.metricsFactory)`.
///
/// Counters map to counters, recorders and gauges to gauges, meters to gauges, timers to durations.
/// Dimensions are appended to the label as `label.value1.value2` (sanitized to the wire's name alphabet).
public struct AgentMetricsFactory: MetricsFactory {
    let agent: MonitorAgent

    public init(agent: MonitorAgent) { self.agent = agent }

    static func name(_ label: String, _ dimensions: [(String, String)]) -> String {
        ([label] + dimensions.map { $0.1 }).joined(separator: ".")
    }

    public func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        AgentCounter(handle: agent.counter(Self.name(label, dimensions)))
    }

    public func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        AgentFloatCounter(handle: agent.gauge(Self.name(label, dimensions)))
    }

    public func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        AgentGauge(handle: agent.gauge(Self.name(label, dimensions)))
    }

    public func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        AgentGauge(handle: agent.gauge(Self.name(label, dimensions)))
    }

    public func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        AgentTimer(handle: agent.duration(Self.name(label, dimensions)))
    }

    public func destroyCounter(_ handler: any CounterHandler) {}
    public func destroyRecorder(_ handler: any RecorderHandler) {}
    public func destroyTimer(_ handler: any TimerHandler) {}
    public func destroyMeter(_ handler: any MeterHandler) {}
    public func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {}
}

extension MonitorAgent {
    /// A swift-metrics factory backed by this agent.
    public var metricsFactory: AgentMetricsFactory { AgentMetricsFactory(agent: self) }
}

final class AgentCounter: CounterHandler, Sendable {
    let handle: CounterHandle
    init(handle: CounterHandle) { self.handle = handle }
    func increment(by amount: Int64) { handle.increment(by: amount) }
    func reset() {}
}

final class AgentFloatCounter: FloatingPointCounterHandler, Sendable {
    let handle: GaugeHandle
    init(handle: GaugeHandle) { self.handle = handle }
    func increment(by amount: Double) { if amount > 0 { handle.add(amount) } }
    func reset() {}
}

final class AgentGauge: RecorderHandler, MeterHandler, Sendable {
    let handle: GaugeHandle
    init(handle: GaugeHandle) { self.handle = handle }
    func record(_ value: Int64) { handle.set(Double(value)) }
    func record(_ value: Double) { handle.set(value) }
    func set(_ value: Int64) { handle.set(Double(value)) }
    func set(_ value: Double) { handle.set(value) }
    func increment(by amount: Double) { handle.add(amount) }
    func decrement(by amount: Double) { handle.add(-amount) }
}

final class AgentTimer: TimerHandler, Sendable {
    let handle: DurationHandle
    init(handle: DurationHandle) { self.handle = handle }
    func recordNanoseconds(_ duration: Int64) { handle.record(nanoseconds: duration) }
}
