@testable import FleetwatchStorage
import Logging
import Synchronization
import Testing

@Suite struct BatchWriterConflictTests {
    struct Conflict: Error {}
    struct Other: Error {}

    final class Calls: Sendable {
        let count = Mutex(0)
        func next() -> Int { count.withLock { $0 += 1; return $0 } }
        var value: Int { count.withLock { $0 } }
    }

    let logger = Logger(label: "test")

    /// Deadlocks and serialization failures roll the whole statement back: those are tried again; every other
    /// error (a dead database, a batch PostgreSQL refuses) is not.
    @Test func onlyConflictsAreTriedAgain() {
        #expect(BatchWriter.isConflict(sqlState: "40P01"))
        #expect(BatchWriter.isConflict(sqlState: "40001"))
        for state in ["23505", "23514", "22P02", "57014", "57P01", "08006"] as [String?] + [nil] {
            #expect(!BatchWriter.isConflict(sqlState: state), "\(state ?? "nil")")
        }
    }

    @Test func aConflictIsTriedAgainUntilTheStatementGoesThrough() async throws {
        let calls = Calls()
        let value = try await BatchWriter.retryingConflicts(logger: logger, isConflict: { $0 is Conflict }) {
            if calls.next() < 3 { throw Conflict() }
            return 42
        }
        #expect(value == 42 && calls.value == 3)
    }

    /// A statement that keeps failing: a conflict is tried `conflictAttempts` times in all, any other error once;
    /// either way the caller gets the error.
    @Test(arguments: [true, false]) func aFailingStatementGivesUp(conflicting: Bool) async throws {
        let calls = Calls()
        let error = await #expect(throws: (any Error).self) {
            try await BatchWriter.retryingConflicts(logger: logger, isConflict: { $0 is Conflict }) { () async throws -> Int in
                _ = calls.next()
                if conflicting { throw Conflict() } else { throw Other() }
            }
        }
        #expect(conflicting ? error is Conflict : error is Other)
        #expect(calls.value == (conflicting ? BatchWriter.conflictAttempts : 1))
    }
}
