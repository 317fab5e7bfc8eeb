/// One series' timestamps or values: an array of its own, or a part of a buffer that a batch's series share.
///
/// A decoded batch keeps every series' timestamps in one buffer and every series' values in another, so a
/// one-second batch of 50 metrics (one sample each) costs two allocations instead of a hundred, and freeing it two
/// releases of the same buffers. Indices start at 0 either way. Changing a shared part copies it first (the other
/// series never see the change), as an array copies its storage on write.
public struct Samples<Element>: RandomAccessCollection, MutableCollection, RangeReplaceableCollection {
    @usableFromInline var storage: [Element]
    @usableFromInline var offset: Int
    public private(set) var count: Int

    public init() {
        storage = []
        offset = 0
        count = 0
    }

    public init(_ array: [Element]) {
        storage = array
        offset = 0
        count = array.count
    }

    /// `buffer[range]`, sharing the buffer's storage.
    public init(shared buffer: [Element], range: Range<Int>) {
        precondition(range.lowerBound >= 0 && range.upperBound <= buffer.count, "samples \(range) outside a buffer of \(buffer.count)")
        storage = buffer
        offset = range.lowerBound
        count = range.count
    }

    @inlinable public var startIndex: Int { 0 }
    @inlinable public var endIndex: Int { count }

    @inlinable public subscript(position: Int) -> Element {
        get {
            precondition(position >= 0 && position < count, "sample index \(position) out of range 0..<\(count)")
            return storage[offset &+ position]
        }
        set {
            precondition(position >= 0 && position < count, "sample index \(position) out of range 0..<\(count)")
            makeOwn()
            storage[position] = newValue
        }
    }

    public mutating func replaceSubrange<C: Collection>(_ subrange: Range<Int>, with newElements: C) where C.Element == Element {
        precondition(subrange.lowerBound >= 0 && subrange.upperBound <= count, "range \(subrange) out of range 0..<\(count)")
        makeOwn()
        storage.replaceSubrange(subrange, with: newElements)
        count = storage.count
    }

    /// Appends with the array's own growth (doubling): the default would reserve exactly what each append needs,
    /// reallocating the samples at nearly every append (the agent appends a flush's samples to a pending series).
    public mutating func append(_ element: Element) {
        makeOwn()
        storage.append(element)
        count += 1
    }

    public mutating func append<S: Sequence>(contentsOf elements: S) where S.Element == Element {
        makeOwn()
        storage.append(contentsOf: elements)
        count = storage.count
    }

    public mutating func reserveCapacity(_ n: Int) {
        makeOwn()
        storage.reserveCapacity(n)
    }

    /// These samples as an array (no copy when they are not a part of a shared buffer).
    public var array: [Element] {
        offset == 0 && count == storage.count ? storage : Array(storage[offset..<offset + count])
    }

    /// Calls `body` with the samples in contiguous memory, without copying them.
    @inlinable public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Element>) throws -> R) rethrows -> R {
        try storage.withUnsafeBufferPointer { all in try body(UnsafeBufferPointer(rebasing: all[offset..<offset + count])) }
    }

    @usableFromInline mutating func makeOwn() {
        guard offset != 0 || count != storage.count else { return }
        storage = Array(storage[offset..<offset + count])
        offset = 0
    }
}

extension Samples: ExpressibleByArrayLiteral {
    public init(arrayLiteral elements: Element...) { self.init(elements) }
}

extension Samples: Equatable where Element: Equatable {
    public static func == (a: Samples, b: Samples) -> Bool { a.elementsEqual(b) }
    public static func == (a: Samples, b: [Element]) -> Bool { a.elementsEqual(b) }
    public static func == (a: [Element], b: Samples) -> Bool { a.elementsEqual(b) }
}

extension Samples: Hashable where Element: Hashable {
    public func hash(into hasher: inout Hasher) {
        hasher.combine(count)
        for e in self { hasher.combine(e) }
    }
}

extension Samples: Sendable where Element: Sendable {}

extension Samples: CustomStringConvertible, CustomDebugStringConvertible {
    public var description: String { array.description }
    public var debugDescription: String { array.debugDescription }
}
