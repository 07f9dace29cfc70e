import MServeSystem
import Testing

@testable import MServeHTTP

@Suite struct MultipartTests {
    let body = Array(
        ("--XyZ\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\ndescribe this\r\n"
            + "--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"cat.png\"\r\nContent-Type: image/png\r\n\r\n"
            + "\u{1}\u{2}\r\n--X\r\n"
            + "\r\n--XyZ--\r\n").utf8)

    @Test func fieldsAndFiles() throws {
        #expect(MultipartForm.boundary(contentType: "multipart/form-data; boundary=\"XyZ\"") == "XyZ")
        #expect(MultipartForm.boundary(contentType: "multipart/form-data; charset=utf-8; boundary=XyZ") == "XyZ")
        let form = try MultipartForm.parse(body, boundary: "XyZ")
        #expect(form.fields.map(\.0) == ["prompt"] && form.fields.map(\.1) == ["describe this"])
        // The file keeps its bytes, including a CRLF and a near-boundary inside it.
        #expect(
            form.files == [
                UploadedFile(
                    field: "image", filename: "cat.png", contentType: "image/png",
                    data: Array("\u{1}\u{2}\r\n--X\r\n".utf8))
            ])
    }

    @Test(arguments: [
        "no boundary here", "--XyZ\r\nContent-Disposition: form-data\r\n\r\nx\r\n--XyZ--\r\n",
        "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunterminated",
        "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\nno blank line"
    ])
    func malformedBodiesAreInputErrors(_ text: String) {
        #expect(throws: MultipartError.self) { try MultipartForm.parse(Array(text.utf8), boundary: "XyZ") }
    }

    @Test func mediaTypePatterns() {
        #expect(MediaType.matches("image/png", pattern: "image/*"))
        #expect(MediaType.matches("image/png", pattern: "*/*"))
        #expect(!MediaType.matches("text/plain", pattern: "image/*"))
        #expect(MediaType.matches("application/vnd.api+json", pattern: "application/json"))
    }
}
