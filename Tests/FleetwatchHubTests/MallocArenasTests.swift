@testable import FleetwatchHub
import Testing

/// The allocator's arena limit: what the hub sets itself, and what it leaves alone. (That a hub holds its
/// allocator to two arenas is checked against a real hub in DeploymentTests, from `fleetwatch_allocator_arenas`.)
struct MallocArenasTests {
    /// glibc reports its arenas; this process has at least its main one.
    @Test func theArenasAreCounted() throws {
        #if os(Linux)
        #expect(try #require(MallocArenas.count()) >= 1)
        #endif
    }

    /// 0 leaves glibc's default, and `MALLOC_ARENA_MAX` in the environment wins over the key: nothing is set.
    @Test func zeroOrTheEnvironmentLeaveTheAllocatorAlone() {
        #expect(!MallocArenas.limit(0, environment: [:]))
        #expect(!MallocArenas.limit(2, environment: ["MALLOC_ARENA_MAX": "8"]))
    }
}
