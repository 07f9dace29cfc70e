// swift-tools-version:6.0
// libFuzzer over mserve's request path (parsing, framing, JSON, multipart, routing).  A package of its
// own, because its executable has no main (libFuzzer brings it) and would not link in a normal build.
//   swift build --package-path Fuzz -c release --sanitize=fuzzer
//   Fuzz/.build/release/RequestFuzzer -max_total_time=600 Fuzz/corpus
import PackageDescription

let package = Package(
    name: "Fuzz",
    dependencies: [.package(name: "mserve", path: "..")],
    targets: [
        .executableTarget(name: "RequestFuzzer", dependencies: [.product(name: "MServe", package: "mserve")]),
    ]
)
