import Foundation
import Glibc
import Testing
import UrunTestSupport

/// A cgroup v2 subtree delegated to the test user, made the way systemd's
/// Delegate=yes makes one (Helpers/cgroup-delegate, as root).
struct DelegatedCgroup: Sendable {
    let path: String
    let controllers: Set<String>

    /// CgroupTests' subtree. Suites that run beside it get their own, so that
    /// one suite's containers never show up in another's counts.
    static let shared = make()
    static let forLifecycle = make()
    static let forTutorials = make()

    private static func make() -> DelegatedCgroup? {
        guard getuid() == 0, Harness.shared.isAvailable, let user = Harness.shared.user else { return nil }
        let made = Harness.sh("'\(Harness.packageRoot)/Helpers/cgroup-delegate' create \(user.name)")
        let path = made.text
        guard made.status == 0, !path.isEmpty else { return nil }
        delegatedToRemove.append(path)
        if delegatedToRemove.count == 1 {
            atexit {
                for path in delegatedToRemove {
                    _ = system("'\(Harness.packageRoot)/Helpers/cgroup-delegate' remove '\(path)'")
                }
            }
        }
        let controllers = (try? String(contentsOfFile: path + "/cgroup.controllers", encoding: .utf8)) ?? ""
        return DelegatedCgroup(path: path, controllers: Set(controllers.split(whereSeparator: \.isWhitespace).map(String.init)))
    }

    static var skipReason: String {
        if getuid() != 0 { return "making a delegated cgroup needs root (run the tests as root, as CI does)" }
        return "no cgroup v2 hierarchy to delegate from on this host"
    }

    /// The container cgroups (urun-<id>) now below the subtree.
    var containerCgroups: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { $0.hasPrefix("urun-") }
    }

    func has(_ controller: String) -> Bool { controllers.contains(controller) }
}

nonisolated(unsafe) private var delegatedToRemove: [String] = []

let delegatedCgroupAvailable = Requirement(met: DelegatedCgroup.shared != nil, reason: DelegatedCgroup.skipReason)

@Suite(harnessAvailable, delegatedCgroupAvailable, .serialized) struct CgroupTests {
    let h = Harness.shared
    let d = DelegatedCgroup.shared!

    @Test func eachContainerHasItsOwnCgroupSeenAsTheRoot() throws {
        let urun = h.start(
            [h.binary, h.image(), "sh", "-c", "cat /proc/self/cgroup > /dev/null; sleep 2"],
            environment: ["URUN_ROOT": h.sharedRoot], cgroup: d.path)
        // The cgroup appears first, its processes a moment later.
        func processes() -> String {
            guard let name = d.containerCgroups.first else { return "" }
            return (try? String(contentsOfFile: d.path + "/" + name + "/cgroup.procs", encoding: .utf8)) ?? ""
        }
        #expect(waitFor { !processes().isEmpty }, "the container's processes are in its cgroup")
        #expect(d.containerCgroups.count == 1)
        urun.waitUntilExit()
        #expect(urun.terminationStatus == 0)
        #expect(d.containerCgroups.isEmpty, "removed when the container ends")

        let inside = h.urun([h.image(), "sh", "-c", "grep '^0::' /proc/self/cgroup; grep ' /sys/fs/cgroup ' /proc/self/mountinfo"], cgroup: d.path)
        #expect(inside.lines.first == "0::/", "\(inside)")
        #expect(inside.lines.last?.contains(" - cgroup2 cgroup2 ") == true)
    }

