import ServiceLifecycle
import Synchronization

/// One timer for all the agent connections of this hub. Every `interval` it runs each connection's check, which
/// wakes the connection only when something is due: a heartbeat to send while a message is slow, a silence or a
/// hello deadline to judge, batches deferred during an outage to have sent again.
///
/// A timer per connection cost as many wake-ups a second as the fleet sends batches (5,000 agents: 4,000 timer
/// firings and 4,000 loop wake-ups a second, almost all with nothing to do), on the cores that store the batches.
final class ConnectionTicker: Service, Sendable {
    /// A connection's check: cheap, never blocks, never waits (it runs on the ticker's task for every connection).
    typealias Check = @Sendable () -> Void

    struct Registration: Hashable, Sendable {
        fileprivate let id: UInt64
    }

    private struct Registry {
        var next: UInt64 = 0
        var checks: [UInt64: Check] = [:]
        var afterEach: [@Sendable () -> Void] = []
    }

    private let registry = Mutex(Registry())
    let interval: Duration

    init(interval: Duration) {
        self.interval = interval
    }

    /// Ticks at a quarter of the agents' heartbeat interval, so a due heartbeat or silence is judged at most a
    /// quarter interval late.
    convenience init(heartbeatInterval: Duration) {
        self.init(interval: heartbeatInterval / 4)
    }

    /// Adds a connection's check; `unregister` removes it when the connection ends.
    func register(_ check: @escaping Check) -> Registration {
        registry.withLock { r in
            r.next += 1
            r.checks[r.next] = check
            return Registration(id: r.next)
        }
    }

    func unregister(_ registration: Registration) {
        _ = registry.withLock { $0.checks.removeValue(forKey: registration.id) }
    }

    /// Runs `body` after every tick's checks (e.g. to log what they found, together).
    func afterEachTick(_ body: @escaping @Sendable () -> Void) {
        registry.withLock { $0.afterEach.append(body) }
    }

    /// Connections registered now.
    var count: Int { registry.withLock { $0.checks.count } }

    /// Runs every registered check once (the service does this every `interval`).
    func tick() {
        let (checks, after) = registry.withLock { (Array($0.checks.values), $0.afterEach) }
        for check in checks { check() }
        for body in after { body() }
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: self.interval)
                self.tick()
            }
        }
    }
}
