import Foundation
import Glibc
import Testing
import UrunTestSupport

/// Nothing of a container outlives it: no mount, process, directory or half
/// cache entry, whatever way it ends.
@Suite(harnessAvailable) struct CleanupTests {
    let h = Harness.shared

    /// What urun keeps under `root` besides finished cache entries.
    func leftovers(_ root: String) -> [String] {
        let listing = Harness.sh(
            "cd \(root) && { ls -A data/containers 2>/dev/null | grep -v '^.lock$'; ls -A cache/tmp 2>/dev/null; } | sed 's/^/  /'"
        )
        return listing.lines
    }

    /// The test user's processes whose command line is exactly `commandLine`.
    func processesOfTheTestUser(running commandLine: String) -> [String] {
        Harness.sh("pgrep -u \(h.uid) -x -f '\(commandLine)' || true").lines
    }

    @Test func successAndEveryFailureLeaveNothingBehind() {
        let root = h.freshRoot()
        let runs: [([String], Int32)] = [
            ([h.image(), "sh", "-c", "mkdir -p /locked/in /ro && touch /ro/f && chmod 000 /locked && chmod 555 /ro"], 0),
            ([h.image(), "no-such-command"], 127),
            ([h.image(), "/etc/passwd"], 126),
            (["-v", "/no/such/path:/x", h.image(), "true"], 125),
            (["-u", "ghost", h.image(), "true"], 125),
            (["/no/such/image", "true"], 125),
            ([h.workspace + "/urun", "true"], 125),  // not an archive
            ([h.image(), "sh", "-c", "exit 9"], 9),
        ]
        for (arguments, expected) in runs {
            let result = h.urun(arguments, root: root)
            #expect(result.status == expected, "\(arguments): \(result)")
        }
        #expect(leftovers(root).isEmpty, "\(leftovers(root))")
        // Nothing under this test's state is mounted here. (Other suites' root
        // podman and containerd mount under the workspace meanwhile.)
        #expect(Harness.sh("grep -cF '\(root)' /proc/self/mountinfo").stdout == "0\n")
    }

    @Test func sigkillOfUrunTakesTheContainerAndTheNextRunCleansUp() throws {
        let root = h.freshRoot()
        #expect(h.urun([h.image(), "true"], root: root).status == 0)  // unpack first: the kill must hit a running container
        let urun = h.start([h.binary, h.image(), "sleep", "1234"], environment: ["URUN_ROOT": root])
        #expect(waitFor { !processesOfTheTestUser(running: "sleep 1234").isEmpty })
        kill(urun.processIdentifier, SIGKILL)
        urun.waitUntilExit()
        // PR_SET_PDEATHSIG takes the container's PID 1, and with it the whole PID namespace.
        #expect(waitFor(5) { processesOfTheTestUser(running: "sleep 1234").isEmpty })
        #expect(leftovers(root).count == 1, "the killed container's directory stays until the next run")
        #expect(h.urun([h.image(), "true"], root: root).status == 0)
        #expect(leftovers(root).isEmpty, "\(leftovers(root))")
    }

    /// The busybox image plus a 300 MB file read from `device`: large enough
    /// that a signal lands mid-unpack.
    func bigArchive(in root: String, adding name: String, from device: String) -> String {
        let big = root + "/big.tar"
        h.runAsUser([
            "sh", "-c",
            "mkdir \(root)/big && tar -C \(root)/big -xf \(h.image()) && head -c 300000000 \(device) > \(root)/big/\(name) && tar -C \(root)/big -cf \(big) .",
        ])
        return big
    }

    @Test func interruptedUnpackLeavesNoHalfEntry() throws {
        let root = h.freshRoot()
        let big = bigArchive(in: root, adding: "zeros", from: "/dev/zero")
        let urun = h.start([h.binary, big, "true"], environment: ["URUN_ROOT": root])
        #expect(waitFor { Harness.sh("ls \(root)/cache/tmp 2>/dev/null | grep -q .").status == 0 })
        kill(urun.processIdentifier, SIGKILL)
        urun.waitUntilExit()
        #expect(Harness.sh("ls -A \(root)/cache/layers 2>/dev/null").stdout == "")
        // The next unpack of the same archive removes the stale one and finishes.
        let result = h.urun([big, "sh", "-c", "wc -c < /zeros"], root: root, timeout: 120)
        #expect(result.stdout.trimmingCharacters(in: .whitespaces) == "300000000\n", "\(result)")
        #expect(leftovers(root).isEmpty)
    }