    /// Every limit is enforced where its controller is delegated, and refused
    /// with the fix where it is not. Which of the two happens depends on the
    /// host; both are asserted.
    @Test(arguments: [
        (["--memory", "32m"], "memory", "memory.max", "33554432"),
        (["--memory", "32m", "--memory-swap", "64m"], "memory", "memory.swap.max", "33554432"),
        (["--memory-reservation", "16m"], "memory", "memory.low", "16777216"),
        (["--cpus", "0.5"], "cpu", "cpu.max", "50000 100000"),
        (["--cpu-shares", "512"], "cpu", "cpu.weight", "20"),
        (["--cpu-weight", "300"], "cpu", "cpu.weight", "300"),
        (["--cpuset-cpus", "0"], "cpuset", "cpuset.cpus", "0"),
        (["--cpuset-mems", "0"], "cpuset", "cpuset.mems", "0"),
        (["--pids-limit", "20"], "pids", "pids.max", "20"),
        (["--blkio-weight", "500"], "io", "io.weight", "default 4950"),
    ])
    func limitIsEnforcedOrRefusedWithTheFix(_ flags: [String], _ controller: String, _ file: String, _ value: String) {
        let result = h.urun(flags + [h.image(), "cat", "/sys/fs/cgroup/" + file], cgroup: d.path)
        if d.has(controller) {
            #expect(result.status == 0, "\(result)")
            #expect(result.stdout.contains(value), "\(result)")
        } else {
            #expect(result.status == 125, "\(result)")
            #expect(result.stderr.contains("\(flags[0]) needs the \(controller) controller, which is not delegated to you here"), "\(result)")
            #expect(result.stderr.contains("systemd-run --user --scope -p Delegate=yes"))
        }
        #expect(d.containerCgroups.isEmpty)
    }

    @Test func withoutADelegatedCgroupLimitsAreRefusedAndNothingElseChanges() {
        // The test user's own cgroup here is not delegated to it.
        let refused = h.urun(["--pids-limit", "10", h.image(), "true"])
        #expect(refused.status == 125)
        #expect(refused.stderr.contains("is not delegated to you"), "\(refused)")
        #expect(h.urun([h.image(), "true"]).status == 0, "no limits: urun runs where it is, silently")
    }

    @Test func badValuesAreRejectedBeforeAnythingIsCreated() {
        for flags in [["--memory", "12qq"], ["--memory", "-5m"], ["--cpus", "9999"], ["--pids-limit", "x"], ["--cpuset-cpus", "5-1"]] {
            let result = h.urun(flags + [h.image(), "true"], cgroup: d.path)
            #expect(result.status == 125, "\(flags): \(result)")
            #expect(result.stderr.contains(flags[0]), "\(result)")
        }
        #expect(d.containerCgroups.isEmpty)
    }

    /// --pid host: the host's processes are visible (its /proc bound, masked
    /// paths still masked), and a background process the command leaves goes
    /// with the container's cgroup. Without a cgroup it is refused.
    @Test func theHostsPIDNamespaceNeedsAndUsesTheCgroup() {
        let root = h.freshRoot()
        let hostPID = Harness.sh("readlink /proc/self/ns/pid").text
        let r = h.urun(["--network", "none", "--pid", "host", h.image(), "sh", "-c",
                        "readlink /proc/self/ns/pid; test -d /proc/1 && echo sees-init; wc -c < /proc/timer_list; (sleep 5151 &) ; echo left"],
                       root: root, cgroup: d.path)
        #expect(r.lines == [hostPID, "sees-init", "0", "left"], "\(r)")
        #expect(waitFor { Harness.sh("pgrep -u \(h.uid) -x -f 'sleep 5151'").status != 0 }, "the background sleep ended with the container")
        #expect(d.containerCgroups.isEmpty)
        let refused = h.urun(["--network", "none", "--pid", "host", h.image(), "true"], root: root)
        #expect(refused.status == 125 && refused.stderr.contains("--pid host needs a cgroup"), "\(refused)")

        let shared = h.urun(["--network", "none", "--uts", "host", "--ipc", "host", h.image(), "sh", "-c",
                             "hostname; readlink /proc/self/ns/ipc; readlink /proc/self/ns/uts"], root: root)
        #expect(shared.lines == [Harness.sh("hostname").text] + Harness.sh("readlink /proc/self/ns/ipc /proc/self/ns/uts").lines, "\(shared)")
        let own = h.urun(["--network", "none", h.image(), "readlink", "/proc/self/ns/ipc"], root: root)
        #expect(own.status == 0 && own.text != Harness.sh("readlink /proc/self/ns/ipc").text)
        let conflict = h.urun(["--uts", "host", "--hostname", "x", h.image(), "true"], root: root)
        #expect(conflict.status == 125, "\(conflict)")
        let other = h.urun(["--ipc", "container:x", h.image(), "true"], root: root)
        #expect(other.status == 125 && other.stderr.contains("not supported"), "\(other)")
    }

