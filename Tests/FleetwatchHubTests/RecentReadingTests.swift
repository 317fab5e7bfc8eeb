@testable import FleetwatchHub
import Synchronization
import Testing

/// The cached readings behind `/metrics`' allocator gauges.
struct RecentReadingTests {
    /// Within its age a reading is reused, not taken again; past it (an age of zero), every ask takes a new one.
    @Test func aReadingIsReusedWhileYoungerThanItsAge() {
        let taken = Atomic<Int>(0)
        let kept = RecentReading(maxAge: .seconds(3600)) { taken.add(1, ordering: .relaxed).newValue }
        #expect(kept.value == 1)
        #expect(kept.value == 1)
        #expect(taken.load(ordering: .relaxed) == 1)
        let fresh = RecentReading(maxAge: .zero) { taken.add(1, ordering: .relaxed).newValue }
        #expect(fresh.value == 2)
        #expect(fresh.value == 3)
    }
}
