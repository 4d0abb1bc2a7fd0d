import Foundation
import Glibc
import Testing
import UrunTestSupport

/// Bad input gets one clear line, exit 125, and leaves nothing behind; what
/// urun echoes back is short and cannot drive the terminal.
@Suite(harnessAvailable) struct InputValidationTests {
    let h = Harness.shared

    /// Runs urun in a fresh root and checks the refusal: 125, one line on
    /// stderr holding `expected`, no escape byte, a short message, and no
    /// container, cgroup, mount or temporary directory left.
    func refused(_ arguments: [String], _ expected: String, stdin: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) {
        let root = h.freshRoot()
        let result = h.urun(arguments, stdin: stdin, root: root, timeout: 30)
        let shown = "\(arguments.map { $0.prefix(40) })"
        #expect(result.status == 125, "\(shown): \(result)", sourceLocation: sourceLocation)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1 || (lines.count == 2 && lines[1].hasPrefix("See 'urun")), "\(shown): one line: \(result)", sourceLocation: sourceLocation)
        #expect(result.stderr.contains(expected), "\(shown): \(result)", sourceLocation: sourceLocation)
        #expect(!result.stderr.utf8.contains(0x1B), "no escape byte reaches the terminal", sourceLocation: sourceLocation)
        #expect(result.stderr.utf8.count < 700, "\(shown): \(result.stderr.utf8.count) bytes of error", sourceLocation: sourceLocation)
        let left = Harness.sh("find \(root)/data/containers \(root)/run/containers -mindepth 1 -maxdepth 1 ! -name '.*' 2>/dev/null")
        #expect(left.stdout.isEmpty, "\(shown) left \(left.stdout)", sourceLocation: sourceLocation)
    }

    @Test func valuesWrittenIntoFilesRefuseControlCharacters() {
        // Each would add a line of its own to resolv.conf or hosts.
        refused(["--dns-search", "example.com\nnameserver 6.6.6.6", h.image(), "true"], "--dns-search example.com\\nnameserver")
        refused(["--dns-option", "ndots:1\nnameserver 6.6.6.6", h.image(), "true"], "--dns-option")
        refused(["--dns-option", "ndots:1 edns0", h.image(), "true"], "--dns-option")
        refused(["--add-host", "evil\n6.6.6.6 victim:1.2.3.4", h.image(), "true"], "--add-host")
        refused(["--add-host", "a b:1.2.3.4", h.image(), "true"], "--add-host")
        refused(["--hostname", "box\n6.6.6.6 victim", h.image(), "true"], "--hostname")
        refused(["--hostname", "x\u{1B}]0;pwned\u{07}", h.image(), "true"], "--hostname x\\x1b]0;pwned\\x07")
        refused(["--user", "root\nx", h.image(), "true"], "--user root\\nx")
        refused(["--workdir", "/srv\n/etc", h.image(), "true"], "--workdir")
        refused(["--name", "a\nb", h.image(), "true"], "invalid container name")
        // A legitimate value of each still works, and lands as one line.
        let ok = h.urun(["--network", "none", "--dns-search", "corp.example", "--dns-option", "ndots:2", "--add-host", "db.local:10.0.0.5", "--hostname", "box-1.test", h.image(), "sh", "-c", "cat /etc/resolv.conf /etc/hosts /etc/hostname"])
        #expect(ok.status == 0, "\(ok)")
        #expect(ok.lines.contains("search corp.example") && ok.lines.contains("options ndots:2"), "\(ok)")
        #expect(ok.lines.contains("10.0.0.5\tdb.local") && ok.lines.last == "box-1.test", "\(ok)")
    }

    @Test func acceptedButWrongIsNowRefused() {
        refused(["--name", String(repeating: "n", count: 100_000), h.image(), "true"], "invalid container name")
        refused(["-e", "=x", h.image(), "true"], "a variable needs a name")
        refused(["-e", "A B=1", h.image(), "true"], "holds whitespace")
        refused(["--platform", "foo/bar", h.image(), "true"], "--platform foo/bar: expected linux/ARCH")
        refused(["--platform", "linux/amd64/vx", h.image(), "true"], "--platform")
        refused([h.image() + ":nosuchtag", "true"], "it has no tags")
        refused(["--stop-timeout", "-5", h.image(), "true"], "--stop-timeout -5")
        refused(["--stop-timeout", "99999999999999999", h.image(), "true"], "--stop-timeout")
        refused(["--fake-root=maybe", h.image(), "true"], "--fake-root")
        refused(["-v", "/tmp:/", h.image(), "true"], "cannot mount over the container's root")
        refused(["-v", "/tmp:/x/..", h.image(), "true"], "cannot mount over the container's root")
        refused(["--tmpfs", "/", h.image(), "true"], "cannot mount over the container's root")
        refused(["run", "-h", String(repeating: "h", count: 100), h.image(), "true"], "the kernel's limit is 64 bytes")
        refused(["create", "--name", "-bad", h.image()], "invalid container name")
    }

