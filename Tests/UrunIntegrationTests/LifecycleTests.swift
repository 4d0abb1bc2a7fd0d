import Foundation
import Glibc
import Testing
import UrunTestSupport

/// Kept containers and the verbs docker users know, as an unprivileged user.
@Suite(harnessAvailable) struct LifecycleTests {
    let h = Harness.shared

    /// A fresh URUN_ROOT per test: names and `ps` output never collide.
    func root() -> String { h.freshRoot() }

    func u(_ root: String, _ arguments: [String], stdin: String? = nil, cgroup: String? = nil, timeout: Double = 60) -> Outcome {
        h.urun(arguments, stdin: stdin, root: root, cgroup: cgroup, timeout: timeout)
    }

    func nothingLeft(_ root: String) -> Bool {
        let left = Harness.sh("ls -A \(root)/data/containers \(root)/run/containers 2>/dev/null | grep -v -e '^\\.' -e ':$' -e '^$'")
        return left.stdout.isEmpty && Harness.sh("pgrep -u \(h.uid) -f '\(root)'").status != 0
    }

    /// ps and images as scripts use them: Go templates, {{json .}}, and
    /// docker's --filter keys (values of a key are alternatives, keys all apply).
    @Test func psAndImagesFormatsAndFilters() throws {
        let r = root()
        #expect(u(r, ["run", "-d", "--name", "web", "--label", "tier=front", h.image(), "sleep", "60"]).status == 0)
        #expect(u(r, ["run", "--name", "job", "--label", "tier=batch", h.image(), "sh", "-c", "exit 4"]).status == 4)
        #expect(u(r, ["create", "--name", "idle", h.image(), "true"]).status == 0)
        #expect(u(r, ["ps", "--format", "{{.Names}}"]).lines == ["web"])
        #expect(u(r, ["ps", "--filter", "status=exited", "--format", "{{.Names}} {{.Status}}"]).text.hasPrefix("job Exited (4)"))
        #expect(u(r, ["ps", "-a", "--filter", "label=tier", "--format", "{{.Names}}"]).lines.sorted() == ["job", "web"])
        #expect(u(r, ["ps", "-a", "--filter", "label=tier=front", "--filter", "label=tier=batch", "--format", "{{.Names}}"]).lines.sorted() == ["job", "web"])
        #expect(u(r, ["ps", "-a", "--filter", "label=tier=front", "--filter", "status=created", "--format", "{{.Names}}"]).text.isEmpty)
        #expect(u(r, ["ps", "-a", "--filter", "name=id", "--filter", "status=created", "-q"]).lines.count == 1)
        #expect(u(r, ["ps", "-a", "--filter", "exited=4", "--format", "{{.Names}}"]).lines == ["job"])
        #expect(u(r, ["ps", "-a", "--filter", "ancestor=busybox.tar", "-q"]).lines.count == 3)
        let json = u(r, ["ps", "--format", "{{json .}}"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any], "\(json)")
        #expect(object["Names"] as? String == "web" && object["Labels"] as? String == "tier=front" && object["State"] as? String == "running")
        #expect(u(r, ["ps", "-a", "--format", "json"]).lines.count == 3)
        #expect(u(r, ["ps", "--format", "table {{.Names}}\\t{{.State}}"]).lines.first?.hasPrefix("NAMES") == true)
        let bad = u(r, ["ps", "--filter", "colour=red"])
        #expect(bad.status == 125 && bad.stderr.contains("KEY one of"), "\(bad)")

        #expect(u(r, ["commit", "job", "mine/job:v1"]).status == 0)
        #expect(u(r, ["images", "--filter", "reference=mine/*", "--format", "{{.Repository}}:{{.Tag}}"]).lines == ["docker.io/mine/job:v1"])
        #expect(u(r, ["images", "--filter", "reference=busy*", "-q"]).lines.count == 1)
        #expect(u(r, ["images", "--filter", "reference=nothing*", "-q"]).text.isEmpty)
        let images = u(r, ["images", "--format", "json"]).lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(images.count == 2 && images.allSatisfy { ($0["ID"] as? String)?.count == 12 }, "\(images)")
        #expect(u(r, ["images", "--filter", "dangling=true", "-q"]).text.isEmpty)
        #expect(u(r, ["rm", "-f", "web", "job", "idle"]).status == 0)
    }

