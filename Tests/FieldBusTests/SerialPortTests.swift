import SerialPort
import Testing

/// The libserialport wrapper's typed errors (the happy path runs on a pty in IntegrationTests/SerialAnalyzerTests).
struct SerialPortTests {
    @Test func aMissingDeviceIsNotFound() {
        #expect(throws: SerialPortError(code: .notFound, function: "", context: "", message: "")) {
            _ = try SerialPort(path: "/dev/ttyQUANTRAC-none", settings: SerialSettings(baud: 9600))
        }
    }

    @Test func aNonSerialDeviceIsRefusedWithItsPath() {
        do {
            _ = try SerialPort(path: "/dev/null", settings: SerialSettings(baud: 9600))
            Issue.record("/dev/null opened as a serial port")
        } catch {
            #expect(error.code == .notFound)
            #expect(error.description.contains("/dev/null"))
        }
    }

    @Test func settingsPrintLikeATechnicianWritesThem() {
        #expect(SerialSettings(baud: 9600).description == "9600 8N1")
        #expect(SerialSettings(baud: 19200, parity: .even, dataBits: 7, stopBits: 2).description == "19200 7E2")
    }
}
