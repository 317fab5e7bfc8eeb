/// A first-in first-out queue with O(1) amortized `append` and `removeFirst` (an array and a head index,
/// compacted once the consumed part is half the storage).
struct FIFO<Element> {
    private var storage: [Element] = []
    private var head = 0

    var isEmpty: Bool { head == storage.count }
    var count: Int { storage.count - head }

    mutating func append(_ element: Element) { storage.append(element) }

    /// The oldest element; the queue must not be empty.
    mutating func removeFirst() -> Element {
        let element = storage[head]
        head += 1
        if head == storage.count {
            storage.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 64, head * 2 >= storage.count {
            storage.removeFirst(head)
            head = 0
        }
        return element
    }

    /// Puts `elements` back at the front, in their order (they were taken from the front).
    mutating func prepend(_ elements: [Element]) {
        guard !elements.isEmpty else { return }
        if head >= elements.count {
            head -= elements.count
            for (i, e) in elements.enumerated() { storage[head + i] = e }
        } else {
            storage.replaceSubrange(0..<head, with: elements)
            head = 0
        }
    }
}
