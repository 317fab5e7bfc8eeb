import Dispatch
import FleetwatchProtocol
import Synchronization

/// The agent's disk: the spool's batch files and the command journal, written in order on a serial queue of
/// their own, so a slow or stalled disk never holds the agent's actor — nor a thread of Swift's cooperative
/// pool, which the bot's own tasks share — while it writes. `flush()` and a step's report still wait for their
/// writes (`drain`, `append`): a batch is on disk when `flush()` returns, a result is in the journal before the
/// hub hears of it.
final class AgentDisk: @unchecked Sendable {
    // `spool` is touched only on `queue`, `journal` only on `journalQueue` (hence `@unchecked Sendable`): each
    // keeps its own order, and an emergency step's result never waits behind batch files.
    private let queue = DispatchQueue(label: "fleetwatch.agent.spool")
    private let journalQueue = DispatchQueue(label: "fleetwatch.agent.journal")
    private var spool: Spool?
    private var journal: CommandJournal?
    /// Spool writes asked for and not done yet; past `maxQueuedWrites` a batch keeps no disk copy (it is still
    /// in memory and delivered), so a stalled disk cannot queue the whole buffer twice.
    private let queuedWrites = Atomic<Int>(0)
    static let maxQueuedWrites = 1_000
    /// Whether batches are kept on disk at all.
    let spools: Bool

    init(spool: Spool?, journal: CommandJournal?) {
        self.spool = spool
        self.journal = journal
        spools = spool != nil
    }

    /// Writes a sealed batch's file (in order with every other write and removal).
    @discardableResult
    func write(_ batch: SealedBatch) -> Bool {
        guard spools else { return false }
        guard queuedWrites.add(1, ordering: .relaxed).newValue <= Self.maxQueuedWrites else {
            queuedWrites.subtract(1, ordering: .relaxed)
            return false
        }
        queue.async {
            self.spool?.write(batch)
            self.queuedWrites.subtract(1, ordering: .relaxed)
        }
        return true
    }

    /// Deletes the files of acknowledged or dropped batches.
    func remove(_ batches: [SealedBatch]) {
        guard spools, !batches.isEmpty else { return }
        queue.async { self.spool?.remove(batches) }
    }

    /// Appends a command result to the journal, synced; returns once it is on disk.
    func append(_ result: CommandResultFrame) async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            journalQueue.async {
                self.journal?.append(result)
                done.resume()
            }
        }
    }

    /// Returns once every write asked for before it is done.
    func drain() async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in queue.async { done.resume() } }
    }

    /// Holds the queue until `release` is signalled: a stalled disk (tests).
    func stall(until release: DispatchSemaphore) {
        queue.async { release.wait() }
    }

    /// Bytes the spool holds now (tests).
    var spooledBytes: Int { queue.sync { spool?.totalBytes ?? 0 } }
}
