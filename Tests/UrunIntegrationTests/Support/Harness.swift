import Foundation
import Glibc
import Testing
import UrunTestSupport

/// What a command did.
struct Outcome: CustomStringConvertible {
    let status: Int32
    let stdout: String
    let stderr: String

    var description: String { "exit \(status)\n--- stdout\n\(stdout)--- stderr\n\(stderr)" }
    var lines: [String] { stdout.split(separator: "\n").map(String.init) }
    /// The one value a command printed, without its newline.
    var text: String { stdout.trimmingCharacters(in: .whitespacesAndNewlines) }
}

/// Runs the built urun as an unprivileged user, as a user of urun would.
///
/// When the tests run as root (CI does), a dedicated user `urun-test` is
/// created with `useradd` and subordinate ids, and every urun command runs
/// through `setpriv --reuid --regid --init-groups --reset-env`: a clean
/// environment and no privilege at all. Run as an ordinary user, the tests run
/// urun as that user. They never pass by running urun as root.
///
/// The binary is `URUN_BIN` (Helpers/test sets it to the static release
/// build) or `.build/debug/urun`; the busybox images come from `URUN_FIXTURES`
/// or are built with Helpers/make-rootfs. Both are copied to a workspace in
/// /tmp that the test user can read, removed when the tests end.
final class Harness: Sendable {
    static let shared = Harness()

    let workspace: String
    let binary: String
    let fixtures: String
    let user: TestUser?

    static let packageRoot: String = {
        var path = #filePath
        for _ in 0..<4 { path = String(path[..<path.lastIndex(of: "/")!]) }
        return path
    }()

    private init() {
        var template = Array("/tmp/urun-it-XXXXXX".utf8CString)
        let workspace = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
        chmod(workspace, 0o755)
        workspaceToRemove = workspace
        atexit { _ = system("rm -rf '\(workspaceToRemove)'") }
        self.workspace = workspace
        binary = workspace + "/urun"
        fixtures = workspace + "/fixtures"

        let root = Harness.packageRoot
        let environment = ProcessInfo.processInfo.environment
        let built = environment["URUN_BIN"] ?? root + "/.build/debug/urun"
        let fixtureSource = environment["URUN_FIXTURES"] ?? root + "/.build/fixtures"
        var problem: String?
        if access(built, X_OK) != 0 {
            problem = "no urun binary at \(built): run Helpers/test, or swift build first"
        } else if access(fixtureSource + "/busybox.tar", R_OK) != 0,
            Harness.sh("'\(root)/Helpers/make-rootfs' '\(fixtureSource)' >/dev/null").status != 0
        {
            problem = "cannot build the busybox fixtures (Helpers/make-rootfs needs busybox-static)"
        } else {
            let copy = Harness.sh(
                "cp '\(built)' '\(binary)' && chmod 755 '\(binary)' && mkdir -m 755 '\(fixtures)' && cp '\(fixtureSource)'/busybox.tar* '\(fixtures)/' && chmod 644 '\(fixtures)'/*"
            )
            if copy.status != 0 { problem = "cannot prepare the workspace: \(copy.stderr)" }
            // urun-transfer (registries) goes beside urun, where urun looks for it.
            let transfer = [environment["URUN_TRANSFER"], (built as NSString).deletingLastPathComponent + "/urun-transfer",
                root + "/.build/debug/urun-transfer"].compactMap { $0 }.first { access($0, X_OK) == 0 }
            if let transfer { Harness.sh("cp '\(transfer)' '\(workspace)/urun-transfer' && chmod 755 '\(workspace)/urun-transfer'") }
        }
        user = getuid() == 0 ? TestUser.ensure() : nil
        if getuid() == 0 && user == nil { problem = problem ?? "cannot create the test user \(TestUser.name) (useradd)" }
        if problem == nil {
            let owner = user.map { "\($0.uid):\($0.gid)" } ?? "\(getuid()):\(getgid())"
            Harness.sh("mkdir -m 755 '\(workspace)/roots' && chown \(owner) '\(workspace)/roots'")
            let probe = Harness.run(
                ["unshare", "--user", "--map-root-user", "true"], as: user, environment: [:], stdin: nil,
                workspace: workspace, timeout: 30)
            if probe.status != 0 {
                problem = "unprivileged user namespaces are unavailable here: \(probe.stderr.trimmingCharacters(in: .whitespacesAndNewlines))"
            }
        }
        skipReason = problem
    }

