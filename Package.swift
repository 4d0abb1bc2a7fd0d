// swift-tools-version:6.0
import PackageDescription

// In release builds lld lays out the functions a run executes side by side, in the order
// Helpers/order-text recorded (Helpers/build-urun gives each function its own section):
// the static executable's code is mapped from the page cache with fault-around, so code
// spread over the text made almost all of it resident (Docs/performance.md, "Memory").
let textOrder = String(#filePath.dropLast("Package.swift".count)) + "Sources/urun/text-order.txt"

// One library per concern; the `urun` executable is thin glue over them.
// Concern targets depend only on UrunKernel (and their C shims), never on each other;
// UrunContainer is the one place that knows the order of the steps.
let package = Package(
    name: "urun",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "urun", targets: ["urun"]),
        // Registries: libcurl and OpenSSL, dynamically linked, in a process of their own.
        .executable(name: "urun-transfer", targets: ["urun-transfer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
    ],
    targets: [
        .target(name: "CUrunSyscalls"),
        .target(name: "CUrunSHA256"),
        .target(name: "CUrunSecurity", linkerSettings: [.linkedLibrary("seccomp"), .linkedLibrary("cap")]),
        .target(
            name: "CUrunArchive",
            linkerSettings: [
                .linkedLibrary("archive"), .linkedLibrary("zstd"), .linkedLibrary("lzma"),
                .linkedLibrary("bz2"), .linkedLibrary("z"),
            ]),
        .target(name: "CUrunCurl", linkerSettings: [.linkedLibrary("curl")]),
        .target(
            name: "UrunKernel",
            dependencies: ["CUrunSyscalls", "CUrunSHA256", .product(name: "SystemPackage", package: "swift-system")]),
        .target(name: "UrunUserNS", dependencies: ["UrunKernel"]),
        .target(name: "UrunRootfs", dependencies: ["UrunKernel"]),
        .target(name: "UrunImage", dependencies: ["UrunKernel", "CUrunArchive"]),
        .target(name: "UrunRegistry", dependencies: ["UrunKernel"]),
        .target(name: "UrunHTTP", dependencies: ["UrunKernel", "CUrunCurl"]),
        .target(name: "UrunProcess", dependencies: ["UrunKernel"]),
        .target(name: "UrunCgroups", dependencies: ["UrunKernel"]),
        .target(name: "UrunSecurity", dependencies: ["UrunKernel", "CUrunSecurity", "CUrunSyscalls"]),
        .target(name: "UrunNetwork", dependencies: ["UrunKernel", "CUrunSyscalls"]),
        .target(name: "UrunOCI", dependencies: ["UrunKernel"]),
        .target(name: "UrunCLI"),
        .target(
            name: "UrunContainer",
            dependencies: [
                "UrunKernel", "UrunUserNS", "UrunRootfs", "UrunImage", "UrunProcess", "UrunCgroups", "UrunSecurity",
                "UrunNetwork", "UrunOCI", "UrunRegistry", "CUrunSyscalls",
            ]),
        .executableTarget(
            name: "urun",
            dependencies: [
                "UrunCLI", "UrunContainer", "UrunKernel", "UrunCgroups", "UrunProcess", "UrunSecurity", "UrunUserNS",
                "UrunNetwork", "UrunOCI", "UrunRegistry",
            ],
            exclude: ["text-order.txt"],
            linkerSettings: [
                .unsafeFlags(
                    ["-use-ld=lld", "-Xlinker", "--symbol-ordering-file=" + textOrder, "-Xlinker", "--no-warn-symbol-ordering"],
                    .when(configuration: .release)),
            ]),
        .executableTarget(name: "urun-transfer", dependencies: ["UrunKernel", "UrunRegistry", "UrunHTTP"]),

        .testTarget(name: "UrunKernelTests", dependencies: ["UrunKernel"]),
        .testTarget(name: "UrunUserNSTests", dependencies: ["UrunUserNS"]),
        .testTarget(name: "UrunRootfsTests", dependencies: ["UrunRootfs"]),
        .target(name: "UrunTestSupport", dependencies: ["CUrunSHA256"], path: "Tests/UrunTestSupport"),
        .testTarget(name: "UrunImageTests", dependencies: ["UrunImage", "UrunTestSupport", "CUrunSyscalls"]),
        .testTarget(name: "UrunProcessTests", dependencies: ["UrunProcess"]),
        .testTarget(name: "UrunCgroupsTests", dependencies: ["UrunCgroups", "UrunTestSupport"]),
        .testTarget(name: "UrunSecurityTests", dependencies: ["UrunSecurity", "CUrunSecurity", "CUrunSyscalls"]),
        .testTarget(
            name: "UrunContainerTests",
            dependencies: ["UrunContainer", "UrunOCI", "UrunImage", "UrunRootfs", "UrunUserNS", "UrunSecurity", "UrunCgroups"]),
        .testTarget(name: "UrunCLITests", dependencies: ["UrunCLI"]),
        .testTarget(name: "UrunNetworkTests", dependencies: ["UrunNetwork"]),
        .testTarget(name: "UrunOCITests", dependencies: ["UrunOCI"]),
        .testTarget(name: "UrunRegistryTests", dependencies: ["UrunRegistry"]),
        .testTarget(name: "UrunIntegrationTests", dependencies: ["UrunTestSupport"]),
    ]
)
