import Foundation

/// One scenario's outcome: its figures (for docs/reliability.md) and every violated invariant.
struct Report {
    let scenario: String
    var figures: [(String, String)] = []
    var failures: [String] = []

    var ok: Bool { failures.isEmpty }

    mutating func figure(_ name: String, _ value: Any) { figures.append((name, "\(value)")) }

    /// Records a violated invariant unless `condition` holds.
    mutating func check(_ condition: Bool, _ what: @autoclosure () -> String) {
        if !condition { failures.append(what()) }
    }

    mutating func counts(_ c: Count) {
        figure("batches expected / stored", "\(c.expected) / \(c.stored) (\(c.expectedSamples) samples)")
        figure("lost / duplicated / wrong sample count", "\(c.lost) / \(c.duplicated) / \(c.mismatched)")
        check(c.expected > 0, "no batch was sealed")
        check(c.clean, "not exactly once: \(c)")
    }

    func render() -> String {
        var out = "── \(scenario): \(ok ? "ok" : "FAILED")\n"
        for (k, v) in figures { out += "   \(k): \(v)\n" }
        for f in failures { out += "   ✘ \(f)\n" }
        return out
    }
}
