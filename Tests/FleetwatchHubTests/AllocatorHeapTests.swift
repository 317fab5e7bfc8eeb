@testable import FleetwatchHub
import Testing

/// The allocator's figures follow what this process allocates and frees. (A real hub's, on `/metrics`, are checked
/// in DeploymentTests.)
struct AllocatorHeapTests {
    /// 256 MiB allocated show in the bytes in use, and leave them when freed: far more than the other tests running
    /// beside this one allocate or free in the moment between two readings.
    @Test(.enabled(if: AllocatorHeap.read() != nil, "needs glibc 2.33 or later"))
    func aLargeAllocationIsCountedInUseUntilFreed() throws {
        let size = 256 << 20
        let before = try #require(AllocatorHeap.read())
        let block = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        let held = try #require(AllocatorHeap.read())
        block.deallocate()
        let after = try #require(AllocatorHeap.read())
        #expect(held.inUse - before.inUse > size - (32 << 20), "before \(before.inUse), held \(held.inUse)")
        #expect(held.inUse - after.inUse > size - (32 << 20), "held \(held.inUse), after \(after.inUse)")
        // A block that size is always mapped on its own.
        #expect(held.mapped - before.mapped > size - (32 << 20), "mapped before \(before.mapped), held \(held.mapped)")
    }
}
