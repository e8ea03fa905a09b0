import Foundation

/// A dedicated OS thread that owns a piece of blocking state (a libmodbus context, a curl handle) and
/// runs jobs on it one at a time, so blocking C calls never run on Swift's cooperative pool.
///
/// The state is created on the lane's thread by `makeState`, never leaves it (jobs receive it as an
/// argument) and is released on that thread when the lane ends. Jobs run in submission order.
/// After `shutdown()` (or when the lane is released), jobs already queued still run, new ones fail with
/// `CancellationError`, and the thread ends.
public final class BlockingLane<State>: Sendable {
    private let core: LaneCore<State>

    /// Starts the thread named `name` (visible in `top -H`), which builds its state with `makeState`.
    public init(name: String, makeState: @escaping @Sendable () -> State) {
        core = LaneCore()
        let core = self.core
        let thread = Thread {
            Thread.current.name = name
            core.runLoop(makeState: makeState)
        }
        thread.start()
    }

    deinit { core.shutdown() }

    /// Runs `job` on the lane thread with its state and returns its result. Suspends the caller, never blocks it.
    public func run<T: Sendable>(_ job: @escaping @Sendable (State) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let accepted = core.enqueue { state in
                do { continuation.resume(returning: try job(state)) } catch { continuation.resume(throwing: error) }
            }
            if !accepted { continuation.resume(throwing: CancellationError()) }
        }
    }

    /// Stops accepting jobs; the thread ends after the queued ones. Safe to call more than once.
    public func shutdown() { core.shutdown() }
}

/// A lane is also a task executor: a task that prefers it (`withTaskExecutorPreference`) runs its own code on
/// the lane thread between the blocking jobs it submits, so `run` then costs no thread hand-off at all
/// (a bus poller does this: one hand-off per poll would otherwise be two thread wake-ups). Once the lane
/// is shut down, such tasks go on on the global executor.
extension BlockingLane: TaskExecutor {
    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        let accepted = core.enqueue { _ in job.runSynchronously(on: executor) }
        if !accepted { DispatchQueue.global().async { job.runSynchronously(on: executor) } }
    }
}

/// The queue shared by a lane and its thread.
private final class LaneCore<State>: @unchecked Sendable {
    // Invariant for @unchecked Sendable: `queue` and `closed` are only touched under `condition`.
    private let condition = NSCondition()
    private var queue: [(State) -> Void] = []
    private var closed = false

    func enqueue(_ job: @escaping (State) -> Void) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        if closed { return false }
        queue.append(job)
        condition.signal()
        return true
    }

    func shutdown() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }

    func runLoop(makeState: () -> State) {
        let state = makeState()
        while true {
            condition.lock()
            while queue.isEmpty && !closed { condition.wait() }
            if queue.isEmpty {
                condition.unlock()
                return  // `state` is released here, on the lane thread
            }
            let job = queue.removeFirst()
            condition.unlock()
            job(state)
        }
    }
}
