@testable import FleetwatchHub
import Synchronization
import Testing

/// Stall warnings found in one tick are logged together: the first few by name, the rest in one counted line, so
/// thousands of connections held at once (a full hub-wide backlog, a slow database) write a handful of lines.
struct StallReportsTests {
    @Test func aFewAreNamedAndTheRestCounted() {
        let reports = StallReports()
        let built = Mutex(0)
        for i in 0..<2_000 {
            reports.add {
                built.withLock { $0 += 1 }
                return "bot-\(i) stuck"
            }
        }
        let lines = reports.take()
        #expect(lines.count == StallReports.named + 1)
        #expect(Array(lines.prefix(StallReports.named)) == (0..<StallReports.named).map { "bot-\($0) stuck" })
        #expect(lines.last?.hasPrefix("\(2_000 - StallReports.named) more agent connections stuck") == true)
        #expect(built.withLock { $0 } == StallReports.named)   // the unnamed lines were never built
        #expect(reports.take().isEmpty)                         // the next tick starts empty
        reports.add { "alone" }
        #expect(reports.take() == ["alone"])
    }

    /// The ticker runs every connection's check, then what runs after each tick (the stall log), in that order.
    @Test func theTickerRunsItsAfterTickWorkAfterTheChecks() {
        let ticker = ConnectionTicker(interval: .seconds(1))
        let order = Mutex<[String]>([])
        let a = ticker.register { order.withLock { $0.append("check") } }
        _ = ticker.register { order.withLock { $0.append("check") } }
        ticker.afterEachTick { order.withLock { $0.append("after") } }
        ticker.tick()
        #expect(order.withLock { $0 } == ["check", "check", "after"])
        ticker.unregister(a)
        ticker.tick()
        #expect(order.withLock { $0 } == ["check", "check", "after", "check", "after"])
    }
}