    @Test func aKilledUrunsCgroupIsRemovedByTheNextRun() {
        let root = h.freshRoot()
        #expect(h.urun([h.image(), "true"], root: root, cgroup: d.path).status == 0)
        let urun = h.start([h.binary, h.image(), "sleep", "4321"], environment: ["URUN_ROOT": root], cgroup: d.path)
        #expect(waitFor { Harness.sh("pgrep -u \(h.uid) -x -f 'sleep 4321'").status == 0 })
        kill(urun.processIdentifier, SIGKILL)
        urun.waitUntilExit()
        #expect(waitFor { Harness.sh("pgrep -u \(h.uid) -x -f 'sleep 4321'").status != 0 })
        #expect(d.containerCgroups.count == 1, "left by the killed urun")
        #expect(h.urun([h.image(), "true"], root: root, cgroup: d.path).status == 0)
        #expect(d.containerCgroups.isEmpty, "\(d.containerCgroups)")
    }

    /// A memory hog ends with 137 and the OOM message where the memory
    /// controller is delegated; where it is not (this hybrid kind of host), the
    /// limit is refused naming the fix, and PureCgroupV2Tests proves the OOM
    /// kill in a pure cgroup v2 VM.
    @Test func memoryHogIsOOMKilledOrTheLimitRefused() {
        let result = h.urun(["--memory", "32m", "--memory-swap", "32m", h.image(), "sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\\\0' a); echo survived"], cgroup: d.path, timeout: 120)
        if d.has("memory") {
            #expect(result.status == 137, "\(result)")
            #expect(result.stderr.contains("killed by the OOM killer"), "\(result)")
        } else {
            #expect(result.status == 125 && result.stderr.contains("--memory needs the memory controller"), "\(result)")
        }
        #expect(d.containerCgroups.isEmpty)
    }

    /// The same for the pids controller: the 21st fork fails, or the limit is refused.
    @Test func pidsLimitMakesTheTwentyFirstForkFailOrIsRefused() {
        let result = h.urun(["--pids-limit", "20", h.image(), "sh", "-c", "for i in $(seq 1 30); do sleep 5 & done 2>&1; sleep 0.2; ps -o pid= | wc -l"], cgroup: d.path)
        if d.has("pids") {
            #expect(result.stdout.contains("Resource temporarily unavailable") || result.stdout.contains("can't fork"), "\(result)")
            #expect(Int(result.lines.last?.trimmingCharacters(in: .whitespaces) ?? "") ?? 99 <= 20)
        } else {
            #expect(result.status == 125 && result.stderr.contains("--pids-limit needs the pids controller"), "\(result)")
        }
    }

    /// A monitor killed with SIGKILL leaves its container's cgroup behind
    /// (its container dies with it): `start` clears that cgroup itself.
    @Test func startClearsItsOwnStaleCgroup() {
        let root = h.freshRoot()
        let run = h.urun(["run", "-d", "--network", "none", "--name", "stale", h.image(), "sleep", "5432"], root: root, cgroup: d.path)
        #expect(run.status == 0, "\(run)")
        #expect(waitFor { Harness.sh("pgrep -u \(h.uid) -x -f 'sleep 5432'").status == 0 })
        let monitor = Harness.sh("grep -o '\"monitorPid\":[0-9]*' \(root)/run/containers/*/state.json | cut -d: -f2").text
        #expect(Int32(monitor) != nil, "the supervisor is on record")
        Harness.sh("kill -9 \(monitor)")
        #expect(waitFor { Harness.sh("pgrep -u \(h.uid) -x -f 'sleep 5432'").status != 0 }, "the container died with its monitor")
        #expect(d.containerCgroups.count == 1, "left by the killed monitor")
        let started = h.urun(["start", "stale"], root: root, cgroup: d.path)
        #expect(started.status == 0, "\(started)")
        #expect(waitFor { Harness.sh("pgrep -u \(h.uid) -x -f 'sleep 5432'").status == 0 })
        #expect(h.urun(["rm", "-f", "stale"], root: root, cgroup: d.path).status == 0)
        #expect(waitFor { d.containerCgroups.isEmpty }, "\(d.containerCgroups)")
    }
}
