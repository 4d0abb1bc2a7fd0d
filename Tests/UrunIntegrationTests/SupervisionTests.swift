import Foundation
import Glibc
import Testing
import UrunTestSupport

/// What a container's monitor does besides relaying: --restart, health
/// checks; and the flags that go with kept containers (--cidfile,
/// --annotation, urun generate systemd). As the unprivileged test user.
@Suite(harnessAvailable) struct SupervisionTests {
    let h = Harness.shared

    func u(_ root: String, _ arguments: [String], timeout: Double = 60) -> Outcome {
        h.urun(arguments, root: root, timeout: timeout)
    }

    /// Whatever a test left, even one that failed half-way: a restarting
    /// container whose command ignores SIGTERM would outlive the suite.
    func removeAll(_ root: String) {
        let ids = u(root, ["ps", "-aq"]).lines
        if !ids.isEmpty { _ = u(root, ["rm", "-f"] + ids) }
    }

    /// A directory the test user may write, bound into containers to count their runs.
    func countDirectory(_ root: String) -> String {
        let path = root + "-out"
        _ = h.runAsUser(["mkdir", "-p", path])
        return path
    }

    func inspect(_ root: String, _ name: String) throws -> [String: Any] {
        let r = u(root, ["inspect", name])
        let array = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]], "\(r)")
        return try #require(array.first)
    }

    @Test func onFailureRestartsExactlyAsManyTimesAsAsked() throws {
        let root = h.freshRoot()
        defer { removeAll(root) }
        let out = countDirectory(root)
        let run = u(root, ["run", "-d", "--name", "flaky", "--restart", "on-failure:2", "-v", out + ":/out", h.image(),
                           "sh", "-c", "echo run >> /out/count; exit 3"])
        #expect(run.status == 0, "\(run)")
        // wait returns once the monitor has given up: the first run and two restarts.
        let waited = u(root, ["wait", "flaky"])
        #expect(waited.text == "3", "\(waited)")
        let count = try String(contentsOfFile: out + "/count", encoding: .utf8)
        #expect(count == "run\nrun\nrun\n", "ran \(count.split(separator: "\n").count) times")
        let container = try inspect(root, "flaky")
        #expect(container["RestartCount"] as? Int == 2)
        let policy = (container["HostConfig"] as? [String: Any])?["RestartPolicy"] as? [String: Any]
        #expect(policy?["Name"] as? String == "on-failure:2" && policy?["MaximumRetryCount"] as? Int == 2, "\(String(describing: policy))")
        #expect(u(root, ["ps", "-a", "--format", "{{.Status}}"]).stdout.hasPrefix("Exited (3)"))
        // A success is not a failure: no restart.
        let fine = u(root, ["run", "-d", "--name", "fine", "--restart", "on-failure", h.image(), "true"])
        #expect(fine.status == 0 && u(root, ["wait", "fine"]).text == "0")
        #expect(try inspect(root, "fine")["RestartCount"] as? Int == 0)
        #expect(u(root, ["rm", "flaky", "fine"]).status == 0)
    }

    @Test func alwaysRestartsUntilStoppedAndRmEndsItBetweenRuns() throws {
        let root = h.freshRoot()
        defer { removeAll(root) }
        let out = countDirectory(root)
        let run = u(root, ["run", "-d", "--name", "loop", "--restart", "always", "-v", out + ":/out", h.image(),
                           "sh", "-c", "echo run >> /out/count; sleep 0.3"])
        #expect(run.status == 0, "\(run)")
        func runs() -> Int { ((try? String(contentsOfFile: out + "/count", encoding: .utf8)) ?? "").split(separator: "\n").count }
        #expect(waitFor(20) { runs() >= 3 }, "restarted after clean exits: \(runs()) runs")
        #expect(u(root, ["ps", "--format", "{{.Names}}"]).lines == ["loop"], "a restarting container is listed by ps")
        let stop = u(root, ["stop", "-t", "1", "loop"])
        #expect(stop.status == 0, "\(stop)")
        let after = runs()
        usleep(1_500_000)
        #expect(runs() == after, "urun stop ends the restarts")
        #expect(u(root, ["ps", "-a", "--format", "{{.State}}"]).lines == ["exited"])
        #expect(Harness.sh("pgrep -u \(h.uid) -f 'monitor \(run.text)'").status != 0, "no monitor left")

        // start resumes the policy; rm -f ends it even between two runs.
        let crash = u(root, ["run", "-d", "--name", "crash", "--restart", "always", h.image(), "sh", "-c", "exit 1"])
        #expect(crash.status == 0, "\(crash)")
        #expect(waitFor { (try? inspect(root, "crash")["RestartCount"] as? Int).flatMap { $0 } ?? 0 >= 3 })
        let started = Date()
        #expect(u(root, ["rm", "-f", "crash"]).status == 0)
        #expect(Date().timeIntervalSince(started) < 5, "rm -f does not wait out the back-off")
        #expect(u(root, ["ps", "-a", "-q"]).lines.count == 1)
        #expect(Harness.sh("pgrep -u \(h.uid) -f 'exit 1'").status != 0, "nothing of crash runs")
        #expect(u(root, ["rm", "loop"]).status == 0)
    }

    /// docker's kill: a fatal signal (SIGKILL, the stop signal) ends the
    /// policy until the next start; any other leaves it in place.
    @Test func killWithAFatalSignalEndsTheRestarts() throws {
        let root = h.freshRoot()
        defer { removeAll(root) }
        let out = countDirectory(root)
        let run = u(root, ["run", "-d", "--name", "k", "--restart", "always", "-v", out + ":/out", h.image(), "sh", "-c",
                           "echo run >> /out/count; trap 'exit 5' USR1; trap 'exit 6' TERM; while :; do sleep 0.1; done"])
        #expect(run.status == 0, "\(run)")
        func runs() -> Int { ((try? String(contentsOfFile: out + "/count", encoding: .utf8)) ?? "").split(separator: "\n").count }
        func running() -> Bool { u(root, ["ps", "--filter", "status=running", "-q"]).lines.count == 1 }
        #expect(waitFor { runs() == 1 && running() })
        #expect(u(root, ["kill", "-s", "USR1", "k"]).status == 0)
        #expect(waitFor { runs() == 2 && running() }, "USR1 is not fatal: restarted (\(runs()) runs)")
        #expect(u(root, ["kill", "k"]).status == 0)
        #expect(waitFor { u(root, ["ps", "-a", "--format", "{{.State}}"]).text == "exited" })
        usleep(800_000)
        #expect(runs() == 2, "SIGKILL ends the policy")
        // The next start brings it back.
        #expect(u(root, ["start", "k"]).status == 0)
        #expect(waitFor { runs() == 3 && running() })
        #expect(u(root, ["kill", "-s", "TERM", "k"]).status == 0)
        #expect(waitFor { u(root, ["ps", "-a", "--format", "{{.State}}"]).text == "exited" })
        usleep(800_000)
        #expect(runs() == 3, "the stop signal ends it too")
        #expect(u(root, ["rm", "k"]).status == 0)
    }

    @Test func aHealthCheckTurnsUnhealthyAndBack() throws {
        let root = h.freshRoot()
        defer { removeAll(root) }
        let run = u(root, ["run", "-d", "--name", "hc", "--health-cmd", "test -e /tmp/ok && echo fine", "--health-interval", "300ms",
                           "--health-retries", "2", h.image(), "sh", "-c", "touch /tmp/ok; exec sleep 600"])
        #expect(run.status == 0, "\(run)")
        func status() -> String { u(root, ["ps", "--format", "{{.Status}}"]).text }
        #expect(waitFor(15) { status().hasSuffix("(healthy)") }, "\(status())")
        #expect(u(root, ["exec", "hc", "rm", "/tmp/ok"]).status == 0)
        #expect(waitFor(15) { status().hasSuffix("(unhealthy)") }, "\(status())")
        let health = try #require((try inspect(root, "hc")["State"] as? [String: Any])?["Health"] as? [String: Any])
        #expect(health["Status"] as? String == "unhealthy")
        #expect((health["FailingStreak"] as? Int ?? 0) >= 2, "\(health)")
        let log = health["Log"] as? [[String: Any]] ?? []
        #expect(!log.isEmpty && log.count <= 5 && log.last?["ExitCode"] as? Int == 1, "\(log)")
        #expect(log.contains { $0["Output"] as? String == "fine\n" }, "the passing runs' output is kept: \(log)")
        let check = u(root, ["healthcheck", "run", "hc"])
        #expect(check.status == 1 && check.text == "unhealthy", "\(check)")

        #expect(u(root, ["exec", "hc", "touch", "/tmp/ok"]).status == 0)
        let now = u(root, ["healthcheck", "run", "hc"])
        #expect(now.status == 0, "\(now)")
        #expect(status().hasSuffix("(healthy)"), "one success is healthy again: \(status())")
        let config = (try inspect(root, "hc")["Config"] as? [String: Any])?["Healthcheck"] as? [String: Any]
        #expect(config?["Test"] as? [String] == ["CMD-SHELL", "test -e /tmp/ok && echo fine"] && config?["Interval"] as? Int == 300_000_000)

        let none = u(root, ["run", "-d", "--name", "plain", h.image(), "sleep", "600"])
        #expect(none.status == 0)
        let refused = u(root, ["healthcheck", "run", "plain"])
        #expect(refused.status == 125 && refused.stderr.contains("has no health check"), "\(refused)")
        #expect(u(root, ["rm", "-f", "hc", "plain"]).status == 0)
        #expect(Harness.sh("pgrep -u \(h.uid) -f 'test -e /tmp/ok'").status != 0, "no check left running")
    }

    /// The image's HEALTHCHECK (made with commit --change, as docker's),
    /// its timing changed by the flags alone, or turned off.
    @Test func theImagesHealthCheckRuns() throws {
        let root = h.freshRoot()
        defer { removeAll(root) }
        #expect(u(root, ["run", "--name", "base", h.image(), "true"]).status == 0)
        let commit = u(root, ["commit", "--change", "HEALTHCHECK --interval=30s --retries=1 CMD test -e /tmp/ok", "base", "checked"])
        #expect(commit.status == 0, "\(commit)")
        #expect(u(root, ["image", "inspect", "-f", "{{.Config.Healthcheck.Test}}", "checked"]).text == #"["CMD-SHELL","test -e /tmp/ok"]"#)
        // The flags alone change the image's timing: unhealthy within a second, not 30.
        #expect(u(root, ["run", "-d", "--name", "c", "--health-interval", "200ms", "checked", "sleep", "60"]).status == 0)
        #expect(waitFor(10) { u(root, ["ps", "--filter", "name=c", "--format", "{{.Status}}"]).text.hasSuffix("(unhealthy)") })
        let config = (try inspect(root, "c")["Config"] as? [String: Any])?["Healthcheck"] as? [String: Any]
        #expect(config?["Interval"] as? Int == 200_000_000 && config?["Retries"] as? Int == 1, "\(String(describing: config))")
        #expect(u(root, ["run", "-d", "--name", "off", "--no-healthcheck", "checked", "sleep", "60"]).status == 0)
        #expect(u(root, ["healthcheck", "run", "off"]).status == 125)
        #expect(!u(root, ["ps", "--filter", "name=off", "--format", "{{.Status}}"]).text.contains("health"))
        let none = u(root, ["commit", "--change", "HEALTHCHECK NONE", "base", "unchecked"])
        #expect(none.status == 0 && u(root, ["run", "-d", "--name", "n", "unchecked", "sleep", "60"]).status == 0, "\(none)")
        #expect(u(root, ["healthcheck", "run", "n"]).status == 125, "HEALTHCHECK NONE: no check")
        let bad = u(root, ["commit", "--change", "HEALTHCHECK --every=1s CMD true", "base", "bad"])
        #expect(bad.status == 125, "\(bad)")
        #expect(u(root, ["rm", "-f", "c", "off", "n", "base"]).status == 0)
    }

    @Test func aCheckThatHangsTimesOut() throws {
        let root = h.freshRoot()
        defer { removeAll(root) }
        let run = u(root, ["run", "-d", "--name", "slow", "--health-cmd", "sleep 30", "--health-timeout", "200ms",
                           "--health-interval", "300ms", "--health-retries", "1", h.image(), "sleep", "600"])
        #expect(run.status == 0, "\(run)")
        #expect(waitFor(15) { u(root, ["ps", "--format", "{{.Status}}"]).text.hasSuffix("(unhealthy)") })
        let health = (try inspect(root, "slow")["State"] as? [String: Any])?["Health"] as? [String: Any]
        let last = (health?["Log"] as? [[String: Any]])?.last
        #expect(last?["ExitCode"] as? Int == -1 && (last?["Output"] as? String ?? "").contains("timeout"), "\(String(describing: last))")
        #expect(u(root, ["rm", "-f", "slow"]).status == 0)
        #expect(waitFor { Harness.sh("pgrep -u \(h.uid) -x -f 'sleep 30'").status != 0 }, "the hung check went with its container")
    }

    @Test func cidfileAnnotationsAndBadSupervisionFlags() throws {
        let root = h.freshRoot()
        defer { removeAll(root) }
        let file = root + "-cid"
        let run = u(root, ["run", "-d", "--cidfile", file, "--annotation", "org.example.team=build", "--annotation", "flag", h.image(), "sleep", "60"])
        #expect(run.status == 0, "\(run)")
        #expect(try String(contentsOfFile: file, encoding: .utf8) == run.text)
        let annotations = (try inspect(root, run.text)["Config"] as? [String: Any])?["Annotations"] as? [String: String]
        #expect(annotations == ["org.example.team": "build", "flag": ""], "\(String(describing: annotations))")
        let again = u(root, ["run", "-d", "--cidfile", file, h.image(), "true"])
        #expect(again.status == 125 && again.stderr.contains("exists"), "\(again)")
        #expect(u(root, ["ps", "-a", "-q"]).lines.count == 1, "nothing created for the refused run")
        // A foreground run with --cidfile writes it too, and is removed after.
        let foreground = u(root, ["run", "--cidfile", file + "2", h.image(), "true"])
        #expect(foreground.status == 0 && ((try? String(contentsOfFile: file + "2", encoding: .utf8)) ?? "").count == 64, "\(foreground)")
        #expect(u(root, ["ps", "-a", "-q"]).lines.count == 1)

        for bad in [["--restart", "sometimes"], ["--restart", "on-failure:-1"], ["--rm", "--restart", "always"],
                    ["--health-interval", "soon"], ["--health-cmd", "true", "--health-interval", "0s"],
                    ["--health-cmd", "true", "--health-retries", "0"], ["--health-cmd", "true", "--no-healthcheck"]] {
            let r = u(root, ["run"] + bad + [h.image(), "true"])
            #expect(r.status == 125 && r.stderr.split(separator: "\n").count <= 2, "\(bad): \(r)")
        }
        #expect(u(root, ["ps", "-a", "-q"]).lines.count == 1)
        #expect(u(root, ["rm", "-f", run.text]).status == 0)
    }

    @Test func generateSystemdWritesAUnitSystemdAccepts() throws {
        let root = h.freshRoot()
        defer { removeAll(root) }
        #expect(u(root, ["create", "--name", "svc", "--restart", "always", h.image(), "sleep", "60"]).status == 0)
        let unit = u(root, ["--root", root, "generate", "systemd", "svc"])
        #expect(unit.status == 0, "\(unit)")
        let id = u(root, ["ps", "-a", "-q", "--no-trunc"]).text
        #expect(unit.stdout.contains("ExecStart=\"\(h.binary)\" \"--root\" \"\(root)\" start \(id)\n"), "\(unit.stdout)")
        #expect(unit.stdout.contains("ExecStop=\"\(h.binary)\" \"--root\" \"\(root)\" stop \(id)\n"))
        #expect(unit.stdout.contains("WantedBy=default.target"))
        let analyze = try #require(["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].first { (path: String) in access(path, X_OK) == 0 },
                                   "systemd-analyze is not installed (apt-get install systemd)")
        let path = root + "-unit/urun-svc.service"
        _ = h.runAsUser(["mkdir", "-p", root + "-unit"])
        try unit.stdout.write(toFile: path, atomically: true, encoding: .utf8)
        let verified = Harness.sh("\(analyze) verify --man=no '\(path)' 2>&1")
        #expect(verified.status == 0 && verified.text.isEmpty, "\(verified)")
        // What the unit runs works: start, then stop.
        #expect(u(root, ["start", id]).status == 0)
        #expect(u(root, ["ps", "--format", "{{.Names}}"]).lines == ["svc"])
        #expect(u(root, ["stop", "-t", "1", id]).status == 0)
        #expect(u(root, ["rm", "svc"]).status == 0)
    }
}
