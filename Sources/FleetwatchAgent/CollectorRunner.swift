import FleetwatchProtocol
import Logging
import Synchronization

/// Polls collectors concurrently with a deadline. A collector still running from an earlier flush is
/// skipped, so a hung collector costs one task, not one per flush.
final class CollectorRunner: Sendable {
    let timeout: Duration
    let logger: Logger
    let collectors = Mutex<[any MetricCollector]>([])
    let busy = Mutex<Set<Int>>([])

    init(timeout: Duration, logger: Logger) {
        self.timeout = timeout
        self.logger = logger
    }

    func add(_ collector: any MetricCollector) {
        collectors.withLock { $0.append(collector) }
    }

    /// Runs every idle collector; returns what answered in time as series stamped `nowMs`.
    func collect(nowMs: Int64) async -> [Series] {
        let all = collectors.withLock { $0 }
        var series: [Series] = []
        await withTaskGroup(of: [CollectedValue].self) { group in
            for (index, collector) in all.enumerated() {
                let idle = busy.withLock { $0.insert(index).inserted }
                guard idle else {
                    logger.warning("collector \(collector.name) is still running from an earlier flush; skipped")
                    continue
                }
                group.addTask { await self.run(collector, index: index) }
            }
            for await values in group {
                for v in values {
                    let name = MetricRegistry.sanitize(v.name)
                    switch v.value {
                    case .number(let x) where x.isFinite && v.kind != .state:
                        series.append(Series(name: name, kind: v.kind, timestamps: [nowMs], values: [x]))
                    case .state(let s):
                        series.append(Series(name: name, kind: .state, timestamps: [nowMs],
                                             states: [WireProtocol.stateValue(s)]))
                    default:
                        continue
                    }
                }
            }
        }
        return series
    }

    /// Runs one collector in its own task and waits at most `timeout` for it.
    private func run(_ collector: any MetricCollector, index: Int) async -> [CollectedValue] {
        let once = OnceContinuation()
        let logger = self.logger
        let timeout = self.timeout
        return await withCheckedContinuation { (continuation: CheckedContinuation<[CollectedValue], Never>) in
            once.set(continuation)
            Task {
                defer { _ = self.busy.withLock { $0.remove(index) } }
                do {
                    once.resume(try await collector.collect())
                } catch {
                    logger.warning("collector \(collector.name) failed: \(error)")
                    once.resume([])
                }
            }
            Task {
                try? await Task.sleep(for: timeout)
                if once.resume([]) {
                    logger.warning("collector \(collector.name) did not answer within \(timeout)")
                }
            }
        }
    }
}

/// A continuation resumed by whichever of several tasks finishes first.
private final class OnceContinuation: Sendable {
    private let slot = Mutex<CheckedContinuation<[CollectedValue], Never>?>(nil)

    func set(_ c: CheckedContinuation<[CollectedValue], Never>) { slot.withLock { $0 = c } }

    /// Resumes if nobody did yet; returns whether this call did.
    @discardableResult
    func resume(_ values: [CollectedValue]) -> Bool {
        guard let c = slot.withLock({ s -> CheckedContinuation<[CollectedValue], Never>? in
            defer { s = nil }
            return s
        }) else { return false }
        c.resume(returning: values)
        return true
    }
}
