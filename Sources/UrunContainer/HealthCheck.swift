import CUrunSyscalls
import Glibc
import UrunKernel

/// A container's health check, docker's HEALTHCHECK: a command run inside the
/// running container every `interval` by its monitor (or now, by `urun
/// healthcheck run`); `retries` failures in a row make it unhealthy, one
/// success healthy again. Failures during `startPeriod` do not count.
public struct HealthCheck: Equatable, Sendable {
    /// docker's form: ["CMD", ARG...] runs directly, ["CMD-SHELL", "cmd"] through /bin/sh -c.
    public var test: [String]
    public var intervalMilliseconds = 30_000
    public var timeoutMilliseconds = 30_000
    public var startPeriodMilliseconds = 0
    public var retries = 3

    public init(test: [String]) {
        self.test = test
    }

    /// `--health-cmd CMD`: a shell command, as docker takes it.
    public init(shellCommand: String) {
        self.init(test: ["CMD-SHELL", shellCommand])
    }

    /// The command run in the container.
    public var command: [String] {
        switch test.first {
        case "CMD-SHELL": return ["/bin/sh", "-c", test.dropFirst().joined(separator: " ")]
        case "CMD": return Array(test.dropFirst())
        default: return test
        }
    }

    /// An image's Healthcheck (durations in nanoseconds); nil when it has
    /// none, or says NONE.
    public init?(image json: JSON?) {
        guard let json, let test = json["Test"]?.strings, let first = test.first, first != "NONE", test.count > 1 || first != "CMD" else {
            return nil
        }
        self.init(test: first == "CMD" || first == "CMD-SHELL" ? test : ["CMD-SHELL"] + test)
        func milliseconds(_ key: String) -> Int? {
            guard let ns = json[key]?.integer(Int64.self), ns > 0, ns < 1 << 53 else { return nil }
            return Int(ns / 1_000_000)
        }
        intervalMilliseconds = milliseconds("Interval") ?? intervalMilliseconds
        timeoutMilliseconds = milliseconds("Timeout") ?? timeoutMilliseconds
        startPeriodMilliseconds = milliseconds("StartPeriod") ?? startPeriodMilliseconds
        if let retries = json["Retries"]?.int, (1...1_000_000).contains(retries) { self.retries = retries }
    }

    /// docker's inspect form (Config.Healthcheck), nanoseconds.
    public var dockerJSON: JSON {
        .object([
            ("Test", .array(test.map(JSON.string))), ("Interval", .int(Int64(intervalMilliseconds) * 1_000_000)),
            ("Timeout", .int(Int64(timeoutMilliseconds) * 1_000_000)), ("StartPeriod", .int(Int64(startPeriodMilliseconds) * 1_000_000)),
            ("Retries", .int(retries)),
        ])
    }

    var json: JSON {
        .object([
            ("test", .array(test.map(JSON.string))), ("intervalMs", .int(intervalMilliseconds)), ("timeoutMs", .int(timeoutMilliseconds)),
            ("startPeriodMs", .int(startPeriodMilliseconds)), ("retries", .int(retries)),
        ])
    }

    init?(json: JSON?) {
        guard let json, let test = json["test"]?.strings, !test.isEmpty else { return nil }
        self.init(test: test)
        func value(_ key: String, _ range: ClosedRange<Int>) -> Int? { json[key]?.int.flatMap { range.contains($0) ? $0 : nil } }
        intervalMilliseconds = value("intervalMs", 1...Self.maximumMilliseconds) ?? intervalMilliseconds
        timeoutMilliseconds = value("timeoutMs", 1...Self.maximumMilliseconds) ?? timeoutMilliseconds
        startPeriodMilliseconds = value("startPeriodMs", 0...Self.maximumMilliseconds) ?? startPeriodMilliseconds
        retries = value("retries", 1...1_000_000) ?? retries
    }

    /// A year: longer than any check needs, short enough for poll's timeout arithmetic.
    public static let maximumMilliseconds = 366 * 86_400_000

    /// A Go-style duration in milliseconds, within a year (`goDurationMilliseconds`).
    public static func milliseconds(_ text: String) -> Int? { goDurationMilliseconds(text, limit: maximumMilliseconds) }
}

