import Foundation
import Glibc
import Testing
import UrunTestSupport

/// `urun IMAGE COMMAND`: the core path, run as an unprivileged user.
@Suite(harnessAvailable) struct RunTests {
    let h = Harness.shared

    @Test func rootInsideMappedToTheCaller() throws {
        let uid = h.user?.uid ?? getuid()
        let gid = h.user?.gid ?? getgid()
        let single = h.urun(["--userns", "single", h.image(), "sh", "-c", "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map"])
        #expect(single.status == 0, "\(single)")
        #expect(single.lines.count == 4)
        #expect(single.lines.first == "0")
        #expect(single.lines.dropFirst().first == "0")
        #expect(single.lines[2].split(separator: " ") == ["0", "\(uid)", "1"])
        #expect(single.lines[3].split(separator: " ") == ["0", "\(gid)", "1"])
    }

    @Test(.requiring(Harness.shared.subordinateRange != nil, "the test user has no subordinate ids in /etc/subuid and /etc/subgid, or uidmap is not installed"))
    func subordinateIDsAreMappedWhenGranted() throws {
        let range = try #require(h.subordinateRange)
        let uid = h.user?.uid ?? getuid()
        let result = h.urun([h.image(), "sh", "-c", "cat /proc/self/uid_map; touch /tmp/f && chown 100:50 /tmp/f && stat -c '%u %g' /tmp/f; su app -c id; id"])
        #expect(result.status == 0, "\(result)")
        #expect(result.lines.count == 5, "\(result)")
        #expect(result.lines[0].split(separator: " ") == ["0", "\(uid)", "1"])
        #expect(result.lines[1].split(separator: " ") == ["1", "\(range.start)", "\(range.count)"])
        #expect(result.lines[2] == "100 50", "chown to another user works")
        #expect(result.lines[3] == "uid=1000(app) gid=1000(app) groups=50(staff),1000(app)", "su switches users")
        #expect(result.lines[4] == "uid=0(root) gid=0(root) groups=0(root)")
        let user = h.urun(["--user", "app", h.image(), "sh", "-c", "id; grep CapEff /proc/self/status"])
        #expect(user.lines.first == "uid=1000(app) gid=1000(app) groups=50(staff),1000(app)", "\(user)")
        #expect(user.lines.last?.hasSuffix("0000000000000000") == true)
        let required = h.urun(["--userns", "subids", h.image(), "true"])
        #expect(required.status == 0, "\(required)")
    }

    @Test func commandIsPID1AndSeesOnlyItsOwnProcesses() {
        // `; true` keeps sh from exec'ing ps in its place.
        let result = h.urun([h.image(), "sh", "-c", "echo $$; ps -o pid=,comm=; true"])
        #expect(result.status == 0, "\(result)")
        #expect(result.lines.first == "1")
        // sh and ps: nothing of the host's.
        let processes = result.lines.dropFirst().map { $0.split(separator: " ").map(String.init) }
        #expect(processes.count == 2, "\(result)")
        #expect(processes.first == ["1", "sh"])
    }

