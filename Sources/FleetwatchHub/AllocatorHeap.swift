import CAllocatorFigures

/// What the hub's memory allocator holds (glibc's `mallinfo2`): the bytes its allocations use now, and the bytes
/// free between them in the arenas. The resident memory an operator watches is both and more; when it creeps up
/// under a steady load, these tell growth of what the hub keeps (a leak, a cache) from memory the allocator keeps
/// free for reuse (`MemoryTrimmer`, `MallocArenas`).
public enum AllocatorHeap {
    public struct Figures: Sendable, Equatable {
        /// Bytes in allocated blocks: in the arenas and mapped on their own (large blocks).
        public var inUse: Int
        /// Of `inUse`, the large blocks mapped on their own.
        public var mapped: Int
        /// Bytes free inside the arenas, resident or not: a trim gives their pages back, but they still count here.
        public var freeInArenas: Int
    }

    /// The figures now; nil with another C library.
    public static func read() -> Figures? {
        var inUse = 0, mapped = 0, free = 0
        guard fleetwatch_allocator_figures(&inUse, &mapped, &free) else { return nil }
        return Figures(inUse: inUse, mapped: mapped, freeInArenas: free)
    }

    /// `read()` as of at most 5 s ago: `mallinfo2` walks every arena's free lists under its lock, which a
    /// scrape of `/metrics` every second should not do each time.
    static func recent() -> Figures? { cache.value }

    private static let cache = RecentReading(maxAge: .seconds(5)) { read() }
}
