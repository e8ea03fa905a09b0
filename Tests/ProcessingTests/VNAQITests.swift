import Processing
import Testing

/// Vectors from the guide (QĐ 1459/QĐ-TCMT) as quoted in circular.md §4.3.
struct VNAQITests {
    @Test func nowCastFromTheGuide() throws {
        // 09:00 → 20:00; NowCast takes the current hour first.
        let series = [26.9, 24.7, 20.5, 23.5, 19.5, 16.5, 19.0, 16.5, 20.3, 22.4, 19.6, 20.6]
        let n = try #require(VNAQI.nowCast(series.reversed().map { $0 }))
        #expect((n.weight * 100).rounded() / 100 == 0.61)
        #expect((n.value * 10).rounded() / 10 == 20.3)
    }

    @Test func nowCastNeedsTwoOfTheLastThreeHours() {
        #expect(VNAQI.nowCast([nil, nil, 30, 30, 30]) == nil)
        #expect(VNAQI.nowCast([30, nil, 20])?.value != nil)
        // Missing hours weigh nothing; a low ratio is floored at 1/2.
        let n = VNAQI.nowCast([100, nil, 10])!
        #expect(n.weight == 0.5)
        #expect(abs(n.value - (100 + 0.25 * 10) / 1.25) < 1e-9)
    }

    @Test func dailyExampleFromTheGuide() {
        let r = VNAQI.daily(pm24h: [.pm25: 55.7], max1h: [.o3: 114.6, .no2: 130.8], o3Max8h: 89.3)
        #expect(VNAQI.subIndexO3_8h(89.3) == 45)
        #expect(VNAQI.subIndex(.o3, 114.6) == 36)
        #expect(VNAQI.subIndex(.no2, 130.8) == 65)
        #expect(VNAQI.subIndex(.pm25, 55.7) == 110)
        #expect(r.subIndices == [.o3: 45, .no2: 65, .pm25: 110])
        #expect(r.aqi == 110 && r.dominant == .pm25 && r.category == .poor)
    }

    @Test func hourlyNO2IsTheFormulaNotTheGuidesSlip() {
        #expect(VNAQI.subIndex(.no2, 118.7) == 59)
    }

    @Test func noPMNoAQIAndCaps() {
        #expect(VNAQI.hourly(oneHour: [.no2: 50], pmHistory: [:]).aqi == nil)
        #expect(VNAQI.subIndex(.pm25, 900) == 500)
        #expect(VNAQI.subIndex(.pm10, 0) == 0)
        // The O3 8-hour index is not used above 400 µg/m³.
        let r = VNAQI.daily(pm24h: [.pm10: 10], max1h: [.o3: 500], o3Max8h: 450)
        #expect(r.subIndices[.o3] == VNAQI.subIndex(.o3, 500))
    }

    @Test func categoriesAndColours() {
        #expect(VNAQI.Category(aqi: 50) == .good && VNAQI.Category(aqi: 51) == .moderate)
        #expect(VNAQI.Category(aqi: 150) == .poor && VNAQI.Category(aqi: 151) == .bad)
        #expect(VNAQI.Category(aqi: 300) == .veryBad && VNAQI.Category(aqi: 301) == .hazardous)
        #expect(VNAQI.Category.poor.rgb == (255, 126, 0) ? true : false)
    }

    @Test func ppbConversionAt25C() throws {
        // 1 ppb NO2 at 25 °C ≈ 1.881 µg/m³; at 0 °C ≈ 2.053.
        let at25 = try #require(VNAQI.microgramsPerCubicMetre(ppb: 1, pollutant: .no2))
        #expect(abs(at25 - 1.8807) < 1e-3)
        #expect(abs(VNAQI.microgramsPerCubicMetre(ppb: 1, pollutant: .no2, celsius: 0)! - 2.0528) < 1e-3)
        #expect(VNAQI.microgramsPerCubicMetre(ppb: 1, pollutant: .pm25) == nil)
    }
}
