/// One file of a multipart/form-data upload.
public struct UploadedFile: Sendable, Equatable {
    /// The form field it came in.
    public var field: String
    public var filename: String
    public var contentType: String
    public var data: [UInt8]
}

/// A multipart/form-data body (RFC 7578), split into text fields and files.
public struct MultipartForm: Sendable, Equatable {
    public var fields: [(String, String)] = []
    public var files: [UploadedFile] = []

    public static func == (a: MultipartForm, b: MultipartForm) -> Bool {
        a.fields.map(\.0) == b.fields.map(\.0) && a.fields.map(\.1) == b.fields.map(\.1) && a.files == b.files
    }

    static let maxParts = 1000

    /// The boundary parameter of a multipart Content-Type, or nil.
    public static func boundary(contentType: String) -> String? {
        for param in contentType.split(separator: ";").dropFirst() {
            let kv = param.split(separator: "=", maxSplits: 1).map { $0.trimmingSpaces() }
            guard kv.count == 2, kv[0].lowercased() == "boundary" else { continue }
            var b = kv[1]
            if b.hasPrefix("\""), b.hasSuffix("\""), b.count >= 2 { b = String(b.dropFirst().dropLast()) }
            return (1...70).contains(b.utf8.count) ? b : nil
        }
        return nil
    }

    /// Parses the body; a malformed one is a `MultipartError` naming what is wrong (400).
    public static func parse(_ body: [UInt8], boundary: String) throws -> MultipartForm {
        let delimiter = Array("--\(boundary)".utf8)
        var form = MultipartForm()
        guard var pos = find(delimiter, in: body, from: 0) else { throw MultipartError("multipart body without its boundary") }
        var parts = 0
        while true {
            pos += delimiter.count
            // "--" after a delimiter ends the body.
            if pos + 2 <= body.count && body[pos] == UInt8(ascii: "-") && body[pos + 1] == UInt8(ascii: "-") { return form }
            guard let lineEnd = find([0x0D, 0x0A], in: body, from: pos) else {
                throw MultipartError("multipart body ends without its closing boundary")
            }
            pos = lineEnd + 2
            guard let headEnd = find([0x0D, 0x0A, 0x0D, 0x0A], in: body, from: pos) else {
                throw MultipartError("multipart part without the blank line after its headers")
            }
            let headers = String(decoding: body[pos..<headEnd], as: UTF8.self).components(separatedByCRLF: ())
            pos = headEnd + 4
            guard let next = find([0x0D, 0x0A] + delimiter, in: body, from: pos) else {
                throw MultipartError("multipart part without a boundary after it")
            }
            let data = Array(body[pos..<next])
            pos = next + 2
            parts += 1
            if parts > maxParts { throw MultipartError("more than \(maxParts) multipart parts") }

            var name: String?
            var filename: String?
            var type = "text/plain"
            for h in headers {
                let kv = h.split(separator: ":", maxSplits: 1)
                guard kv.count == 2 else { continue }
                let key = kv[0].trimmingSpaces().lowercased()
                let value = kv[1].trimmingSpaces()
                if key == "content-disposition" {
                    name = parameter("name", in: value)
                    filename = parameter("filename", in: value)
                } else if key == "content-type" {
                    type = value
                }
            }
            guard let name else { throw MultipartError("multipart part without a name in Content-Disposition") }
            if let filename {
                form.files.append(UploadedFile(field: name, filename: filename, contentType: type, data: data))
            } else {
                form.fields.append((name, String(decoding: data, as: UTF8.self)))
            }
        }
    }

    private static func parameter(_ name: String, in value: String) -> String? {
        for param in value.split(separator: ";").dropFirst() {
            let kv = param.split(separator: "=", maxSplits: 1).map { $0.trimmingSpaces() }
            guard kv.count == 2, kv[0].lowercased() == name else { continue }
            var v = kv[1]
            if v.hasPrefix("\""), v.hasSuffix("\""), v.count >= 2 { v = String(v.dropFirst().dropLast()) }
            return v
        }
        return nil
    }

    private static func find(_ needle: [UInt8], in hay: [UInt8], from: Int) -> Int? {
        guard !needle.isEmpty, hay.count >= needle.count else { return nil }
        var i = from
        let last = hay.count - needle.count
        let first = needle[0]
        while i <= last {
            if hay[i] == first {
                var j = 1
                while j < needle.count && hay[i + j] == needle[j] { j += 1 }
                if j == needle.count { return i }
            }
            i += 1
        }
        return nil
    }
}

extension String {
    fileprivate func components(separatedByCRLF: ()) -> [String] {
        split(separator: "\r\n", omittingEmptySubsequences: true).map(String.init)
    }
}

/// A multipart body that cannot be read, and why (the handler answers 400 with the message).
public struct MultipartError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
