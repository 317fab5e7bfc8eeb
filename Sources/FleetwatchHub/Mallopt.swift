#if canImport(Glibc)
import Glibc
#endif

/// glibc's `mallopt` (declared in `<malloc.h>`, which Swift's Glibc module leaves out), for the allocator settings
/// `monitor-hub` makes as it starts (`MallocArenas`, `MallocMmapThreshold`).
enum Mallopt {
    /// `M_ARENA_MAX` in `<malloc.h>`.
    static let arenaMax: Int32 = -8
    /// `M_MMAP_THRESHOLD` in `<malloc.h>`.
    static let mmapThreshold: Int32 = -3

    /// Sets `parameter` to `value`; whether glibc took it (false with another C library).
    static func set(_ parameter: Int32, _ value: Int32) -> Bool {
        guard let function else { return false }
        return function(parameter, value) == 1
    }

    /// Looked up once; nil with another C library.
    private static let function: (@convention(c) (Int32, Int32) -> Int32)? = {
        #if canImport(Glibc)
        guard let symbol = dlsym(nil, "mallopt") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int32, Int32) -> Int32).self)
        #else
        return nil
        #endif
    }()
}
