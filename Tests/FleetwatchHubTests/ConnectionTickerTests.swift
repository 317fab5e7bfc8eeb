@testable import FleetwatchHub
import Synchronization
import Testing

/// The hub's one timer runs the check of every connection registered at the tick, and none of a connection
/// that ended.
struct ConnectionTickerTests {
    @Test func eachTickRunsTheChecksOfTheConnectionsRegisteredThen() {
        let ticker = ConnectionTicker(interval: .seconds(1))
        let runs = Mutex<[String: Int]>([:])
        let a = ticker.register { runs.withLock { $0["a", default: 0] += 1 } }
        let b = ticker.register { runs.withLock { $0["b", default: 0] += 1 } }
        #expect(a != b)
        #expect(ticker.count == 2)
        ticker.tick()
        ticker.tick()
        ticker.unregister(a)
        ticker.tick()
        #expect(runs.withLock { $0 } == ["a": 2, "b": 3])
        ticker.unregister(b)
        ticker.unregister(b)                                  // twice: harmless
        ticker.tick()
        #expect(ticker.count == 0)
        #expect(runs.withLock { $0 } == ["a": 2, "b": 3])
    }

    /// A check may register or unregister (a connection that ends during a tick) without deadlocking the ticker.
    @Test func aCheckMayChangeTheRegistry() {
        let ticker = ConnectionTicker(interval: .seconds(1))
        let registered = Mutex<ConnectionTicker.Registration?>(nil)
        let ran = Mutex(0)
        let first = ticker.register {
            ran.withLock { $0 += 1 }
            registered.withLock { r in if r == nil { r = ticker.register { ran.withLock { $0 += 100 } } } }
        }
        ticker.tick()
        #expect(ran.withLock { $0 } == 1)                     // the new check runs from the next tick on
        ticker.unregister(first)
        ticker.tick()
        #expect(ran.withLock { $0 } == 101)
    }

    /// As a service: it ticks every interval until the group shuts down gracefully.
    @Test(.timeLimit(.minutes(1)))
    func theServiceTicksUntilCancelled() async throws {
        let ticker = ConnectionTicker(interval: .milliseconds(20))
        let ran = Mutex(0)
        _ = ticker.register { ran.withLock { $0 += 1 } }
        let service = Task { try await ticker.run() }
        for _ in 0..<500 where ran.withLock({ $0 }) < 3 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(ran.withLock { $0 } >= 3)
        service.cancel()
        try await service.value
    }
}