/// The timing flags, each given or not: with --health-cmd or over the image's check.
public struct HealthSettings: Equatable, Sendable {
    public var intervalMilliseconds: Int?
    public var timeoutMilliseconds: Int?
    public var startPeriodMilliseconds: Int?
    public var retries: Int?

    public init() {}

    public func apply(to check: inout HealthCheck) {
        check.intervalMilliseconds = intervalMilliseconds ?? check.intervalMilliseconds
        check.timeoutMilliseconds = timeoutMilliseconds ?? check.timeoutMilliseconds
        check.startPeriodMilliseconds = startPeriodMilliseconds ?? check.startPeriodMilliseconds
        check.retries = retries ?? check.retries
    }
}

/// docker's health states.
public enum HealthStatus: String, Sendable {
    case starting, healthy, unhealthy
}

/// One run of the check, as docker's inspect shows it (State.Health.Log).
public struct HealthResult: Sendable {
    public var start: Timestamp
    public var end: Timestamp
    /// The command's exit code; -1 when it ran past the timeout or could not start.
    public var exitCode: Int32
    /// The start of its output (docker keeps 4096 bytes).
    public var output: String

    public static let outputLimit = 4096
}

/// The health of a running container (health.json in its runtime
/// directory, next to state.json, which only the monitor and the verbs
/// write): written under a lock by whoever ran the check.
public struct HealthState: Sendable {
    public var status: HealthStatus = .starting
    public var failingStreak = 0
    /// The last five results, oldest first.
    public var log: [HealthResult] = []

    public init() {}

    /// Counts `result` in: a success makes the container healthy; a failure
    /// after the start period adds to the streak, unhealthy at `retries`.
    public mutating func record(_ result: HealthResult, check: HealthCheck, containerStarted: Timestamp?) {
        log = Array((log + [result]).suffix(5))
        if result.exitCode == 0 {
            status = .healthy
            failingStreak = 0
            return
        }
        let inStartPeriod = containerStarted.map { started in
            let elapsed = (result.start.seconds - started.seconds) * 1000 + (result.start.nanoseconds - started.nanoseconds) / 1_000_000
            return elapsed < check.startPeriodMilliseconds
        } ?? false
        guard !inStartPeriod else { return }
        failingStreak += 1
        if failingStreak >= check.retries { status = .unhealthy }
    }

    /// docker's State.Health.
    public var json: JSON {
        .object([
            ("Status", .string(status.rawValue)), ("FailingStreak", .int(failingStreak)),
            ("Log", .array(log.map { result in
                .object([("Start", .string(result.start.rfc3339)), ("End", .string(result.end.rfc3339)),
                         ("ExitCode", .int(result.exitCode)), ("Output", .string(result.output))])
            })),
        ])
    }

    public init(json: JSON) {
        status = json["Status"]?.string.flatMap(HealthStatus.init(rawValue:)) ?? .starting
        failingStreak = max(0, json["FailingStreak"]?.int ?? 0)
        log = (json["Log"]?.array ?? []).suffix(5).compactMap { entry in
            guard let start = entry["Start"]?.string.flatMap(Timestamp.init(rfc3339:)),
                let end = entry["End"]?.string.flatMap(Timestamp.init(rfc3339:)),
                let code = entry["ExitCode"]?.integer(Int32.self)
            else { return nil }
            return HealthResult(start: start, end: end, exitCode: code, output: String((entry["Output"]?.string ?? "").prefix(HealthResult.outputLimit)))
        }
    }
}

/// One run of a health check in flight: `urun exec` of the check's command,
/// its output in a memfd (a chatty check never blocks on a pipe).
struct HealthProbe {
    let pid: pid_t
    let pidfd: CInt
    let output: CInt
    let start: Timestamp
    let deadline: Double

