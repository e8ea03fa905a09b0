// swift-tools-version:6.0
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "Quantrac",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "quantracd", targets: ["quantracd"]),
        .executable(name: "quantrac", targets: ["quantrac"]),
        .executable(name: "quantrac-sim", targets: ["quantrac-sim"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
    ],
    targets: [
        // C libraries from Debian, through pkg-config.
        .systemLibrary(name: "CModbus", pkgConfig: "libmodbus", providers: [.apt(["libmodbus-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CSerialPort", pkgConfig: "libserialport", providers: [.apt(["libserialport-dev"])]),

        // Wrappers: the only importers of the C modules.
        .target(name: "Modbus", dependencies: ["CModbus"], swiftSettings: swiftSettings),
        .target(name: "Curl", dependencies: ["CCurl"], swiftSettings: swiftSettings),
        .target(name: "SerialPort", dependencies: ["CSerialPort"], swiftSettings: swiftSettings),

        // Domain and layers, lower never imports higher.
        .target(name: "QuantracCore", swiftSettings: swiftSettings),
        .target(name: "QuantracConfig", dependencies: ["QuantracCore", "TOMLKit"], swiftSettings: swiftSettings),
        .target(name: "FieldBus", dependencies: ["QuantracCore", "QuantracConfig", "Modbus", "SerialPort",
                                                 .product(name: "Logging", package: "swift-log")],
                swiftSettings: swiftSettings),
        .target(name: "Processing", dependencies: ["QuantracCore"], swiftSettings: swiftSettings),
        .target(name: "Storage", dependencies: ["QuantracCore", .product(name: "GRDB", package: "GRDB.swift")],
                swiftSettings: swiftSettings),
        .target(name: "Acquisition", dependencies: [
            "QuantracCore", "QuantracConfig", "FieldBus", "Storage",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], swiftSettings: swiftSettings),
        .target(name: "Reporting", dependencies: ["QuantracCore", "QuantracConfig"], swiftSettings: swiftSettings),
        .target(name: "Transmission", dependencies: [
            "QuantracCore", "QuantracConfig", "Storage", "Curl",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], swiftSettings: swiftSettings),
        .target(name: "QuantracRuntime", dependencies: [
            "QuantracCore", "QuantracConfig", "FieldBus", "Acquisition", "Processing", "Storage",
            "Reporting", "Transmission",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], swiftSettings: swiftSettings),
        .target(name: "QuantracTesting", dependencies: ["QuantracCore"], swiftSettings: swiftSettings),

        // Executables.
        .executableTarget(name: "quantracd", dependencies: [
            "QuantracRuntime", "QuantracConfig", "QuantracCore",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: swiftSettings),
        .executableTarget(name: "quantrac", dependencies: [
            "QuantracRuntime", "QuantracConfig", "FieldBus", "QuantracCore", "Storage", "Reporting", "Processing", "Modbus",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: swiftSettings),
        .executableTarget(name: "quantrac-sim", dependencies: [
            "QuantracConfig", "QuantracCore", "FieldBus", "Modbus",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: swiftSettings),

        // In-process benchmarks, run by `make bench` (Tests/Benchmarks).
        .executableTarget(name: "quantrac-bench", dependencies: [
            "QuantracCore", "QuantracConfig", "FieldBus", "Acquisition", "Processing", "Storage", "Modbus",
            "QuantracRuntime",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ], path: "Tests/Benchmarks/quantrac-bench", swiftSettings: swiftSettings),

        // Tests.
        .testTarget(name: "QuantracCoreTests", dependencies: ["QuantracCore", "QuantracTesting"], swiftSettings: swiftSettings),
        .testTarget(name: "QuantracConfigTests", dependencies: ["QuantracConfig", "QuantracTesting"],
                    resources: [.copy("Golden")], swiftSettings: swiftSettings),
        .testTarget(name: "FieldBusTests", dependencies: ["FieldBus", "QuantracConfig", "SerialPort"], swiftSettings: swiftSettings),
        .testTarget(name: "ProcessingTests", dependencies: ["Processing", "QuantracCore"], swiftSettings: swiftSettings),
        .testTarget(name: "ReportingTests", dependencies: ["Reporting", "QuantracConfig", "QuantracCore"],
                    resources: [.copy("Golden")], swiftSettings: swiftSettings),
        .testTarget(name: "StorageTests", dependencies: ["Storage", "QuantracCore", "QuantracTesting", .product(name: "GRDB", package: "GRDB.swift")], swiftSettings: swiftSettings),
        .testTarget(name: "TransmissionTests", dependencies: [
            "Transmission", "Storage", "QuantracConfig", "QuantracCore", "QuantracTesting",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], swiftSettings: swiftSettings),
        .testTarget(name: "QuantracRuntimeTests", dependencies: [
            "QuantracRuntime", "QuantracTesting", "Storage", "Acquisition", "QuantracConfig", "QuantracCore",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], swiftSettings: swiftSettings),
        .testTarget(name: "IntegrationTests", dependencies: ["QuantracTesting", "QuantracCore", "QuantracConfig", "FieldBus", "Reporting", "Transmission", "Storage"],
                    swiftSettings: swiftSettings),
    ],
    swiftLanguageModes: [.v6]
)
