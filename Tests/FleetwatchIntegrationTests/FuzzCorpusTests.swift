import FleetwatchTestSupport
import Foundation
import Testing

/// The committed fuzz corpus and every crash reproducer, replayed through the wire decoders (regression).
@Suite struct FuzzCorpusTests {
    @Test(.timeLimit(.minutes(2)))
    func theCorpusAndCrashReproducersDecodeWithoutACrash() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let corpus = "\(root)/Fuzz/corpus/decode", crashes = "\(root)/Fuzz/crashes/decode"
        let inputs = try FileManager.default.contentsOfDirectory(atPath: corpus).count
            + FileManager.default.contentsOfDirectory(atPath: crashes).count
        #expect(inputs >= 10)
        let (status, log) = try await DeploymentTests.run(builtExecutable("fleetwatch-fuzz-decode"), [corpus, crashes],
                                                          name: "fuzz-replay-\(UUID().uuidString.prefix(8))")
        #expect(status == 0, "\(log)")
        #expect(log.contains("replayed \(inputs) inputs without a crash"), "\(log)")
    }
}