    @Test func unclearErrorsNowSayWhatToDo() {
        refused(["--explain", "xml"], "write --explain=xml")
        refused(["--explain", "xml", "true"], "write --explain=xml")
        if let range = h.subordinateRange {
            refused(["-u", "70000", h.image(), "true"], "uid 70000 is not mapped in the container's user namespace: ids 0 to \(range.count)")
            refused(["-u", "0:70000", h.image(), "true"], "gid 70000 is not mapped")
        }
        refused([String(repeating: "i", count: 100_000) + ".tar", "true"], "(100004 bytes): file name too long")
        // The long value is shown shortened, with its length.
        let long = h.urun(["--name", String(repeating: "n", count: 100_000), h.image(), "true"])
        #expect(long.stderr.contains("(100000 bytes)"), "\(long.stderr.prefix(300))")
        // A directory image whose files belong to ids the container does not map.
        let directory = h.workspace + "/unmapped-\(UUID().uuidString)"
        Harness.sh("mkdir -p \(directory) && tar -C \(directory) -xf \(h.image()) && rm -f \(directory)/etc/hostname \(directory)/etc/hosts \(directory)/etc/resolv.conf && chown -R \(h.uid):4242 \(directory) && chmod 755 \(directory)")
        defer { Harness.sh("rm -rf \(directory)") }
        refused(["--network", "none", directory, "true"], "/etc belongs to gid 4242, which the container's user namespace does not map")
    }

    /// docker's and podman's verbs are not taken for image names.
    @Test(arguments: ["build", "history", "diff", "search", "network"])
    func otherToolsVerbsAreNamed(_ verb: String) {
        refused([verb, "something"], "'\(verb)' is not a urun command; urun's commands are: run, create")
    }

    /// Files named on the command line are read with a bound and a deadline.
    @Test func inputFilesAreBounded() throws {
        let root = h.freshRoot()
        let fifo = root + "/fifo"
        Harness.sh("mkfifo \(fifo) && chown \(h.uid) \(fifo)")
        let started = Date()
        refused(["--env-file", "/dev/zero", h.image(), "true"], "--env-file /dev/zero: not a regular file or a pipe")
        refused(["--security-opt", "seccomp=/dev/zero", h.image(), "true"], "not a regular file or a pipe")
        refused(["--env-file", fifo, h.image(), "true"], "nothing was written to it within 10 seconds")
        let big = root + "/big.env"
        Harness.sh("head -c 2000000 /dev/zero | tr '\\0' a > \(big) && chmod 644 \(big)")
        refused(["--env-file", big, h.image(), "true"], "larger than 1 MiB")
        refused(["--security-opt", "seccomp=" + big, h.image(), "true"], "larger than 1 MiB")
        refused(["--env-file", root, h.image(), "true"], "is a directory")
        #expect(Date().timeIntervalSince(started) < 40, "each refusal is quick (the FIFO waits 10 s)")
        // A pipe that is written to, as `--env-file <(...)` gives, works.
        let piped = h.runAsUser(["bash", "-c", "\(h.binary) --network none --env-file <(echo FROM=pipe) \(h.image()) sh -c 'echo $FROM'"], environment: ["URUN_ROOT": root])
        #expect(piped.text == "pipe", "\(piped)")
    }

    /// A tag from an image is shown escaped: an image cannot write to the user's terminal.
    @Test func imageTagsAreShownEscaped() throws {
        let root = h.freshRoot()
        var builder = ImageArchiveBuilder()
        let layer = try Data(contentsOf: URL(fileURLWithPath: h.image()))
        builder.layers = [Array(layer)]
        builder.tags = ["evil\u{1B}[2J\u{1B}]0;title\u{07}:latest"]
        let archive = root + "/evil.tar"
        FileManager.default.createFile(atPath: archive, contents: Data(builder.dockerSave()))
        Harness.sh("chmod 644 \(archive)")
        #expect(h.urun(["--network", "none", archive, "true"], root: root).status == 0)
        let images = h.urun(["images"], root: root)
        #expect(images.status == 0)
        #expect(!images.stdout.utf8.contains(0x1B) && !images.stdout.utf8.contains(0x07), "\(images)")
        #expect(images.stdout.contains("evil\\x1b[2J\\x1b]0;title\\x07"), "\(images)")
    }
}
