@testable import FleetwatchHub
import Testing

/// The allocator's fixed mapping threshold: what the hub sets itself, and what it leaves alone.
struct MallocMmapThresholdTests {
    /// Fixed, a block over the threshold is mapped on its own even after a larger mapped block was freed (glibc's
    /// adjusting threshold would have risen to the freed block's size and cut the next one from an arena). Blocks of
    /// megabytes, far more than the other tests running beside this one map or unmap between two readings.
    @Test func aFixedThresholdKeepsMappingLargeBlocks() throws {
        #if os(Linux)
        #expect(MallocMmapThreshold.fix(MallocMmapThreshold.hubDefault, environment: [:]))
        // glibc raises its threshold only for freed blocks up to 32 MiB.
        UnsafeMutableRawPointer.allocate(byteCount: 8 << 20, alignment: 16).deallocate()
        let before = try #require(AllocatorHeap.read())
        let block = UnsafeMutableRawPointer.allocate(byteCount: 4 << 20, alignment: 16)
        defer { block.deallocate() }
        let held = try #require(AllocatorHeap.read())
        #expect(held.mapped - before.mapped >= 4 << 20, "mapped before \(before.mapped), holding 4 MiB \(held.mapped)")
        #endif
    }

    /// 0 leaves glibc's adjusting threshold, and the operator's environment wins: nothing is set.
    @Test func zeroOrTheEnvironmentLeaveTheThresholdAlone() {
        #expect(!MallocMmapThreshold.fix(0, environment: [:]))
        #expect(!MallocMmapThreshold.fix(MallocMmapThreshold.hubDefault, environment: ["MALLOC_MMAP_THRESHOLD_": "131072"]))
        #expect(!MallocMmapThreshold.fix(MallocMmapThreshold.hubDefault, environment: ["GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=65536"]))
    }
}
