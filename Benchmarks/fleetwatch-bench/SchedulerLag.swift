import FleetwatchProtocol
import NIOCore
import NIOPosix
import Synchronization

/// How late this process's tasks run: a task that sleeps 100 ms over and over records by how much each sleep
/// overran; and how late its NIO event loops run (`startEventLoops`), where the agents' connections read and
/// write. The load benchmark's 5,000 agents share this process and its two cores with the hub's machine: an
/// agent whose tasks wait seconds to run sends nothing, not even its heartbeat, and the hub rightly closes it as
/// silent (4008). The lateness says whether a close came from the hub or from this process.
final class SchedulerLag: Sendable {
    private let samples = Mutex<[(at: ContinuousClock.Instant, lateMs: Double)]>([])
    private let task = Mutex<Task<Void, Never>?>(nil)

    func start() {
        let t = Task { [self] in
            while !Task.isCancelled {
                let asked = ContinuousClock.now + .milliseconds(100)
                try? await Task.sleep(until: asked, clock: .continuous)
                let late = (ContinuousClock.now - asked).inSeconds * 1000
                samples.withLock { $0.append((.now, late)) }
            }
        }
        task.withLock { $0 = t }
    }

    func stop() {
        task.withLock { $0?.cancel() }
        loopTasks.withLock { $0.forEach { $0.cancel() } }
    }

    /// The most and the 99th percentile of the lateness between `from` and `to`, in milliseconds.
    func lateness(from: ContinuousClock.Instant, to: ContinuousClock.Instant) -> (max: Double, p99: Double)? {
        Self.summary(samples.withLock { s in s.filter { $0.at >= from && $0.at <= to }.map(\.lateMs) })
    }

    // The agents' connections run on NIO's event loops, not on the tasks above: a loop busy for seconds delays
    // every read and write of its connections (the agents' heartbeats too) while the tasks run on time.
    private let loopSamples = Mutex<[(at: ContinuousClock.Instant, lateMs: Double)]>([])
    private let loopTasks = Mutex<[RepeatedTask]>([])

    /// Also measures every event loop of `group` (NIO's shared one, which the agents' WebSocket clients use): a
    /// task repeated every 100 ms records by how much each run came later than 100 ms after the one before.
    func startEventLoops(_ group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        for loop in group.makeIterator() {
            let last = Mutex(ContinuousClock.now)
            let repeated = loop.scheduleRepeatedTask(initialDelay: .milliseconds(100), delay: .milliseconds(100)) { [self] _ in
                let now = ContinuousClock.now
                let late = last.withLock { before in defer { before = now }; return (now - before).inSeconds * 1000 - 100 }
                loopSamples.withLock { $0.append((now, max(0, late))) }
            }
            loopTasks.withLock { $0.append(repeated) }
        }
    }

    /// Like `lateness`, for the event loops (`startEventLoops`).
    func eventLoopLateness(from: ContinuousClock.Instant, to: ContinuousClock.Instant) -> (max: Double, p99: Double)? {
        Self.summary(loopSamples.withLock { s in s.filter { $0.at >= from && $0.at <= to }.map(\.lateMs) })
    }

    private static func summary(_ values: [Double]) -> (max: Double, p99: Double)? {
        let late = values.sorted()
        guard let max = late.last else { return nil }
        return (max, late[min(late.count - 1, Int(Double(late.count) * 0.99))])
    }
}
