import Foundation
import Glibc
import Testing
import UrunTestSupport

/// podman (Debian's 4.3), rootless as the test user, with urun-runc as its
/// runtime: `--runtime` is all it takes. Storage, runtime directory and
/// image are the test's own, removed at the end with podman's pause process.
final class Podman: Sendable {
    static let shared = Podman()

    let base: String
    let runtime: String
    let problem: String?

    static let missing: String? = {
        if getuid() != 0 { return "podman's storage is set up for the test user by root (run the tests as root, as CI does)" }
        return Harness.sh("command -v podman").status == 0 ? nil : "podman is not installed (Helpers/setup installs it)"
    }()

    private init() {
        let h = Harness.shared
        base = h.workspace + "/podman"
        runtime = base + "/bin/urun-runc"
        if let missing = Self.missing {
            problem = missing
            return
        }
        Harness.sh("mkdir -p \(base)/bin \(base)/run && ln -sf \(h.binary) \(runtime) && chown -R \(h.uid) \(base) && chmod 700 \(base)/run")
        let imported = h.runAsUser(Self.closingDescriptors(["podman"] + Self.options(base) + ["import", h.image(), "localhost/busybox"]), environment: Self.environment(base), timeout: 120)
        problem = imported.status == 0 ? nil : "podman import failed: \(imported)"
        podmanToRemove = base
        atexit {
            let base = podmanToRemove
            // podman's rootless pause process holds its user namespace: it goes too.
            _ = system("kill $(cat \(base)/run/libpod/tmp/pause.pid 2>/dev/null) 2>/dev/null; rm -rf \(base)")
        }
    }

    static func options(_ base: String) -> [String] {
        ["--root", base + "/storage", "--runroot", base + "/runroot", "--storage-driver", "vfs", "--cgroup-manager=cgroupfs", "--events-backend=file"]
    }

    static func environment(_ base: String) -> [String: String] { ["XDG_RUNTIME_DIR": base + "/run", "HOME": base] }

    /// `podman --runtime urun-runc ARGS...` as the test user. Through a shell
    /// that closes every descriptor above stderr first: conmon, a daemon,
    /// would keep the one Foundation's Process watches to learn that its
    /// child exited, and the test would wait for the container instead.
    @discardableResult
    func podman(_ args: [String], stdin: String? = nil, timeout: Double = 60) -> Outcome {
        Harness.shared.runAsUser(Self.closingDescriptors(["podman"] + Self.options(base) + ["--runtime", runtime] + args), stdin: stdin, environment: Self.environment(base), timeout: timeout)
    }

    /// conmon daemonizes and would keep the harness's pipes open: close every descriptor above 2
    /// first (bash, because dash cannot name descriptors above 9).
    static func closingDescriptors(_ command: [String]) -> [String] {
        ["/bin/bash", "-c", #"for fd in $(ls /proc/$$/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done; exec "$@""#, "bash"] + command
    }
}

nonisolated(unsafe) private var podmanToRemove = ""

@Suite(harnessAvailable, .requiring(Podman.missing == nil, Podman.missing ?? ""), .serialized)
struct PodmanTests {
    let p = Podman.shared

    @Test func podmanRunsUrunAsItsRuntime() throws {
        try #require(p.problem == nil, "\(p.problem ?? "")")
        let run = p.podman(["run", "--rm", "--network", "none", "localhost/busybox", "sh", "-c", "echo hello; id -u; cat /proc/self/uid_map | wc -l"])
        #expect(run.lines == ["hello", "0", "2"], "podman's user namespace, its subordinate ids: \(run)")
        // Exit statuses as docker's: the command's, 126, 127, 137.
        #expect(p.podman(["run", "--rm", "--network", "none", "localhost/busybox", "sh", "-c", "exit 3"]).status == 3)
        let denied = p.podman(["run", "--rm", "--network", "none", "localhost/busybox", "/etc/passwd"])
        #expect(denied.status == 126, "\(denied)")
        let missing = p.podman(["run", "--rm", "--network", "none", "localhost/busybox", "nope"])
        #expect(missing.status == 127, "\(missing)")
    }

    @Test func detachedLogsExecStopRm() throws {
        try #require(p.problem == nil)
        let script = "echo started; trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done"
        let run = p.podman(["run", "-d", "--name", "d1", "--network", "none", "localhost/busybox", "sh", "-c", script])
        #expect(run.status == 0, "\(run)")
        #expect(waitFor { p.podman(["logs", "d1"]).text == "started" })
        let exec = p.podman(["exec", "d1", "sh", "-c", "echo in exec; ps -o comm | sed -n 2p"])
        #expect(exec.lines == ["in exec", "sh"], "\(exec)")
        #expect(p.podman(["exec", "d1", "sh", "-c", "exit 5"]).status == 5)
        #expect(p.podman(["ps", "--format", "{{.Names}} {{.Status}}"]).text.hasPrefix("d1 Up"))
        #expect(p.podman(["stop", "-t", "5", "d1"]).status == 0)
        #expect(p.podman(["logs", "d1"]).lines.last == "bye", "the stop signal reached the container")
        #expect(p.podman(["inspect", "-f", "{{.State.ExitCode}}", "d1"]).text == "0")
        #expect(p.podman(["rm", "d1"]).status == 0)
        #expect(p.podman(["run", "-d", "--name", "k1", "--network", "none", "localhost/busybox", "sleep", "1000"]).status == 0)
        #expect(p.podman(["kill", "k1"]).status == 0)
        #expect(waitFor { p.podman(["inspect", "-f", "{{.State.ExitCode}} {{.State.Status}}", "k1"]).text == "137 exited" })
        #expect(p.podman(["rm", "-f", "k1"]).status == 0)
        #expect(p.podman(["ps", "-aq"]).stdout.isEmpty)
    }

    @Test(.requiring(access("/usr/bin/script", X_OK) == 0, "script(1) (bsdutils) is not installed"))
    func aTerminalThroughConmonsConsoleSocket() throws {
        try #require(p.problem == nil)
        // podman 4.3 drops the output of a tty container that exits at once now and then, with
        // Debian's runc as often as with urun (2 and 3 runs in 12 here): the command lingers.
        let command = (["podman"] + Podman.options(p.base) + ["--runtime", p.runtime, "run", "--rm", "-it", "--network", "none", "localhost/busybox", "sh", "-c", "'tty; stty size; sleep 0.5'"]).joined(separator: " ")
        let result = Harness.shared.runAsUser(
            Podman.closingDescriptors(["script", "-qec", "stty cols 97 rows 31; " + command, "/dev/null"]), environment: Podman.environment(p.base))
        #expect(result.status == 0, "\(result)")
        // The container's terminal echoes whatever podman forwards from script's empty stdin (a
        // "^@" now and then) ahead of the output: compare what the command printed.
        let lines = result.text.replacingOccurrences(of: "\r", with: "").replacingOccurrences(of: "^@", with: "").split(separator: "\n")
        #expect(lines == ["/dev/pts/0", "31 97"], "\(result.stdout.debugDescription)")
    }
}
