import FuzzDriver
import FleetwatchProtocol
import Foundation
import NIOCore

/// One input through every decoder an agent or a hub meets from the network: a frame (any type), a batch
/// payload after inflating, a delta batch (protocol 3) on a fresh connection and after a valid first one, and a
/// raw payload. Anything may be refused with an error; nothing may crash,
/// hang or allocate without bound (the limits are the hub's defaults).
func decodeEverything(_ bytes: UnsafeRawBufferPointer) {
    let buffer = ByteBuffer(bytes: bytes)
    let limits = BatchLimits()
    switch try? Frame.decode(buffer, maxFrameBytes: 1 << 20) {
    case .batch(let batch)?:
        _ = try? batch.inflate(limits: limits)
    case .deltaBatch(let delta)?:
        var fresh = DeltaDecoder()
        _ = try? fresh.decode(delta, limits: limits)
        var primed = DeltaDecoder()
        if (try? primed.decode(primer, limits: limits)) != nil { _ = try? primed.decode(delta, limits: limits) }
    default:
        break
    }
    _ = try? BatchPayload.decode(buffer, limits: limits)
}

/// A valid first delta batch (two gauges, a counter and a state), so the fuzzer also reaches the paths that
/// refer back to an earlier batch.
let primer: DeltaBatchFrame = {
    var encoder = DeltaEncoder()
    let payload = BatchPayload(series: [
        Series(name: "a", kind: .gauge, timestamps: [1_000], values: [1.5]),
        Series(name: "b", kind: .gauge, timestamps: [1_001], values: [.pi]),
        Series(name: "c", kind: .counter, timestamps: [1_000, 1_500], values: [1, 2]),
        Series(name: "s", kind: .state, timestamps: [1_000], states: ["up"]),
    ])
    var frame = encoder.encode(epoch: 1, sequence: 1, payload: payload)!
    frame.moveReaderIndex(forwardBy: 1)
    return DeltaBatchFrame(body: frame)
}()

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
