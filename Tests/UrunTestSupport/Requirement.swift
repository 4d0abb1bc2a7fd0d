import Glibc
import Testing

/// Whether this is CI's run (CI=true): there every proof this kind of machine
/// can run must run, and a skip is a failure.
public let isCI = getenv("CI").map { String(cString: $0) == "true" } ?? false

/// What a test needs from the host, and why it cannot run without it. Met:
/// the test runs. Unmet outside CI: the test is skipped, its reason printed
/// (never passed). Unmet under CI=true: the test fails, saying what is missing.
public struct Requirement: TestTrait, SuiteTrait, TestScoping {
    public let met: Bool
    public let reason: String

    public var isRecursive: Bool { true }

    public init(met: Bool, reason: String) {
        self.met = met
        self.reason = reason
    }

    public func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        if met || test.isSuite {
            try await function()
        } else {
            try require(false, reason)
        }
    }
}

/// The same inside a test: returns when `met`; else records a failure under
/// CI=true, and ends the test as skipped with `reason`.
public func require(_ met: Bool, _ reason: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    guard !met else { return }
    if isCI {
        Issue.record("CI=true: this proof must run on this machine, but \(reason); install what it needs (Helpers/setup)", sourceLocation: sourceLocation)
    }
    try Test.cancel("skipped: \(reason)", sourceLocation: sourceLocation)
}

extension Trait where Self == Requirement {
    /// `@Test(.requiring(tool != nil, "skopeo is not installed"))`
    public static func requiring(_ met: @autoclosure () -> Bool, _ reason: String) -> Requirement {
        Requirement(met: met(), reason: reason)
    }
}
