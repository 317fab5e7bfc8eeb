import PostgresNIO
import Synchronization

/// Opened once a PostgresNIO pool is about to run. A statement sent to a pool before its `run()` started waits for
/// it all the same, but PostgresNIO logs a warning for it ("Trying to lease connection from `PostgresClient`, but
/// `PostgresClient.run()` hasn't been called yet"), which operators saw at a hub's first start, after a failover and
/// from `monitor-hub` commands. PostgresNIO marks the pool running a few instructions into `run()`, before it first
/// suspends, and offers no signal of its own; so whoever starts the pool calls `openShortly()` right before calling
/// `run()`, and whoever uses it waits. Opened right away, a waiter woken on the other core could still beat the flag
/// now and then (once in a few hundred starts in CI); opened `settle` later, only a thread kept off its core that
/// long between the two calls could.
public final class StartGate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))
    /// Set once the gate is open: every statement of a pool waits on its gate, so an open gate costs one load, not a lock.
    private let isOpen = Atomic<Bool>(false)

    public init() {}

    /// How long after `openShortly()` the gate opens.
    public static let settle: Duration = .milliseconds(10)

    /// Opens the gate `settle` from now, from a task of its own: call it right before the pool's `run()`.
    public func openShortly() {
        Task {
            try? await Task.sleep(for: Self.settle)
            self.open()
        }
    }

    public func open() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.open = true
            defer { s.waiters = [] }
            return s.waiters
        }
        isOpen.store(true, ordering: .releasing)
        waiters.forEach { $0.resume() }
    }

    /// Returns once `open()` was called (at once after that).
    public func wait() async {
        if isOpen.load(ordering: .acquiring) { return }
        await withCheckedContinuation { continuation in
            let now = state.withLock { s -> Bool in
                if s.open { return true }
                s.waiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }
}

extension PostgresClient {
    /// `run()`, with `gate` opened shortly after it starts (`StartGate.openShortly`).
    public func run(opening gate: StartGate) async {
        gate.openShortly()
        await run()
    }
}

/// Runs `client` while `body` uses it, and stops it when `body` returns or throws. `body` starts once the pool runs
/// (`StartGate`), so PostgresNIO does not warn that it was used before.
public func withRunningClient<T: Sendable>(_ client: PostgresClient,
                                           _ body: @Sendable @escaping (PostgresClient) async throws -> T) async throws -> T {
    let gate = StartGate()
    return try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask {
            await client.run(opening: gate)
            return nil
        }
        group.addTask {
            await gate.wait()
            return try await body(client)
        }
        defer { group.cancelAll() }
        while let result = try await group.next() {
            if let result { return result }
        }
        throw CancellationError()
    }
}
