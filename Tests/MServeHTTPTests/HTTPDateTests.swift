import MServeSystem
import Testing

@testable import MServeHTTP

struct HTTPDateTests {
    /// RFC 9110's own example, and a leap day.
    @Test(arguments: [(784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT"), (1_709_164_800, "Thu, 29 Feb 2024 00:00:00 GMT")])
    func formatsIMFFixdate(_ seconds: Int, _ text: String) {
        #expect(HTTPDate.format(CalendarTime(utc: seconds)) == text)
    }

    @Test func theCurrentDateHasTheFormsLength() {
        var date = HTTPDate()
        #expect(date.current().count == 29)
    }
}
