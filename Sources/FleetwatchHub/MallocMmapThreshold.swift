import Foundation

/// The size from which glibc's allocator maps a block on its own (and unmaps it when freed) instead of cutting it
/// from an arena: `monitor-hub` fixes it at `hubDefault` first thing.
///
/// glibc starts at 128 KiB and raises the threshold to the size of every mapped block freed, up to 32 MiB, so after
/// the hub frees one large buffer (a statement's parameters for a group of big batches, a burst of reads) every
/// block up to that size is cut from the arenas, and the freed ones leave holes the resident memory keeps: under a
/// steady 5,000-agent load the hub's resident memory crept up 40 MB in ten minutes while what its allocations held
/// stayed flat (docs/benchmarks.md). A fixed threshold turns that adjustment off. The usual remedy,
/// `MALLOC_MMAP_THRESHOLD_` (or the `glibc.malloc.mmap_threshold` tunable), needs the environment of every way the
/// hub is started; it wins when set (the operator's choice). Only on glibc; elsewhere it does nothing.
public enum MallocMmapThreshold {
    /// The threshold `monitor-hub` sets: twice glibc's starting one.
    public static let hubDefault = 256 * 1024

    /// Fixes the threshold at `bytes` (0: leave glibc's adjusting one); whether it was set.
    @discardableResult
    public static func fix(_ bytes: Int, environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        guard bytes > 0, environment["MALLOC_MMAP_THRESHOLD_"] == nil,
              environment["GLIBC_TUNABLES"]?.contains("mmap_threshold") != true else { return false }
        return Mallopt.set(Mallopt.mmapThreshold, Int32(clamping: bytes))
    }
}