    /// Why the integration tests cannot run here; swift-testing prints it when it skips them.
    let skipReason: String?
    var isAvailable: Bool { skipReason == nil }

    /// The uid urun runs as.
    var uid: UInt32 { user?.uid ?? getuid() }

    /// The test user's first subordinate uid range, when /etc/subuid and
    /// /etc/subgid grant one and newuidmap is installed: urun then maps it.
    var subordinateRange: (start: UInt32, count: UInt32)? {
        guard access("/usr/bin/newuidmap", X_OK) == 0, access("/usr/bin/newgidmap", X_OK) == 0 else { return nil }
        let name = user?.name ?? Harness.sh("id -un").text
        let uid = self.uid
        func first(_ file: String) -> (UInt32, UInt32)? {
            let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
            for line in text.split(separator: "\n") {
                let f = line.split(separator: ":")
                if f.count == 3, f[0] == name || f[0] == String(uid), let start = UInt32(f[1]), let count = UInt32(f[2]) {
                    return (start, count)
                }
            }
            return nil
        }
        guard let uids = first("/etc/subuid"), first("/etc/subgid") != nil else { return nil }
        return (uids.0, uids.1)
    }

    /// A fixture image by name ("busybox.tar", "busybox.tar.zst", ...).
    func image(_ name: String = "busybox.tar") -> String { fixtures + "/" + name }

    /// A new, empty URUN_ROOT owned by the test user.
    func freshRoot() -> String {
        let path = workspace + "/roots/" + UUID().uuidString
        _ = runAsUser(["mkdir", "-p", path])
        return path
    }

    /// A new directory for PATH holding links to `executables` (urun itself,
    /// a network helper), named as they are: a PATH a test controls.
    func pathDirectory(linking executables: [String]) -> String {
        let bin = freshRoot() + "-bin"
        let links = executables.map { "ln -sf '\($0)' '\(bin)/'" }.joined(separator: " && ")
        let made = Harness.sh("mkdir -p '\(bin)' && \(links) && chmod 755 '\(bin)'")
        #expect(made.status == 0, "\(made)")
        return bin
    }

    /// The URUN_ROOT most tests share, so that the images are unpacked once.
    var sharedRoot: String { workspace + "/roots/shared" }

    /// Runs urun with `arguments` as the test user, in a clean environment.
    @discardableResult
    func urun(
        _ arguments: [String], stdin: String? = nil, root: String? = nil, environment: [String: String] = [:],
        cgroup: String? = nil, timeout: Double = 60
    ) -> Outcome {
        var env = environment
        env["URUN_ROOT"] = root ?? sharedRoot
        return runAsUser([binary] + arguments, stdin: stdin, environment: env, cgroup: cgroup, timeout: timeout)
    }

    /// Runs any command as the test user, in a clean environment; inside
    /// `cgroup` (entered before privileges are dropped) when given.
    @discardableResult
    func runAsUser(
        _ command: [String], stdin: String? = nil, environment: [String: String] = [:], cgroup: String? = nil,
        timeout: Double = 60
    ) -> Outcome {
        let process = Harness.process(command, as: user, environment: environment, cgroup: cgroup)
        return Harness.run(process, stdin: stdin, workspace: workspace, timeout: timeout)
    }

    /// Starts a command as the test user without waiting for it.
    func start(_ command: [String], environment: [String: String] = [:], cgroup: String? = nil) -> Process {
        let process = Harness.process(command, as: user, environment: environment, cgroup: cgroup)
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try! process.run()
        return process
    }

    static func run(
        _ command: [String], as user: TestUser?, environment: [String: String], stdin: String?, workspace: String,
        timeout: Double
    ) -> Outcome {
        run(process(command, as: user, environment: environment), stdin: stdin, workspace: workspace, timeout: timeout)
    }

