/// Where both batch decoders (self-contained, §4; delta, §11) put a batch's samples while they read it: every
/// series' timestamps in one buffer, every numeric series' values in another. Once the batch is read, `share` gives
/// each series its part of them: two allocations per batch, not two per metric.
struct BatchSampleBuffers {
    var timestamps: [Int64] = []
    var values: [Double] = []

    /// Reserves room for `samples` samples, `numericSamples` of them numeric (the buffers grow past that as arrays do).
    init(samples: Int, numericSamples: Int) {
        timestamps.reserveCapacity(samples)
        values.reserveCapacity(numericSamples)
    }

    /// Gives each series of `series` its part of the buffers, in order: `counts[i]` timestamps, and as many values
    /// if it is numeric (a state series has its states of its own).
    func share(with series: inout [Series], counts: [Int]) {
        precondition(series.count == counts.count, "\(series.count) series for \(counts.count) sample counts")
        var t = 0, v = 0
        for i in series.indices {
            let n = counts[i]
            series[i].timestamps = Samples(shared: timestamps, range: t..<t + n)
            t += n
            if series[i].kind != .state {
                series[i].values = Samples(shared: values, range: v..<v + n)
                v += n
            }
        }
        assert(t == timestamps.count && v == values.count, "the series' counts do not use up the shared buffers")
    }
}
