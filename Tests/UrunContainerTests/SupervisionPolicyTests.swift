import Testing
import UrunKernel
@testable import UrunContainer

@Suite struct RestartPolicyTests {
    @Test(arguments: [
        ("no", RestartPolicy.no), ("always", .always), ("unless-stopped", .unlessStopped),
        ("on-failure", .onFailure(maximum: 0)), ("on-failure:5", .onFailure(maximum: 5)),
    ])
    func parsesDockersSpellings(text: String, policy: RestartPolicy) throws {
        #expect(try RestartPolicy(parsing: text) == policy)
        #expect(policy.text == text)
    }

    @Test(arguments: ["", "yes", "on-failure:", "on-failure:-1", "on-failure:x", "on-failure:99999999999999999999", "always:2"])
    func rejectsTheRest(text: String) {
        #expect(throws: UrunError.self) { try RestartPolicy(parsing: text) }
    }

    @Test func decidesAsDocker() {
        let twice = RestartPolicy.onFailure(maximum: 2)
        #expect(twice.restarts(afterExit: 1, restarts: 0, stoppedByUser: false))
        #expect(twice.restarts(afterExit: 1, restarts: 1, stoppedByUser: false))
        #expect(!twice.restarts(afterExit: 1, restarts: 2, stoppedByUser: false), "at most twice")
        #expect(!twice.restarts(afterExit: 0, restarts: 0, stoppedByUser: false), "a success is final")
        #expect(RestartPolicy.onFailure(maximum: 0).restarts(afterExit: 137, restarts: 1000, stoppedByUser: false))
        #expect(RestartPolicy.always.restarts(afterExit: 0, restarts: 1000, stoppedByUser: false))
        #expect(!RestartPolicy.always.restarts(afterExit: 143, restarts: 0, stoppedByUser: true), "urun stop is final")
        #expect(!RestartPolicy.no.restarts(afterExit: 1, restarts: 0, stoppedByUser: false))
    }

    @Test func backsOffLikeDocker() {
        #expect((1...4).map { RestartPolicy.delayMilliseconds(beforeRestart: $0) } == [100, 200, 400, 800])
        #expect(RestartPolicy.delayMilliseconds(beforeRestart: 0) == 100)
        #expect(RestartPolicy.delayMilliseconds(beforeRestart: 50) == 60_000)
        #expect(RestartPolicy.delayMilliseconds(beforeRestart: Int.max) == 60_000)
    }
}

@Suite struct HealthCheckTests {
    @Test(arguments: [("500ms", 500), ("30s", 30_000), ("1m30s", 90_000), ("2h", 7_200_000), ("5", 5000), ("0s", 0), ("1s500ms", 1500)])
    func durations(text: String, milliseconds: Int) {
        #expect(HealthCheck.milliseconds(text) == milliseconds)
    }

    @Test(arguments: ["", "s", "5x", "-1s", "1.5s", "10m5", "9999999999999h", "1d", "5 s"])
    func badDurations(text: String) {
        #expect(HealthCheck.milliseconds(text) == nil)
    }

    @Test func theImagesCheck() throws {
        let json = try JSON(parsing: #"{"Test":["CMD-SHELL","curl -f localhost"],"Interval":5000000000,"Timeout":-3,"Retries":7}"#)
        let check = try #require(HealthCheck(image: json))
        #expect(check.command == ["/bin/sh", "-c", "curl -f localhost"])
        #expect(check.intervalMilliseconds == 5000 && check.timeoutMilliseconds == 30_000 && check.retries == 7)
        #expect(HealthCheck(image: try JSON(parsing: #"{"Test":["CMD","/bin/check","--quick"]}"#))?.command == ["/bin/check", "--quick"])
        #expect(HealthCheck(image: try JSON(parsing: #"{"Test":["NONE"]}"#)) == nil)
        #expect(HealthCheck(image: try JSON(parsing: #"{"Test":["CMD"]}"#)) == nil)
        #expect(HealthCheck(image: try JSON(parsing: #"{"Test":"oops"}"#)) == nil)
        #expect(HealthCheck(image: nil) == nil)
        // Kept in the container's record as it was given.
        #expect(HealthCheck(json: check.json) == check)
    }

    func result(_ code: Int32, at seconds: Int) -> HealthResult {
        HealthResult(start: Timestamp(seconds: seconds), end: Timestamp(seconds: seconds), exitCode: code, output: "")
    }

    @Test func retriesFailuresInARowMakeItUnhealthyAndOneSuccessHealthy() {
        var check = HealthCheck(shellCommand: "true")
        check.retries = 2
        check.startPeriodMilliseconds = 10_000
        let started = Timestamp(seconds: 1000)
        var state = HealthState()
        state.record(result(1, at: 1001), check: check, containerStarted: started)
        #expect(state.status == .starting && state.failingStreak == 0, "failures in the start period do not count")
        state.record(result(1, at: 1011), check: check, containerStarted: started)
        #expect(state.status == .starting && state.failingStreak == 1)
        state.record(result(-1, at: 1012), check: check, containerStarted: started)
        #expect(state.status == .unhealthy && state.failingStreak == 2)
        state.record(result(0, at: 1013), check: check, containerStarted: started)
        #expect(state.status == .healthy && state.failingStreak == 0)
        for second in 1014..<1030 { state.record(result(0, at: second), check: check, containerStarted: started) }
        #expect(state.log.count == 5, "docker keeps the last five")
        let reread = HealthState(json: state.json)
        #expect(reread.status == .healthy && reread.log.count == 5 && reread.log.last?.start == Timestamp(seconds: 1029))
    }
}

@Suite struct SystemdUnitTests {
    @Test func argumentsAreQuotedAsSystemdReadsThem() {
        #expect(SystemdUnit.quoted("/usr/bin/urun") == "\"/usr/bin/urun\"")
        #expect(SystemdUnit.quoted("/home/a b/$HOME/100%/\"q\"\\") == #""/home/a b/$$HOME/100%%/\"q\"\\""#)
    }
}
