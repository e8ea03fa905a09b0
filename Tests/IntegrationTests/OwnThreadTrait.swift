import QuantracCore
import Testing

/// Runs each test case of the suite (or the test) it is attached to on a thread of its own instead of
/// Swift's cooperative pool: `@Suite(.serialized, .ownThread)`.
///
/// Integration tests block while they wait for peers and subprocesses (a Python server printing its
/// port, `quantracd` printing READY, a CLI run ending, `waitUntil`). The cooperative pool has one thread
/// per core — two on the CI machine — and Swift Testing runs synchronous test functions on it too, so a
/// few such waits, or the packaging test's three minutes, left the in-process tests (the systemd
/// notifier, the status board, the transmission queue) without a thread for seconds: their timing
/// expectations failed at random. With this trait the test body and every task it starts prefer a
/// `BlockingLane` made for that test case (`withTaskExecutorPreference`); the lane ends with the case.
///
/// The test's own tasks then share that one thread. That is what the integration suites want (they
/// drive subprocesses and wait), but a test whose body blocks until one of its own child tasks has
/// run would wait forever: such a test must not use this trait.
struct OwnThreadTrait: TestTrait, SuiteTrait, TestScoping {
    var isRecursive: Bool { true }

    /// A scope for every test case; none for a suite as a whole (its cases get theirs).
    func scopeProvider(for test: Test, testCase: Test.Case?) -> OwnThreadTrait? {
        testCase == nil ? nil : self
    }

    func provideScope(for test: Test, testCase: Test.Case?,
                      performing function: @Sendable () async throws -> Void) async throws {
        let lane = BlockingLane<Void>(name: "test " + test.name.prefix(10)) {}
        defer { lane.shutdown() }
        try await withTaskExecutorPreference(lane) { try await function() }
    }
}

extension Trait where Self == OwnThreadTrait {
    /// Run each test case on its own thread, off the cooperative pool (see `OwnThreadTrait`).
    static var ownThread: OwnThreadTrait { OwnThreadTrait() }
}
