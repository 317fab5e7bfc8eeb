import FleetwatchProtocol
import NIOCore
import Testing

@Suite struct WireSizeTests {
    /// The compactness the protocol promises for a realistic batch (the benchmark reports the exact figure).
    @Test func realisticBatchIsUnderThreeBytesPerSample() throws {
        let payload = Fixtures.realistic()
        let frame = Frame.batch(try BatchFrame.make(bootEpoch: 1, sequence: 1, payload: payload)).encoded()
        let perSample = Double(frame.readableBytes) / Double(payload.sampleCount)
        #expect(perSample < 3.0, "\(perSample) bytes per sample")
    }
}