    @Test func hostnameIsTheContainersOwn() {
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, 255)
        let hostName = String(cString: host)
        // Changing it takes CAP_SYS_ADMIN, as in docker; it changes only the container's.
        let result = h.urun(["--cap-add", "SYS_ADMIN", h.image(), "sh", "-c", "hostname; hostname changed; hostname; cat /etc/hostname"])
        #expect(result.status == 0, "\(result)")
        #expect(result.lines.count == 3)
        #expect(result.lines[0].count == 12 && result.lines[0].allSatisfy(\.isHexDigit))
        #expect(result.lines[0] != hostName)
        #expect(result.lines[1] == "changed")
        #expect(result.lines[2] == result.lines[0])
        gethostname(&host, 255)
        #expect(String(cString: host) == hostName)
        #expect(h.urun(["--hostname", "box", h.image(), "hostname"]).stdout == "box\n")
        #expect(h.urun([h.image(), "hostname", "changed"]).stderr.contains("not permitted"))
        #expect(h.urun(["run", "-h", "box", h.image(), "hostname"]).stdout == "box\n")
    }

    @Test func writesStayInTheContainer() throws {
        let first = h.urun([h.image(), "sh", "-c", "echo changed > /etc/motd && touch /marker && cat /etc/motd"])
        #expect(first.stdout == "changed\n", "\(first)")
        let second = h.urun([h.image(), "sh", "-c", "cat /etc/motd; test -e /marker && echo leaked || echo clean"])
        #expect(second.lines.first?.hasPrefix("urun test rootfs") == true, "\(second)")
        #expect(second.lines.last == "clean")
        // The shared, unpacked image itself is untouched.
        let motds = Harness.sh("cat \(h.sharedRoot)/cache/layers/*/etc/motd").stdout
        #expect(!motds.contains("changed") && motds.contains("urun test rootfs"))
    }

    /// No mount of the run's (its overlay, scratch, volumes, all under its
    /// state directory) shows in the host's table. Other suites' root podman
    /// and containerd mount elsewhere meanwhile, so only these lines count.
    @Test func hostMountTableIsUnchanged() throws {
        func ours() throws -> [Substring] {
            try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8).split(separator: "\n").filter { $0.contains(h.sharedRoot) }
        }
        let before = try ours()
        let result = h.urun(["-v", "\(h.workspace):/w:ro", "--tmpfs", "/scratch", h.image(), "mount"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("overlay on / type overlay"))
        let after = try ours()
        #expect(before == after && after.isEmpty, "\(after)")
    }

    @Test func stdinIsPassedThrough() {
        #expect(h.urun([h.image(), "cat"], stdin: "hi\nthere\n").stdout == "hi\nthere\n")
        #expect(h.urun([h.image(), "wc", "-c"], stdin: String(repeating: "x", count: 200_000)).stdout.trimmingCharacters(in: .whitespaces) == "200000\n")
    }

    @Test(arguments: ["busybox.tar", "busybox.tar.gz", "busybox.tar.xz", "busybox.tar.zst"])
    func everyCompressionRuns(_ image: String) {
        let result = h.urun([h.image(image), "cat", "/etc/motd"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.hasPrefix("urun test rootfs"))
    }

    @Test func aDirectoryIsAnImageToo() {
        let tree = h.freshRoot() + "/tree"
        h.runAsUser(["sh", "-c", "mkdir -p \(tree) && tar -C \(tree) -xf \(h.image())"])
        let result = h.urun([tree, "cat", "/etc/motd"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.hasPrefix("urun test rootfs"))
    }

    @Test func explainNarratesEveryStepInOrder() {
        let result = h.urun(["--explain", "--userns", "single", "--network", "none", h.image(), "true"])
        #expect(result.status == 0, "\(result)")
        // The child's early unshare runs while urun writes the maps, so its line
        // may come anywhere among them; everything else is strictly ordered.
        #expect(result.stderr.contains("unshare(CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWNET)"))
        let steps = [
            "clone(CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWPID)", "/setgroups \"deny\"",
            "/uid_map \"0 ", "/gid_map \"0 ", "write(release pipe)", "unshare(CLONE_NEWCGROUP)",
            "MS_REC|MS_PRIVATE", "mount(\"tmpfs\"", "mount(\"overlay\"", "userxattr", "mount(\"proc\", \"/proc\"",
            "mount(\"devpts\"", "pivot_root", "umount2(\".\", MNT_DETACH)", "sethostname", "execve(\"/bin/true\"",
        ]
        var position = result.stderr.startIndex
        for step in steps {
            guard let found = result.stderr.range(of: step, range: position..<result.stderr.endIndex) else {
                Issue.record("step \(step) missing or out of order in:\n\(result.stderr)")
                return
            }
            position = found.upperBound
        }
        #expect(result.stderr.contains("user_namespaces(7)"))
        if h.subordinateRange != nil {
            // With subordinate ids, the setuid helpers write the maps.
            let mapped = h.urun(["--explain", h.image(), "true"])
            #expect(mapped.stderr.contains("newuidmap "), "\(mapped)")
            #expect(mapped.stderr.contains("newgidmap "), "\(mapped)")
            #expect(!mapped.stderr.contains("/setgroups \"deny\""), "su and apt need setgroups(2)")
        }
        let json = h.urun(["--explain=json", "--network", "none", h.image(), "true"])
        let firstLine = json.stderr.split(separator: "\n").first ?? ""
        #expect(firstLine.hasPrefix("{\"phase\":"), "\(json)")
        // Each event is timed, in one clock for urun and its child: per process, time only moves on.
        var last: [Int: Int] = [:]
        for line in json.stderr.split(separator: "\n") where line.hasPrefix("{") {
            let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
            guard let t = object?["t_us"] as? Int, let pid = object?["pid"] as? Int else {
                Issue.record("an event without t_us and pid: \(line)")
                continue
            }
            #expect(t >= last[pid, default: 0], "\(line)")
            last[pid] = t
        }
        #expect(last.count >= 2, "urun's and its child's events: \(last)")
    }
}

/// docker's exit codes: the command's own, 128+N for signal N, 125/126/127 for urun's.
@Suite(harnessAvailable) struct ExitCodeTests {
    let h = Harness.shared

    @Test func commandStatusIsPassedThrough() {
        #expect(h.urun([h.image(), "true"]).status == 0)
        #expect(h.urun([h.image(), "sh", "-c", "exit 42"]).status == 42)
    }

    @Test func notExecutableIs126() {
        let result = h.urun([h.image(), "/etc/passwd"])
        #expect(result.status == 126, "\(result)")
        #expect(result.stderr.contains("/etc/passwd: cannot execute"))
    }

    @Test func notFoundIs127() {
        let result = h.urun([h.image(), "no-such-command"])
        #expect(result.status == 127, "\(result)")
        #expect(result.stderr == "urun: no-such-command: executable file not found in $PATH\n")
        #expect(h.urun([h.image(), "/bin/nope"]).status == 127)
    }

    @Test func killedBySignalIs128PlusN() {
        // PID 1 cannot be killed from inside its own namespace; under --init the command is PID 2.
        let result = h.urun(["--init", h.image(), "sh", "-c", "kill -9 $$"])
        #expect(result.status == 137, "\(result)")
        #expect(h.urun(["--init", h.image(), "sh", "-c", "kill -TERM $$"]).status == 143)
    }

    @Test func urunsOwnErrorsAre125() {
        let missing = h.urun(["/no/such/image.tar", "true"])
        #expect(missing.status == 125)
        #expect(missing.stderr == "urun: image /no/such/image.tar: no such file or directory\n")
        let flag = h.urun(["--no-such-flag", h.image(), "true"])
        #expect(flag.status == 125)
        #expect(flag.stderr.contains("unknown flag: --no-such-flag"))
        let notArchive = h.urun(["/etc/hostname", "true"])
        #expect(notArchive.status == 125)
        #expect(notArchive.stderr.contains("not a tar archive"), "\(notArchive)")
        #expect(h.urun(["-v", "/no/such/dir:/x", h.image(), "true"]).status == 125)
        #expect(h.urun(["-u", "nobody-here", h.image(), "true"]).status == 125)
        #expect(h.urun(["--network", "bogus", h.image(), "true"]).status == 125)
        #expect(h.urun(["-w", "relative", h.image(), "true"]).status == 125)
    }

    @Test func signalsSentToUrunReachTheContainer() throws {
        // setpriv and env exec in place, so the started process is urun itself.
        let urun = h.start([h.binary, "--init", h.image(), "sleep", "31"], environment: ["URUN_ROOT": h.sharedRoot])
        #expect(waitFor { Harness.sh("pgrep -u \(h.uid) -x -f 'sleep 31'").status == 0 })
        kill(urun.processIdentifier, SIGTERM)
        urun.waitUntilExit()
        #expect(urun.terminationStatus == 143)
    }
}