    /// Starts the check against container `id`; nil if it could not start.
    static func start(_ check: HealthCheck, container id: String, globalArguments: [String]) -> HealthProbe? {
        let output = urun_memfd("urun-health-output")
        guard output >= 0 else { return nil }
        let devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { closeQuietly(devnull) }
        let arguments = ["urun"] + globalArguments + ["exec", id] + check.command
        // The monitor's own environment, as it is (the check's is the container's, set by exec).
        let pid = withCStrings(arguments) { argv in
            [devnull, output, output].withUnsafeBufferPointer { urun_spawn_tied("/proc/self/exe", argv, environ, $0.baseAddress, 3) }
        }
        guard pid > 0 else {
            closeQuietly(output)
            return nil
        }
        let pidfd = urun_pidfd_open(pid)
        return HealthProbe(pid: pid, pidfd: pidfd, output: output, start: .now(),
                           deadline: monotonicSeconds() + Double(check.timeoutMilliseconds) / 1000)
    }

    /// Milliseconds until the check's timeout (0 when past).
    var remainingMilliseconds: Int { max(0, Int((deadline - monotonicSeconds()) * 1000)) }

    /// The result once it has exited (nil: still running); past the deadline
    /// it is killed and counts as a failure, as docker's.
    func result(force: Bool = false) -> HealthResult? {
        var status: CInt = 0
        var code: Int32
        if waitpid(pid, &status, WNOHANG) == pid {
            code = urun_wifexited(status) != 0 ? urun_wexitstatus(status) : 128 + urun_wtermsig(status)
        } else if force || remainingMilliseconds == 0 {
            kill(pid, SIGKILL)
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            code = -1
        } else {
            return nil
        }
        var bytes = [UInt8](repeating: 0, count: HealthResult.outputLimit)
        let n = bytes.withUnsafeMutableBytes { pread(output, $0.baseAddress, $0.count, 0) }
        closeQuietly(output)
        if pidfd >= 0 { closeQuietly(pidfd) }
        var text = String(decoding: bytes.prefix(max(0, n)), as: UTF8.self)
        if code == -1 { text += "health check exceeded its timeout" }
        return HealthResult(start: start, end: .now(), exitCode: code, output: text)
    }

    /// Runs the check to the end (urun healthcheck run).
    static func run(_ check: HealthCheck, container id: String, globalArguments: [String]) -> HealthResult {
        guard let probe = start(check, container: id, globalArguments: globalArguments) else {
            return HealthResult(start: .now(), end: .now(), exitCode: -1, output: "the health check could not start: \(Errno.current.message)")
        }
        while true {
            var exited = pollfd(fd: probe.pidfd, events: Int16(POLLIN), revents: 0)
            _ = poll(&exited, 1, CInt(min(probe.remainingMilliseconds, 1000)))
            if let result = probe.result() { return result }
        }
    }
}

extension ContainerStore {
    private func healthPath(_ id: String) -> String { runtime(id) + "/health.json" }

    /// The container's health, or nil before any check has been recorded.
    public func health(_ id: String) -> HealthState? {
        guard let text = try? readText(healthPath(id)), let json = try? JSON(parsing: text) else { return nil }
        return HealthState(json: json)
    }

    /// Adds a result under health.lock (the monitor and `urun healthcheck run` may both).
    @discardableResult
    func recordHealth(_ id: String, _ result: HealthResult, check: HealthCheck, containerStarted: Timestamp?) -> HealthState {
        let lockPath = runtime(id) + "/health.lock"
        let lock = urun_open_mode(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        if lock >= 0 { flock(lock, LOCK_EX) }
        defer { closeQuietly(lock) }
        var state = health(id) ?? HealthState()
        state.record(result, check: check, containerStarted: containerStarted)
        try? writeFileAtomically(healthPath(id), state.json.serialized() + "\n", mode: 0o600)
        return state
    }

    /// A new start begins with no health: `starting` until the first check.
    func resetHealth(_ id: String) {
        unlink(healthPath(id))
    }
}

extension Containers {
    /// `urun healthcheck run`: the check now, recorded as the monitor records one.
    public func checkHealth(_ record: ContainerRecord) throws(UrunError) -> HealthState {
        guard let check = record.spec.healthCheck else {
            throw .invalid("container \(record.name) has no health check (run it with --health-cmd, or from an image with a HEALTHCHECK)")
        }
        let state = store.state(record.id)
        guard state.status == .running else { throw .invalid("container \(record.name) is not running") }
        let result = HealthProbe.run(check, container: record.id, globalArguments: globalArguments)
        return store.recordHealth(record.id, result, check: check, containerStarted: state.startedAt)
    }
}