    @Test func controlCDuringAnUnpackRemovesItsTemporaryTree() throws {
        let root = h.freshRoot()
        let big = bigArchive(in: root, adding: "noise", from: "/dev/urandom")
        let urun = h.start([h.binary, big, "true"], environment: ["URUN_ROOT": root])
        #expect(waitFor { Harness.sh("ls \(root)/cache/tmp 2>/dev/null | grep -q .").status == 0 })
        kill(urun.processIdentifier, SIGINT)
        urun.waitUntilExit()
        // urun cleans up, then dies of the signal, so the shell sees ^C.
        #expect(urun.terminationReason == .uncaughtSignal && urun.terminationStatus == SIGINT)
        #expect(Harness.sh("ls -A \(root)/cache/tmp \(root)/cache/layers").stdout.split(separator: "\n").filter { !$0.hasSuffix(":") && !$0.isEmpty }.isEmpty)
    }

    @Test func twoFirstRunsOfOneImageShareOneUnpack() throws {
        let root = h.freshRoot()
        let image = h.image("busybox.tar.xz")
        let runs = (0..<3).map { _ in
            h.start([h.binary, image, "sh", "-c", "cat /etc/motd >/dev/null"], environment: ["URUN_ROOT": root])
        }
        for run in runs {
            run.waitUntilExit()
            #expect(run.terminationStatus == 0)
        }
        #expect(Harness.sh("ls \(root)/cache/layers | grep -v '\\.size$' | wc -l").stdout.trimmingCharacters(in: .whitespaces) == "1\n")
        #expect(leftovers(root).isEmpty)
    }

    @Test func hostileArchivesChangeNothingOutsideTheCache() throws {
        let root = h.freshRoot()
        let outside = root + "/outside"
        h.runAsUser(["mkdir", outside])
        var planted = TarWriter()
        planted.add("bin/", .directory, mode: 0o755)
        planted.add("escape", .symlink, link: outside)
        planted.add("escape/pwned", content: "through a symlink")
        planted.add("/etc/absolute", content: "absolute name")
        planted.add("hard", .hardlink, link: "/etc/absolute")
        let image = root + "/planted.tar"
        FileManager.default.createFile(atPath: image, contents: Data(planted.archive))
        chmod(image, 0o644)
        let result = h.urun([image, "/bin/none"], root: root)
        #expect(result.status == 127, "the image unpacks; it just has no command: \(result)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: outside).isEmpty)

        var dotdot = TarWriter()
        dotdot.add("../../../../../../tmp/urun-escaped-\(getpid())", content: "x")
        let bad = root + "/dotdot.tar"
        FileManager.default.createFile(atPath: bad, contents: Data(dotdot.archive))
        chmod(bad, 0o644)
        let refused = h.urun([bad, "true"], root: root)
        #expect(refused.status == 125)
        #expect(refused.stderr.contains("'..'"), "\(refused)")
        #expect(access("/tmp/urun-escaped-\(getpid())", F_OK) != 0)
        #expect(leftovers(root).isEmpty)
    }

    @Test func truncatedArchiveIsAnErrorWithNoEntry() throws {
        let root = h.freshRoot()
        let cut = root + "/cut.tar.gz"
        h.runAsUser(["sh", "-c", "head -c 300000 \(h.image("busybox.tar.gz")) > \(cut)"])
        let result = h.urun([cut, "true"], root: root)
        #expect(result.status == 125, "\(result)")
        #expect(Harness.sh("ls -A \(root)/cache/layers 2>/dev/null").stdout == "")
        #expect(leftovers(root).isEmpty)
    }
}
