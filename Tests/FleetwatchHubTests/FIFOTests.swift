@testable import FleetwatchStorage
import Testing

@Suite struct FIFOTests {
    /// Against an array used as a queue, through appends, removals and put-backs in every mix.
    @Test func behavesLikeAnArrayQueue() {
        var fifo = FIFO<Int>()
        var model: [Int] = []
        var next = 0
        var state: UInt64 = 3
        func roll() -> UInt64 { state = state &* 6364136223846793005 &+ 1442695040888963407; return state >> 33 }
        for _ in 0..<20_000 {
            switch roll() % 10 {
            case 0...4:
                fifo.append(next); model.append(next); next += 1
            case 5...7:
                if !model.isEmpty { #expect(fifo.removeFirst() == model.removeFirst()) }
            default:
                // Take a few from the front and put some back, as the batch writer does with skipped items.
                let n = min(Int(roll() % 5), model.count)
                var taken: [Int] = []
                for _ in 0..<n { taken.append(fifo.removeFirst()) }
                #expect(taken == Array(model.prefix(n)))
                let back = Array(taken.prefix(Int(roll() % UInt64(n + 1))))
                fifo.prepend(back)
                model.removeFirst(n)
                model.insert(contentsOf: back, at: 0)
            }
            #expect(fifo.count == model.count)
            #expect(fifo.isEmpty == model.isEmpty)
        }
        while !model.isEmpty { #expect(fifo.removeFirst() == model.removeFirst()) }
        #expect(fifo.isEmpty)
    }
}
