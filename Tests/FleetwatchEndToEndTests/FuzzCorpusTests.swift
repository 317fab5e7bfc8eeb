import FleetwatchTestSupport
import Foundation
import Testing

/// Each fuzz target's committed corpus and every crash reproducer, replayed through the same code by the target's
/// normal build (regression): `decode` (the wire decoders) and `parsers` (configuration, commands, stop requests).
@Suite struct FuzzCorpusTests {
    @Test(.timeLimit(.minutes(2)), arguments: ["decode", "parsers"])
    func theCorpusAndCrashReproducersRunWithoutACrash(target: String) async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let corpus = "\(root)/Fuzz/corpus/\(target)", crashes = "\(root)/Fuzz/crashes/\(target)"
        let inputs = try FileManager.default.contentsOfDirectory(atPath: corpus).count
            + FileManager.default.contentsOfDirectory(atPath: crashes).count
        #expect(inputs >= 10)
        let (status, log) = try await DeploymentTests.run(builtExecutable("fleetwatch-fuzz-\(target)"), [corpus, crashes],
                                                          name: "fuzz-replay-\(target)-\(UUID().uuidString.prefix(8))")
        #expect(status == 0, "\(log)")
        #expect(log.contains("replayed \(inputs) inputs without a crash"), "\(log)")
    }
}
