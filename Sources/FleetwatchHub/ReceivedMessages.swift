import NIOCore
import Synchronization

/// The messages one agent connection's reader has received and its handling loop has not taken yet. The loop
/// takes all of them at once, so batches that waited together are stored together (`IngestSession.handle`).
final class ReceivedMessages: Sendable {
    private let messages = Mutex<[ByteBuffer]>([])

    /// Adds a message; true when the queue was empty (the loop must be told).
    func append(_ message: ByteBuffer) -> Bool {
        messages.withLock { m in
            m.append(message)
            return m.count == 1
        }
    }

    /// Every waiting message, oldest first.
    func takeAll() -> [ByteBuffer] {
        messages.withLock { m in
            // Not keeping the capacity: a burst of many small messages must not leave a large array behind.
            let all = m
            m = []
            return all
        }
    }
}
