#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import ServiceLifecycle

/// Hands the memory the allocator holds free back to the system, every `hub.memory_trim_interval`.
///
/// glibc's allocator keeps what the hub frees in its arenas for reuse and gives back only the top of each
/// heap. Under thousands of connections the free memory between live blocks grows: in a 5,000-agent load the
/// hub's memory in use rose 4 % in three minutes while its resident memory rose 9 %, and a `malloc_trim` gave
/// 45 MB back at once (docs/benchmarks.md). Trimming keeps the resident memory an operator watches close to
/// what the hub uses, so a real leak stands out. Only on glibc; elsewhere it does nothing.
struct MemoryTrimmer: Service {
    let interval: Duration
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do { try await Task.sleep(for: interval) } catch { return }
                let before = Self.residentBytes()
                guard Self.trim() else { continue }
                if let before, let after = Self.residentBytes(), before > after {
                    logger.debug("memory trim: returned \((before - after) >> 20) MiB to the system, \(after >> 20) MiB resident")
                }
            }
        }
    }

    /// Gives free memory of every arena back to the system; whether any was given back (false off glibc).
    @discardableResult
    static func trim() -> Bool {
        guard let mallocTrim else { return false }
        return mallocTrim(0) == 1
    }

    /// glibc's `malloc_trim` (declared in `<malloc.h>`, which Swift's Glibc module leaves out), looked up once;
    /// nil with another C library.
    private static let mallocTrim: (@convention(c) (Int) -> Int32)? = {
        #if canImport(Glibc)
        guard let symbol = dlsym(nil, "malloc_trim") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
        #else
        return nil
        #endif
    }()

    /// This process's resident memory (Linux `/proc/self/statm`), nil elsewhere.
    static func residentBytes() -> Int? {
        guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
        let fields = statm.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
