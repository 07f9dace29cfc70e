// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "mserve",
    platforms: [.macOS(.v14)],
    products: [
        // Users build their own server from this library (see Examples/ and the README).
        .library(name: "MServe", targets: ["MServe"]),
        .executable(name: "mserve", targets: ["mserve"]),
    ],
    dependencies: [
        .package(url: "https://github.com/LebJe/TOMLKit", exact: "0.6.0"),
    ],
    targets: [
        // libevent through pkg-config; libevent_pthreads pulls libevent in.
        .systemLibrary(name: "CEvent", pkgConfig: "libevent_pthreads",
                       providers: [.apt(["libevent-dev"])]),
        // A system call Swift's Glibc module does not declare (see the header).
        .target(name: "CSystemShim"),
        .target(name: "MServe", dependencies: ["CEvent", "CSystemShim", "TOMLKit"]),
        .executableTarget(name: "mserve", dependencies: ["MServe"]),
        .testTarget(name: "MServeTests", dependencies: ["MServe"]),
    ]
)
