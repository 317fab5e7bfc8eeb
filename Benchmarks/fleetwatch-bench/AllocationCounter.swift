import Foundation

/// Counts mallocs on the current process when the malloc-counting shim is preloaded
/// (`scripts/bench` sets LD_PRELOAD to `libfleetwatch_malloc_count.so`); nil otherwise.
enum AllocationCounter {
    typealias Getter = @convention(c) () -> UInt64
    static let getter: Getter? = {
        guard let handle = dlopen(nil, RTLD_NOW), let sym = dlsym(handle, "fleetwatch_malloc_count") else { return nil }
        return unsafeBitCast(sym, to: Getter.self)
    }()

    static func count(_ body: () -> Void) -> UInt64? {
        guard let getter else { body(); return nil }
        let before = getter()
        body()
        return getter() - before
    }
}
