/// A store whose batch stores give up by themselves the moment the database is noticed down (`DatabaseUnavailable`),
/// without a race against the health probe per store: `OutageIngestStore` turns it on for the store it wraps and
/// then sends admitted batches to it directly.
public protocol StoreGivingUp: Sendable {
    /// From now on, stores of admitted batches (`ValidatedBatch.isAdmitted`) are answered with `DatabaseUnavailable`
    /// the moment `health` notices the database down, and are refused while it is down.
    func giveUp(with health: DatabaseHealth)
}

extension PostgresIngestStore: StoreGivingUp {
    /// The batch writer answers its queued and in-flight stores itself (`BatchWriter.failFast(with:)`).
    public func giveUp(with health: DatabaseHealth) { writer.failFast(with: health) }
}
