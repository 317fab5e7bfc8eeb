@testable import FleetwatchHub
import FleetwatchTestSupport
import Foundation
import Logging
import Testing

/// The hub's memory trim gives freed memory back to the system, which glibc's `free` alone does not do for
/// memory between blocks still in use. In the quiet phase: they measure the process's resident memory, which the
/// suites running beside them in the main phase raise and lower by tens of MiB (CI once saw it fall between two
/// of these readings).
@Suite(.serialized, .enabled(if: runsHereNow(.quiet))) struct MemoryTrimmerTests {
    static let blockBytes = 1024
    static let blocks = 128 * 1024   // 128 MiB

    /// Allocates 128 MiB in small blocks, touches them, and frees all but the last (which keeps the heap's
    /// top in use, so `free` cannot give the rest back by itself).
    static func fragmentedHeap() -> UnsafeMutableRawPointer {
        var pointers: [UnsafeMutableRawPointer] = []
        pointers.reserveCapacity(blocks)
        for i in 0..<blocks {
            let p = UnsafeMutableRawPointer.allocate(byteCount: blockBytes, alignment: 16)
            p.initializeMemory(as: UInt8.self, repeating: UInt8(truncatingIfNeeded: i), count: blockBytes)
            pointers.append(p)
        }
        let kept = pointers.removeLast()
        for p in pointers { p.deallocate() }
        return kept
    }

    @Test func theTrimServiceGivesFreedMemoryBack() async throws {
        let kept = Self.fragmentedHeap()
        defer { kept.deallocate() }
        let before = try #require(MemoryTrimmer.residentBytes())
        let trimmer = Task { try await MemoryTrimmer(interval: .milliseconds(20), logger: Logger(label: "test")).run() }
        defer { trimmer.cancel() }
        var after = before
        for _ in 0..<250 where after > before - (64 << 20) {
            try await Task.sleep(for: .milliseconds(20))
            after = try #require(MemoryTrimmer.residentBytes())
        }
        #expect(after <= before - (64 << 20), "resident \(before >> 20) MiB before the trim, \(after >> 20) MiB after")
    }

    /// Freed memory between blocks in use stays resident after `free`; the trim gives it back.
    @Test func theTrimGivesBackWhatFreeKept() throws {
        let base = try #require(MemoryTrimmer.residentBytes())
        let kept = Self.fragmentedHeap()
        defer { kept.deallocate() }
        let freed = try #require(MemoryTrimmer.residentBytes())
        #expect(freed >= base + (64 << 20), "resident \(base >> 20) MiB before the blocks, \(freed >> 20) MiB after freeing them")
        #expect(MemoryTrimmer.trim())
        let after = try #require(MemoryTrimmer.residentBytes())
        #expect(after <= freed - (64 << 20), "resident \(freed >> 20) MiB before the trim, \(after >> 20) MiB after")
    }
}
