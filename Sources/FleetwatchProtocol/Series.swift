/// What a metric measures, which decides how the hub aggregates it.
public enum MetricKind: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// A running total since the agent started (trades executed, API errors).
    case counter = 0
    /// A value that goes up and down (memory, PnL, success rate).
    case gauge = 1
    /// One observed duration, in milliseconds (trade execution time).
    case duration = 2
    /// A string state (`websocket_status` = `connected`).
    case state = 3

    public var description: String {
        switch self {
        case .counter: return "counter"
        case .gauge: return "gauge"
        case .duration: return "duration"
        case .state: return "state"
        }
    }
}

/// The samples of one metric in one batch: parallel arrays of unix-millisecond timestamps and values.
public struct Series: Equatable, Sendable {
    /// Metric name, 1–128 characters of A–Z a–z 0–9 _ . : - /.
    public var name: String
    public var kind: MetricKind
    /// Unix milliseconds, one per sample.
    public var timestamps: Samples<Int64>
    /// One per sample for numeric kinds; empty for `.state`.
    public var values: Samples<Double>
    /// One per sample for `.state`; empty otherwise.
    public var states: [String]

    public init(name: String, kind: MetricKind, timestamps: [Int64], values: [Double] = [], states: [String] = []) {
        self.init(name: name, kind: kind, timestamps: Samples(timestamps), values: Samples(values), states: states)
    }

    /// A series whose samples may be parts of buffers shared with the other series of its batch (a decoded batch).
    public init(name: String, kind: MetricKind, timestamps: Samples<Int64>, values: Samples<Double>, states: [String] = []) {
        self.name = name
        self.kind = kind
        self.timestamps = timestamps
        self.values = values
        self.states = states
    }

    /// Number of samples.
    @inlinable public var count: Int { timestamps.count }
}

/// The decoded content of a batch.
public struct BatchPayload: Equatable, Sendable {
    public var series: [Series]

    public init(series: [Series]) { self.series = series }

    /// Samples over all series.
    public var sampleCount: Int {
        var n = 0
        for i in series.indices { n += series[i].timestamps.count }   // in place: no copy of each series
        return n
    }
}
