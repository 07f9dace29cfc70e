import MServe

/// One input: the bytes a client sent, fed to the parser in two pieces (where the first byte says),
/// then whatever requests came out are taken further: the JSON body, a multipart body, the router.
/// A crash, a hang or a broken invariant here is a bug the server would have had.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let first = bytes.first else { return 0 }
    let input = Array(bytes.dropFirst())
    let cut = input.isEmpty ? 0 : Int(first) % (input.count + 1)
    var parser = RequestParser(maxHeaderSize: 2048, maxBodySize: 4096)
    var start = 0
    var available = cut
    var rounds = 0
    while start < input.count && rounds < 64 {
        rounds += 1
        let result = input[start..<available].withUnsafeBufferPointer { parser.parse($0) }
        switch result {
        case .needMore, .expectsContinue:
            if available == input.count { return 0 }
            available = input.count
        case .error(let e):
            precondition([400, 413, 417, 431, 501, 505].contains(e.status), "unexpected status \(e.status)")
            return 0
        case .request(let head, let body, let consumed):
            precondition(consumed > 0 && consumed <= available - start, "consumed \(consumed) of \(available - start)")
            precondition(body.count <= 4096, "body over the limit")
            exercise(head, body)
            parser.reset()
            start += consumed
            available = max(available, start)
        }
    }
    return 0
}

// libFuzzer calls the entry point on one thread; the router is built once, not per input.
nonisolated(unsafe) private let router = Router([
    Route("/", Handler.self),
    Route(#"/items/(\w+)/([0-9]+)"#, Handler.self),
    Route("/files/(.*)", Handler.self),
])

private final class Handler: RequestHandler {}

/// A request the parser accepted, written again with Content-Length framing (no Transfer-Encoding),
/// must parse back to the same head and body: one framing, however it was sent.
private func reparse(_ head: RequestHead, _ body: [UInt8]) {
    var text = "\(head.methodName) \(head.target) HTTP/1.\(head.minorVersion)\r\n"
    func framing(_ name: String) -> Bool { ["transfer-encoding", "content-length"].contains(name.lowercased()) }
    for (name, value) in head.headers where !framing(name) {
        text += "\(name): \(value)\r\n"
    }
    if !body.isEmpty { text += "Content-Length: \(body.count)\r\n" }
    let bytes = Array((text + "\r\n").utf8) + body
    var parser = RequestParser(maxHeaderSize: 1 << 20, maxBodySize: 1 << 20)
    guard case .request(let again, let againBody, let consumed) = bytes.withUnsafeBufferPointer({ parser.parse($0) }) else {
        preconditionFailure("an accepted request did not parse again")
    }
    precondition(consumed == bytes.count && againBody == body, "framing changed on re-parse")
    precondition(again.method == head.method && again.target == head.target && again.minorVersion == head.minorVersion,
                 "request line changed on re-parse")
    let kept = head.headers.filter { !framing($0.name) }
    let back = again.headers.filter { !framing($0.name) }
    precondition(kept.map(\.name) == back.map(\.name) && kept.map(\.value) == back.map(\.value), "headers changed on re-parse")
}

private func exercise(_ head: RequestHead, _ body: [UInt8]) {
    reparse(head, body)
    _ = router.match(String(head.target.prefix { $0 != "?" }))
    if let value = try? JSONParser.parse(body) {
        // What was parsed serialises and parses back to the same value.
        precondition((try? JSONParser.parse(value.serialized())) == value, "JSON round trip")
    }
    if let type = head.header("Content-Type"), let boundary = MultipartForm.boundary(contentType: type) {
        _ = try? MultipartForm.parse(body, boundary: boundary)
    }
}
