import Processing
import QuantracCore
import Testing

struct RecordBuilderTests {
    let interval = Interval(start: 1000, end: 1300)

    func r(_ offset: Int64, _ value: Double?, _ status: InstrumentStatus = .measuring) -> Reading {
        Reading(channel: "COD", time: Timestamp(seconds: 1000 + offset), value: value, status: status)
    }

    @Test func meanOfValidSamplesIsMeasuring() throws {
        let rec = try RecordBuilder.record(channel: "COD", interval: interval, samples: [r(0, 1), r(10, 2), r(20, 6)], fallback: 0)
        #expect(rec.value == 3)
        #expect(rec.status == .measuring)
        #expect(rec.validCount == 3 && rec.sampleCount == 3)
        #expect(rec.intervalEnd == 1300)
    }

    @Test func faultsInPartOfTheIntervalAreLeftOutOfTheMean() throws {
        let rec = try RecordBuilder.record(channel: "COD", interval: interval,
                                           samples: [r(0, 4), r(10, nil, .fault), r(20, 8), r(30, 1000, .fault)], fallback: 0)
        #expect(rec.value == 6)
        #expect(rec.status == .measuring)
        #expect(rec.validCount == 2 && rec.sampleCount == 4)
    }

    @Test func anyCalibrationMarksTheRecord01() throws {
        let rec = try RecordBuilder.record(channel: "COD", interval: interval,
                                           samples: [r(0, 4), r(10, 100, .calibrating), r(20, 8)], fallback: 0)
        #expect(rec.status == .calibrating)
        #expect(rec.value == 6, "the mean keeps to measuring samples when there are any")
        let all = try RecordBuilder.record(channel: "COD", interval: interval,
                                           samples: [r(0, 100, .calibrating), r(10, 200, .calibrating)], fallback: 0)
        #expect(all.status == .calibrating && all.value == 150 && all.validCount == 0)
    }

    @Test func noValidSampleIsFaultWithFallback() throws {
        let none = try RecordBuilder.record(channel: "COD", interval: interval, samples: [], fallback: 0)
        #expect(none.status == .fault && none.value == 0 && none.sampleCount == 0)
        let faults = try RecordBuilder.record(channel: "COD", interval: interval,
                                              samples: [r(0, nil, .fault), r(10, .nan, .measuring)], fallback: 41.5)
        #expect(faults.status == .fault && faults.value == 41.5 && faults.sampleCount == 2 && faults.validCount == 0)
    }

    @Test func intervalIsHalfOpen() throws {
        #expect(throws: RecordBuilder.OutOfInterval.self) {
            try RecordBuilder.record(channel: "COD", interval: interval, samples: [r(300, 1)], fallback: 0)
        }
        #expect(throws: RecordBuilder.OutOfInterval.self) {
            try RecordBuilder.record(channel: "COD", interval: interval, samples: [r(-1, 1)], fallback: 0)
        }
        #expect(throws: RecordBuilder.OutOfInterval.self) {
            try RecordBuilder.record(channel: "COD", interval: interval,
                                     samples: [Reading(channel: "TSS", time: Timestamp(seconds: 1000), value: 1, status: .measuring)], fallback: 0)
        }
    }

    @Test func windDirectionRecordsAreVectorMeans() throws {
        let rec = try RecordBuilder.record(channel: "COD", interval: interval, samples: [r(0, 350), r(10, 10)], fallback: 0, directional: true)
        #expect(rec.value < 1e-9 || rec.value > 360 - 1e-9, "\(rec.value)")
        let scalar = try RecordBuilder.record(channel: "COD", interval: interval, samples: [r(0, 350), r(10, 10)], fallback: 0)
        #expect(scalar.value == 180)
    }

    @Test func meanIsAccurate() {
        #expect(abs(RecordBuilder.mean([0.1, 0.2, 0.3])! - 0.2) < 1e-15)
        #expect(RecordBuilder.mean([]) == nil)
        #expect(RecordBuilder.mean(Array(repeating: 0.1, count: 30)) == 0.1, "compensated sum has no drift")
    }
}
