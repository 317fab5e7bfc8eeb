#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// How many arenas glibc's allocator may use: `monitor-hub` limits them to `hubDefault` first thing.
///
/// glibc gives threads their own arenas, up to eight per core, and memory freed in one arena is reused only
/// there: the hub's event-loop and task threads each keep their own free memory between live blocks, and the
/// resident memory climbs for minutes under load before it levels off. With two arenas, the same 5,000-agent
/// load levelled off sooner and lower (docs/benchmarks.md). The usual remedy, `MALLOC_ARENA_MAX`, needs the
/// environment of every way the hub is started; the hub sets the limit itself, on the main thread before any
/// other thread allocates (glibc fixes the limit when the next arena is wanted, so a configuration file read
/// later could not change it), unless that variable is set (the operator's choice wins). Only on glibc;
/// elsewhere it does nothing.
public enum MallocArenas {
    /// The arenas `monitor-hub` allows.
    public static let hubDefault = 2

    /// Limits the arenas to `count` (0: leave glibc's default); whether the limit was set.
    @discardableResult
    public static func limit(_ count: Int, environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        guard count > 0, environment["MALLOC_ARENA_MAX"] == nil, let mallopt else { return false }
        return mallopt(arenaMax, Int32(clamping: count)) == 1
    }

    /// `M_ARENA_MAX` in `<malloc.h>`.
    private static let arenaMax: Int32 = -8

    /// glibc's `mallopt` (declared in `<malloc.h>`, which Swift's Glibc module leaves out), looked up once;
    /// nil with another C library.
    private static let mallopt: (@convention(c) (Int32, Int32) -> Int32)? = {
        #if canImport(Glibc)
        guard let symbol = dlsym(nil, "mallopt") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int32, Int32) -> Int32).self)
        #else
        return nil
        #endif
    }()

    /// `count()` as of at most a minute ago: `malloc_info` walks the free lists of every arena under its lock,
    /// which a scrape of `/metrics` every few seconds should not do each time.
    static func recentCount() -> Int? { recent.value }

    private static let recent = RecentReading(maxAge: .seconds(60)) { count() }

    /// The arenas glibc's allocator has now (from `malloc_info`), nil elsewhere (tests, diagnostics).
    static func count() -> Int? {
        #if canImport(Glibc)
        guard let symbol = dlsym(nil, "malloc_info") else { return nil }
        let mallocInfo = unsafeBitCast(symbol, to: (@convention(c) (Int32, UnsafeMutablePointer<FILE>?) -> Int32).self)
        var buffer: UnsafeMutablePointer<CChar>?
        var size = 0
        guard let stream = open_memstream(&buffer, &size) else { return nil }
        let status = mallocInfo(0, stream)
        fclose(stream)
        defer { free(buffer) }
        guard status == 0, let buffer else { return nil }
        return String(cString: buffer).components(separatedBy: "<heap nr=").count - 1
        #else
        return nil
        #endif
    }
}