    /// `command` as `user` (or as ourselves when nil) with only HOME, PATH and
    /// `environment` set; moved into `cgroup` first when one is given.
    static func process(
        _ command: [String], as user: TestUser?, environment: [String: String], cgroup: String? = nil
    ) -> Process {
        let home = user?.home ?? (ProcessInfo.processInfo.environment["HOME"] ?? "/tmp")
        var env = ["HOME=\(home)", "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"]
        env += environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        if let user {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            process.arguments =
                ["--reuid=\(user.uid)", "--regid=\(user.gid)", "--init-groups", "--reset-env", "--", "/usr/bin/env", "-i"]
                + env + command
        } else {
            process.arguments = ["-i"] + env + command
        }
        if let cgroup {
            let helper = packageRoot + "/Helpers/cgroup-delegate"
            process.arguments = ["exec", cgroup, process.executableURL!.path] + (process.arguments ?? [])
            process.executableURL = URL(fileURLWithPath: helper)
        }
        return process
    }

    static func run(_ process: Process, stdin: String?, workspace: String, timeout: Double) -> Outcome {
        let id = UUID().uuidString
        let out = workspace + "/out-" + id
        let err = workspace + "/err-" + id
        let input = workspace + "/in-" + id
        FileManager.default.createFile(atPath: out, contents: nil)
        FileManager.default.createFile(atPath: err, contents: nil)
        defer {
            unlink(out)
            unlink(err)
            unlink(input)
        }
        process.standardOutput = FileHandle(forWritingAtPath: out)
        process.standardError = FileHandle(forWritingAtPath: err)
        if let stdin {
            FileManager.default.createFile(atPath: input, contents: Data(stdin.utf8))
            process.standardInput = FileHandle(forReadingAtPath: input)
        } else {
            process.standardInput = FileHandle.nullDevice
        }
        do {
            try process.run()
        } catch {
            return Outcome(status: -1, stdout: "", stderr: "cannot start: \(error)")
        }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(2000) }
        var timedOut = false
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            timedOut = true
        }
        process.waitUntilExit()
        let status =
            process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
        let stdout = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        var stderr = (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
        if timedOut { stderr += "\n[harness: killed after \(timeout) s]" }
        return Outcome(status: status, stdout: stdout, stderr: stderr)
    }

    /// A host shell command, as whoever runs the tests.
    @discardableResult
    static func sh(_ command: String) -> Outcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        return run(process, stdin: nil, workspace: "/tmp", timeout: 300)
    }
}

/// Polls `condition` every 10 ms for up to `seconds`.
func waitFor(_ seconds: Double = 10, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        usleep(10_000)
    }
    return condition()
}

/// The unprivileged user the tests run urun as, when they run as root.
struct TestUser: Sendable {
    let name: String
    let uid: UInt32
    let gid: UInt32
    let home: String

    static let name = "urun-test"

    /// Creates the user if needed, with a subordinate id range (for the
    /// tests of images that need one).
    static func ensure() -> TestUser? {
        if Harness.sh("id -u \(name)").status != 0 {
            Harness.sh("useradd --create-home --shell /bin/sh \(name)")
        }
        for file in ["/etc/subuid", "/etc/subgid"] {
            Harness.sh("grep -q '^\(name):' \(file) 2>/dev/null || echo '\(name):400000:65536' >> \(file)")
        }
        let uid = Harness.sh("id -u \(name)").text
        let gid = Harness.sh("id -g \(name)").text
        let home = Harness.sh("getent passwd \(name) | cut -d: -f6").text
        guard let u = UInt32(uid), let g = UInt32(gid), !home.isEmpty else { return nil }
        return TestUser(name: name, uid: u, gid: g, home: home)
    }
}

/// The skip condition every integration suite carries: swift-testing prints
/// the reason when it skips.
let harnessAvailable = Requirement(met: Harness.shared.isAvailable, reason: Harness.shared.skipReason ?? "")

nonisolated(unsafe) private var workspaceToRemove = ""

/// The escape probe (Tests/Probes/escape-probe.c), compiled static on first
/// use into the workspace; nil, with the reason printed, where it cannot be
/// built (no cc or static libc).
let escapeProbe: String? = probe("escape-probe")

/// A UDP endpoint (Tests/Probes/udp-probe.c), built the same way.
let udpProbe: String? = probe("udp-probe")

private func probe(_ name: String) -> String? {
    let path = Harness.shared.workspace + "/" + name
    let source = Harness.packageRoot + "/Tests/Probes/\(name).c"
    let built = Harness.sh("cc -static -O2 -o '\(path)' '\(source)' && chmod 755 '\(path)'")
    if built.status != 0 {
        print("\(name): cannot build it static (needs cc and libc6-dev): \(built.stderr)")
        return nil
    }
    return path
}
