// swift-tools-version:6.0
// Your own model, served by mserve: a Swift package that depends on mserve's library.
import PackageDescription

let package = Package(
    name: "WordCount",
    platforms: [.macOS(.v14)],
    dependencies: [
        // In your own package: .package(url: "<mserve's repository>", from: "0.1.0")
        .package(name: "mserve", path: "../.."),
    ],
    targets: [
        .target(name: "WordCountModel", dependencies: [.product(name: "MServe", package: "mserve")]),
        // The server links mserve's server layer; the model itself needs only the MServe library.
        .executableTarget(name: "wordcount-server", dependencies: ["WordCountModel", .product(name: "MServe", package: "mserve"),
                                                                   .product(name: "MServeServer", package: "mserve")]),
        .testTarget(name: "WordCountModelTests", dependencies: ["WordCountModel", .product(name: "MServe", package: "mserve"),
                                                               .product(name: "MServeTesting", package: "mserve")]),
    ]
)
