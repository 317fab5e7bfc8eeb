import FuzzDriver
import FleetwatchProtocol
import Foundation
import NIOCore

/// One input through every decoder an agent or a hub meets from the network: a frame (any type), a batch
/// payload after inflating, and a raw payload. Anything may be refused with an error; nothing may crash,
/// hang or allocate without bound (the limits are the hub's defaults).
func decodeEverything(_ bytes: UnsafeRawBufferPointer) {
    let buffer = ByteBuffer(bytes: bytes)
    let limits = BatchLimits()
    if let frame = try? Frame.decode(buffer, maxFrameBytes: 1 << 20), case .batch(let batch) = frame {
        _ = try? batch.inflate(limits: limits)
    }
    _ = try? BatchPayload.decode(buffer, limits: limits)
}

#if FUZZING
/// libFuzzer's entry point (built by scripts/fuzz with -sanitize=fuzzer,address).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    decodeEverything(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

/// SwiftPM links an executable's entry point as `<module>_main`; hand control to libFuzzer's driver.
@_cdecl("FuzzDecode_main")
public func fuzzDriverMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    FuzzDriver.run(argc, argv) { data, size in fuzzOneInput(data, size) }
}
#else
/// Without the fuzzer: replays files (a corpus, crash reproducers) through the same decoders, as a regression
/// test. `fleetwatch-fuzz-decode FILE_OR_DIRECTORY…`
@main
struct ReplayDecode {
    static func main() throws {
        try FuzzDriver.replay(Array(CommandLine.arguments.dropFirst())) { decodeEverything($0) }
    }
}
#endif
