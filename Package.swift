// swift-tools-version:6.2
import PackageDescription

/// Flags for this machine's build, an opt-in (scripts/setup and scripts/test set MSERVE_NATIVE=1):
/// a package that depends on mserve gets none, since SwiftPM refuses unsafe flags in a dependency.
let native = Context.environment["MSERVE_NATIVE"] == "1"

/// The request path's modules in release builds: no run-time exclusivity checks (swift_beginAccess
/// was ~2% of a worker's user time); debug builds, which the tests run, keep them.
let requestPath: [SwiftSetting] = native ? [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))] : []

/// The models' kernels (GGUFInference, MiniLM): this CPU's instructions (AVX2, and AVX-512 VNNI where it has
/// them: see CAVX2 and CAVX512), and optimized in debug builds too (in -Onone the tests would take
/// minutes).  Without MSERVE_NATIVE they build for baseline x86-64 (GGUFInference then runs its float kernels).
let kernels: [SwiftSetting] = native ? [.unsafeFlags(["-O", "-Xcc", "-march=native"])] : []

let package = Package(
    name: "mserve",
    platforms: [.macOS(.v14)],
    products: [
        // Users build their own server from this library (see Examples/ and the README).
        .library(name: "MServe", targets: ["MServe"]),
        .library(name: "MServeServer", targets: ["MServeServer"]),
        .library(name: "MServeTesting", targets: ["MServeTesting"]),
        .library(name: "MiniLM", targets: ["MiniLM"]),
        .library(name: "MServeMiniLM", targets: ["MServeMiniLM"]),
        .library(name: "GGUFInference", targets: ["GGUFInference"]),
        .library(name: "Jinja", targets: ["Jinja"]),
        .library(name: "Grammar", targets: ["Grammar"]),
        .executable(name: "mserve", targets: ["mserve"]),
    ],
    dependencies: [
        .package(url: "https://github.com/LebJe/TOMLKit", exact: "0.6.0"),
        // swift-log: a model author's Logger lines go to mserve's error log (SwiftLogHandler).
        .package(url: "https://github.com/apple/swift-log", exact: "1.16.2"),
    ],
    targets: [
        // libevent through pkg-config; libevent_pthreads pulls libevent in.
        .systemLibrary(name: "CEvent", pkgConfig: "libevent_pthreads",
                       providers: [.apt(["libevent-dev"])]),
        // OpenBLAS's CBLAS through pkg-config (Debian's pthread build: see Sources/COpenBLAS/shim.h).
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        // CPython embedded, for models written in Python (see Sources/CPython/shim.h).
        // Present only when the build targets AVX2 and FMA, or AVX-512 VNNI: selects GGUFInference's integer
        // kernels, and its 512-bit ones.
        .systemLibrary(name: "CAVX2", path: "Sources/CAVX2"),
        .systemLibrary(name: "CAVX512", path: "Sources/CAVX512"),
        .systemLibrary(name: "CPython", pkgConfig: "python3-embed", providers: [.apt(["python3-dev"])]),
        // OpenSSL's TLS through pkg-config, for HTTPS (--certfile).
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        // A system call Swift's Glibc module does not declare (see the header).
        .target(name: "CSystemShim"),
        // The one layer that talks to C: event loop, processes, threads and locks safe after fork, systemd, socket steering.
        .target(name: "MServeSystem", dependencies: ["CEvent", "CSystemShim", "COpenSSL"], swiftSettings: requestPath),
        // The JSON value, parser and writer: no dependencies, shared by the server and MiniLM.
        .target(name: "MServeJSON", swiftSettings: requestPath),
        // all-MiniLM-L6-v2 sentence embeddings: safetensors, WordPiece, the BERT encoder; no server code.
        .target(name: "MiniLM", dependencies: ["COpenBLAS", "MServeJSON", "MServeSystem"], swiftSettings: kernels),
        // Jinja templates as chat templates use them (a GGUF file's tokenizer.chat_template): no dependencies.
        .target(name: "Jinja"),
        // Constrained decoding: GBNF grammars, JSON Schema as one, the matcher a sequence's text walks.
        .target(name: "Grammar", dependencies: ["MServeJSON"]),
        // Generative models from GGUF files (SmolLM2): the file, its block formats; no server code.
        .target(name: "GGUFInference", dependencies: ["CAVX2", "CAVX512", "CSystemShim", "Jinja", "Grammar", "MServeJSON", "MServeSystem"], swiftSettings: kernels),
        // HTTP/1.1: parser, request, response serializer and writer, connection timeouts, server; no routing.
        .target(name: "MServeHTTP", dependencies: ["MServeSystem"], swiftSettings: requestPath),
        // What model authors import: the model API and runtime, handlers and routing, logs, metrics.
        .target(name: "MServe", dependencies: ["MServeHTTP", "MServeSystem", "MServeJSON", .product(name: "Logging", package: "swift-log")],
                swiftSettings: requestPath),
        // `mserve bench`: the load generator (open and closed loops, its HTTP client and response
        // parser, latency histograms, the report); no server code.
        .target(name: "MServeBench", dependencies: ["MServe", "MServeHTTP", "MServeSystem"]),
        // The server: configuration (flags, TOML), the arbiter and master, the worker, the command line.
        .target(name: "MServeServer", dependencies: ["MServe", "MServeBench", "MServeHTTP", "MServeSystem", "TOMLKit"]),
        // The minilm model: MiniLM behind mserve's model API, registered by the executable.
        .target(name: "MServeMiniLM", dependencies: ["MServe", "MiniLM"]),
        // The smollm2 chat model: GGUFInference behind mserve's model API, registered by the executable.
        .target(name: "MServeSmolLM", dependencies: ["MServe", "GGUFInference", "Grammar"]),
        // Models written in Python: a class or function run by each worker's embedded interpreter.
        .target(name: "MServePython", dependencies: ["MServe", "CPython"]),
        // For tests of handlers and models: the HTTP layer and router in-process, a null logger, contexts.
        .target(name: "MServeTesting", dependencies: ["MServe", "MServeHTTP", "MServeSystem"]),
        .executableTarget(name: "mserve", dependencies: ["MServe", "MServeServer", "MServeMiniLM", "MServeSmolLM", "MServePython"]),
        .testTarget(name: "MServeSystemTests", dependencies: ["MServeSystem"]),
        .testTarget(name: "MServeJSONTests", dependencies: ["MServeJSON"]),
        .testTarget(name: "MServeHTTPTests", dependencies: ["MServeHTTP", "MServeSystem"]),
        .testTarget(name: "MServeTests", dependencies: ["MServe", "MServeHTTP", "MServeSystem", "MServeTesting",
                                                     .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "MServeServerTests", dependencies: ["MServeServer", "MServe", "MServeSystem"]),
        .testTarget(name: "MServeBenchTests", dependencies: ["MServeBench", "MServe", "MServeSystem"]),
        .testTarget(name: "MiniLMTests", dependencies: ["MiniLM"]),
        .testTarget(name: "JinjaTests", dependencies: ["Jinja", "GGUFInference", "MServeJSON", "MServeSystem"]),
        .testTarget(name: "GrammarTests", dependencies: ["Grammar", "MServeJSON"]),
        .testTarget(name: "GGUFInferenceTests", dependencies: ["GGUFInference", "Jinja", "MServeJSON", "MServeSystem"]),
        .testTarget(name: "MServePythonTests", dependencies: ["MServePython", "MServe", "MServeTesting"]),
        .testTarget(name: "MServeSmolLMTests", dependencies: ["MServeSmolLM", "MServe", "GGUFInference"]),
    ]
)