    @Test func detachedRunPsLogsExecStopStartRm() throws {
        let r = root()
        // --init: the command is not PID 1, so SIGTERM from `stop` kills it (PID 1 would ignore it).
        let id = u(r, ["run", "-d", "--init", "--name", "web", h.image(), "sh", "-c", "echo hello; echo err >&2; exec sleep 60"])
        #expect(id.status == 0, "\(id)")
        #expect(id.stdout.count == 65 && id.stdout.dropLast().allSatisfy(\.isHexDigit))
        // The two streams reach the log through two pipes: wait for both.
        #expect(waitFor {
            let logs = u(r, ["logs", "web"])
            return logs.stdout == "hello\n" && logs.stderr == "err\n"
        })
        let ps = u(r, ["ps"])
        #expect(ps.lines.first?.hasPrefix("CONTAINER ID") == true)
        #expect(ps.lines.dropFirst().first?.hasPrefix(String(id.stdout.prefix(12))) == true, "\(ps)")
        #expect(ps.stdout.contains("Up ") && ps.stdout.contains("web"))

        let exec = u(r, ["exec", "web", "sh", "-c", "echo $$; ps -o pid=,comm=; true"])
        #expect(exec.status == 0, "\(exec)")
        #expect(exec.lines.first != "1", "exec is not PID 1")
        // The container's processes, and only those: urun's init (exe) as PID 1, the command, the exec.
        let processes = exec.lines.dropFirst().map { $0.split(separator: " ").map(String.init) }
        #expect(processes.map { $0.last ?? "" } == ["exe", "sleep", "sh", "ps"], "\(exec)")
        #expect(processes.first?.first == "1")
        #expect(u(r, ["exec", "web", "sh", "-c", "exit 7"]).status == 7)
        #expect(u(r, ["exec", "web", "nope"]).status == 127)

        #expect(u(r, ["stop", "-t", "5", "web"]).stdout == "web\n")
        let stopped = u(r, ["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "web"])
        #expect(stopped.stdout == "exited 143\n", "sleep dies of SIGTERM: \(stopped)")
        #expect(u(r, ["ps"]).lines.count == 1)
        #expect(u(r, ["ps", "-a", "--format", "{{.Names}}: {{.Status}}"]).stdout.hasPrefix("web: Exited (143)"))

        #expect(u(r, ["start", "web"]).status == 0)
        #expect(waitFor { u(r, ["logs", "web"]).stdout == "hello\nhello\n" }, "logs accumulate across starts")
        #expect(u(r, ["rm", "web"]).status == 1, "a running container needs -f")
        #expect(u(r, ["rm", "-f", "web"]).stdout == "web\n")
        #expect(nothingLeft(r))
    }

    @Test func writesSurviveStopAndStart() {
        let r = root()
        #expect(u(r, ["create", "--name", "keep", h.image(), "sh", "-c", "cat /state 2>/dev/null; date +%N >> /state"]).status == 0)
        #expect(u(r, ["start", "-a", "keep"]).stdout == "")
        let second = u(r, ["start", "-a", "keep"])
        #expect(second.lines.count == 1, "the file written by the first start is there: \(second)")
        #expect(u(r, ["rm", "keep"]).status == 0)
        #expect(nothingLeft(r))
    }

    @Test func foregroundRunOfANamedContainerKeepsIt() {
        let r = root()
        let run = u(r, ["run", "--name", "fg", h.image(), "sh", "-c", "echo kept; exit 3"])
        #expect(run.status == 3 && run.stdout == "kept\n", "\(run)")
        #expect(u(r, ["ps", "-a", "--format", "{{.Names}} {{.State}}"]).stdout == "fg exited\n")
        #expect(u(r, ["logs", "fg"]).stdout == "kept\n")
        #expect(u(r, ["wait", "fg"]).stdout == "3\n")
        // Unnamed, or --rm: removed at exit.
        #expect(u(r, ["run", h.image(), "true"]).status == 0)
        let removed = u(r, ["run", "--rm", "--name", "gone", h.image(), "sh", "-c", "exit 4"])
        #expect(removed.status == 4)
        #expect(u(r, ["ps", "-a", "-q"]).lines.count == 1)
        #expect(u(r, ["rm", "fg"]).status == 0)
        #expect(nothingLeft(r))
    }

    /// What a container wrote as another of its users (a subordinate id on
    /// the host, which the caller cannot remove from outside) goes with rm.
    @Test(.requiring(Harness.shared.subordinateRange != nil, "the test user has no subordinate ids in /etc/subuid and /etc/subgid, or uidmap is not installed"))
    func rmRemovesFilesOwnedBySubordinateIDs() {
        let r = root()
        let script = "mkdir -p /srv/d/e && touch /srv/d/e/f && chown -R 100:100 /srv/d && chmod -R 700 /srv/d && stat -c %u /srv/d/e/f"
        let run = u(r, ["run", "--name", "owned", h.image(), "sh", "-c", script])
        #expect(run.stdout == "100\n", "\(run)")
        #expect(u(r, ["rm", "owned"]).status == 0)
        #expect(nothingLeft(r))
    }

    /// inspect says which ids exist inside and whether root is faked.
    @Test func inspectShowsTheIDMappingAndFakeRoot() {
        let r = root()
        #expect(u(r, ["run", "-d", "--name", "ids", h.image(), "sleep", "30"]).status == 0)
        let auto = u(r, ["inspect", "ids"]).stdout
        if let range = h.subordinateRange {
            #expect(auto.contains("\"1:\(range.start):\(range.count)\""), "\(auto)")
            #expect(auto.contains("\"FakeRoot\": false"))
        } else {
            #expect(auto.contains("\"FakeRoot\": true"))
        }
        #expect(u(r, ["create", "--name", "single", "--userns", "single", "--user", "1000", h.image(), "true"]).status == 0)
        let single = u(r, ["inspect", "single"]).stdout
        #expect(single.contains("\"UsernsMode\": \"single\"") && single.contains("\"FakeRoot\": true"), "\(single)")
        #expect(u(r, ["rm", "-f", "ids", "single"]).status == 0)
        #expect(nothingLeft(r))
    }

    @Test func stopWaitsTheTimeoutForAnUncooperativeProcessThenKills() {
        let r = root()
        #expect(u(r, ["run", "-d", "--name", "stubborn", h.image(), "sh", "-c", "trap '' TERM; while :; do sleep 0.1; done"]).status == 0)
        let start = Date()
        #expect(u(r, ["stop", "-t", "1", "stubborn"]).status == 0)
        let elapsed = Date().timeIntervalSince(start)
        #expect(elapsed >= 1 && elapsed < 8, "\(elapsed) s")
        #expect(u(r, ["inspect", "-f", "{{.State.ExitCode}}", "stubborn"]).stdout == "137\n")
        #expect(u(r, ["stop", "stubborn"]).status == 0, "stopping a stopped container is fine, as in docker")
        #expect(u(r, ["rm", "stubborn"]).status == 0)
    }

    @Test func logsFollowStreamsAndTailAndTimestamps() throws {
        let r = root()
        #expect(u(r, ["run", "-d", "--name", "ticker", h.image(), "sh", "-c", "for i in 1 2 3 4 5; do echo line $i; sleep 0.2; done"]).status == 0)
        let follow = u(r, ["logs", "-f", "ticker"], timeout: 30)
        #expect(follow.stdout == "line 1\nline 2\nline 3\nline 4\nline 5\n", "\(follow)")
        #expect(u(r, ["logs", "--tail", "2", "ticker"]).stdout == "line 4\nline 5\n")
        let stamped = u(r, ["logs", "-t", "--tail", "1", "ticker"]).stdout
        #expect(stamped.hasSuffix(" line 5\n") && stamped.contains("T") && stamped.contains("Z "), "\(stamped)")
        #expect(u(r, ["logs", "--since", "1h", "ticker"]).lines.count == 5)
        #expect(u(r, ["logs", "--since", "2999-01-01T00:00:00Z", "ticker"]).stdout.isEmpty)
        #expect(u(r, ["rm", "ticker"]).status == 0)
    }

    @Test func execJoinsEveryNamespaceOfTheContainer() {
        let r = root()
        #expect(u(r, ["run", "-d", "--name", "ns", h.image(), "sleep", "60"]).status == 0)
        let namespaces = ["user", "mnt", "pid", "uts", "ipc", "net", "cgroup"]
        let script = namespaces.map { "readlink /proc/1/ns/\($0); readlink /proc/self/ns/\($0)" }.joined(separator: "; ")
        let result = u(r, ["exec", "ns", "sh", "-c", script])
        #expect(result.lines.count == 14, "\(result)")
        for pair in stride(from: 0, to: min(result.lines.count, 14), by: 2) {
            #expect(result.lines[pair] == result.lines[pair + 1], "namespace \(namespaces[pair / 2])")
        }
        // And none of the host's.
        let host = Harness.sh("readlink /proc/self/ns/pid").text
        #expect(!result.stdout.contains(host))
        #expect(u(r, ["rm", "-f", "ns"]).status == 0)
        #expect(nothingLeft(r))
    }

    @Test func execOptions() {
        let r = root()
        #expect(u(r, ["run", "-d", "--name", "opts", "-e", "FROM_RUN=1", h.image(), "sleep", "60"]).status == 0)
        let env = u(r, ["exec", "-e", "EXTRA=2", "-w", "/etc", "opts", "sh", "-c", "pwd; echo $FROM_RUN$EXTRA; echo $HOSTNAME"])
        #expect(env.lines.count == 3 && env.lines[0] == "/etc" && env.lines[1] == "12", "\(env)")
        #expect(env.lines.last?.count == 12)
        #expect(u(r, ["exec", "opts", "cat"], stdin: "piped\n").stdout == "piped\n")
        if h.subordinateRange != nil {
            let other = u(r, ["exec", "-u", "app", "opts", "id"])
            #expect(other.stdout == "uid=1000(app) gid=1000(app) groups=50(staff),1000(app)\n", "\(other)")
        }
        #expect(u(r, ["run", "-d", "--userns", "single", "--name", "one", h.image(), "sleep", "60"]).status == 0)
        let other = u(r, ["exec", "-u", "app", "one", "id"])
        #expect(other.status == 125 && other.stderr.contains("only uid 0 is mapped"), "\(other)")
        #expect(u(r, ["rm", "-f", "one"]).status == 0)
        let tty = h.runAsUser(["script", "-qec", "\(h.binary) exec -t opts tty", "/dev/null"], environment: ["URUN_ROOT": r])
        #expect(tty.stdout.contains("/dev/pts/"), "\(tty)")
        #expect(u(r, ["rm", "-f", "opts"]).status == 0)
        #expect(nothingLeft(r))
    }

    @Test(.requiring(DelegatedCgroup.forLifecycle != nil, DelegatedCgroup.skipReason))
    func statsShowsTheContainersCgroup() {
        let r = root()
        let d = DelegatedCgroup.forLifecycle!
        #expect(u(r, ["run", "-d", "--name", "busy", h.image(), "sh", "-c", "sleep 60 & sleep 60 & wait"], cgroup: d.path).status == 0)
        let stats = u(r, ["stats", "--no-stream"])
        #expect(stats.lines.first?.hasPrefix("CONTAINER ID") == true, "\(stats)")
        let row = stats.lines.dropFirst().first ?? ""
        #expect(row.contains("busy"), "\(stats)")
        let cgroup = u(r, ["inspect", "-f", "{{.Cgroup}}", "busy"]).text
        #expect(cgroup.hasPrefix(d.path + "/urun-"), "\(cgroup)")
        #expect(u(r, ["rm", "-f", "busy"], cgroup: d.path).status == 0)
        // Only its own: the pause test's container shares the delegated subtree.
        #expect(!cgroup.isEmpty && access(cgroup, F_OK) != 0, "\(cgroup) is removed")
    }

    @Test func killingTheMonitorLeavesAStoppedContainerThatRmCleans() throws {
        let r = root()
        let run = u(r, ["run", "-d", "--name", "orphan", h.image(), "sleep", "3333"])
        #expect(run.status == 0, "\(run)")
        // This container's monitor by its id: other tests' monitors run at the same time.
        let id = run.text
        let monitor = Harness.sh("pgrep -u \(h.uid) -f ' monitor .*\(id)'").text
        let monitorPID = try #require(pid_t(monitor), "one monitor for \(id): \(monitor)")
        kill(monitorPID, SIGKILL)
        #expect(waitFor { Harness.sh("pgrep -u \(h.uid) -x -f 'sleep 3333'").status != 0 }, "the container dies with its monitor")
        let ps = u(r, ["ps", "-a", "--format", "{{.Names}} {{.Status}}"])
        #expect(ps.stdout.hasPrefix("orphan Exited (unknown)"), "\(ps)")
        #expect(u(r, ["rm", "orphan"]).status == 0)
        #expect(nothingLeft(r))
    }

    @Test func twentyContainersAtOnce() {
        let r = root()
        #expect(u(r, ["run", h.image(), "true"]).status == 0)  // unpack once
        let starts = (0..<20).map { i in
            h.start([h.binary, "run", "-d", "--name", "c\(i)", h.image(), "sleep", "60"], environment: ["URUN_ROOT": r])
        }
        for start in starts {
            start.waitUntilExit()
            #expect(start.terminationStatus == 0)
        }
        let names = Set(u(r, ["ps", "--format", "{{.Names}}"]).lines)
        #expect(names == Set((0..<20).map { "c\($0)" }), "\(names)")
        let removed = u(r, ["rm", "-f"] + (0..<20).map { "c\($0)" }, timeout: 120)
        #expect(removed.status == 0, "\(removed)")
        #expect(waitFor { nothingLeft(r) })
        // Nothing under this test's state is mounted here. (Other suites' root
        // podman and containerd mount under the workspace meanwhile.)
        #expect(Harness.sh("grep -cF '\(r)' /proc/self/mountinfo").stdout == "0\n")
    }

    @Test func attachAndDetachThroughATerminal() throws {
        let r = root()
        #expect(u(r, ["run", "-dit", "--name", "shell", h.image(), "sh"]).status == 0)
        // script(1) is the terminal; printf types a command, then ctrl-p ctrl-q.
        let session = "(sleep 0.5; printf 'echo attached-$((40+2))\\r'; sleep 0.5; printf '\\020\\021') | \(h.binary) attach shell"
        let attached = h.runAsUser(["script", "-qec", session, "/dev/null"], environment: ["URUN_ROOT": r], timeout: 30)
        #expect(attached.stdout.contains("attached-42"), "\(attached)")
        #expect(attached.status == 0, "detaching is not an error")
        #expect(u(r, ["ps", "--format", "{{.Names}} {{.State}}"]).stdout == "shell running\n", "the container runs on")
        #expect(u(r, ["rm", "-f", "shell"]).status == 0)
    }

    @Test func mistakesGetDockersAnswers() {
        let r = root()
        #expect(u(r, ["create", "--name", "one", h.image(), "true"]).status == 0)
        #expect(u(r, ["create", "--name", "two", h.image(), "true"]).status == 0)
        let unknown = u(r, ["stop", "ghost"])
        #expect(unknown.status == 1 && unknown.stderr == "urun: No such container: ghost\n", "\(unknown)")
        let taken = u(r, ["create", "--name", "one", h.image(), "true"])
        #expect(taken.status == 125 && taken.stderr.contains("already in use"), "\(taken)")
        #expect(u(r, ["create", "--name", "bad/name", h.image(), "true"]).status == 125)
        let ids = u(r, ["ps", "-a", "-q", "--no-trunc"]).lines
        #expect(ids.count == 2)
        // The shortest prefix both ids share matches both.
        let shared = String(zip(ids[0], ids[1]).prefix(while: { $0 == $1 }).map(\.0))
        if !shared.isEmpty {
            #expect(u(r, ["inspect", shared]).stderr.contains("multiple containers match"))
        }
        #expect(u(r, ["inspect", "-f", "{{.Name}}", String(ids[0].prefix(16))]).status == 0)
        #expect(u(r, ["exec", "one", "true"]).stderr.contains("is not running"))
        let pause = u(r, ["pause", "one"])
        #expect(pause.status == 1 && pause.stderr.contains("not running"))
        #expect(u(r, ["rm", "one", "two"]).status == 0)
        #expect(nothingLeft(r))
    }

    @Test func pauseNeedsACgroupAndSaysSo() {
        let r = root()
        #expect(u(r, ["run", "-d", "--name", "p", h.image(), "sleep", "60"]).status == 0)
        let pause = u(r, ["pause", "p"])
        #expect(pause.status == 1)
        #expect(pause.stderr.contains("not delegated") && pause.stderr.contains("systemd-run"), "\(pause)")
        #expect(u(r, ["rm", "-f", "p"]).status == 0)
    }

    @Test(.requiring(DelegatedCgroup.forLifecycle != nil, DelegatedCgroup.skipReason))
    func pauseAndUnpauseFreezeTheWholeContainer() throws {
        let r = root()
        let d = DelegatedCgroup.forLifecycle!
        let run = u(r, ["run", "-d", "--name", "frozen", h.image(), "sh", "-c", "while :; do date +%s%N >> /tick; sleep 0.01; done"], cgroup: d.path)
        #expect(run.status == 0)
        // Its own cgroup: other tests' containers share the delegated subtree.
        let name = "urun-" + run.text
        #expect(waitFor { u(r, ["exec", "frozen", "wc", "-l", "/tick"], cgroup: d.path).status == 0 })
        #expect(u(r, ["pause", "frozen"], cgroup: d.path).stdout == "frozen\n")
        #expect(u(r, ["ps", "--format", "{{.Status}}"]).stdout.contains("(Paused)"))
        #expect(u(r, ["exec", "frozen", "true"]).stderr.contains("paused"))
        #expect(d.containerCgroups.contains(name))
        let count = { (try? String(contentsOfFile: "\(d.path)/\(name)/cgroup.events", encoding: .utf8)) ?? "" }
        #expect(count().contains("frozen 1"))
        #expect(u(r, ["unpause", "frozen"], cgroup: d.path).status == 0)
        #expect(count().contains("frozen 0"))
        #expect(u(r, ["kill", "frozen"], cgroup: d.path).status == 0)
        #expect(u(r, ["wait", "frozen"]).stdout == "137\n")
        #expect(u(r, ["rm", "frozen"]).status == 0)
        #expect(!d.containerCgroups.contains(name))
        #expect(nothingLeft(r))
    }
}
