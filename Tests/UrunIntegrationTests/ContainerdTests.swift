import Foundation
import Glibc
import Testing
import UrunTestSupport

/// containerd (Debian's 1.6) as root with urun-runc as its runtime: `ctr`
/// with `--runc-binary`, and the CRI path a kubelet takes (containerd's CRI
/// plugin, a runtime handler whose BinaryName is urun-runc, its runc shim),
/// driven through the CRI gRPC API by Helpers/cri. Each test starts its own
/// containerd, as /work/shared/oci-clients describes for this kind of host:
/// in private mount and network namespaces, everything under a temporary
/// directory, /run and /var/lib overlaid (containerd 1.6 puts shim sockets
/// and CNI caches there whatever its config says), and cgroup2 mounted over
/// /sys/fs/cgroup, so neither containerd's shim nor urun sees, or touches,
/// the v1 hierarchies. Stopping it checks that nothing it made is left.
final class Containerd {
    let base: String
    let socket: String
    let runtime: String
    private let cgroupsBefore: Set<String>
    private var stopped = false

    static let criAPI = (ProcessInfo.processInfo.environment["URUN_FIXTURES"] ?? Harness.packageRoot + "/.build/fixtures") + "/cri"

    static let missing: String? = {
        if getuid() != 0 { return "containerd runs as root (run the tests as root, as CI does)" }
        for tool in ["containerd", "ctr", "containerd-shim-runc-v2", "/usr/lib/cni/bridge"] where Harness.sh("command -v \(tool)").status != 0 {
            return "\(tool) is not installed (Helpers/setup installs containerd and containernetworking-plugins)"
        }
        if Harness.sh("/usr/bin/python3 -c 'import grpc, google.protobuf'").status != 0 {
            return "python3-grpcio and python3-protobuf are not installed (Helpers/setup installs them)"
        }
        if access(criAPI + "/api_pb2.py", R_OK) != 0 {
            return "\(criAPI)/api_pb2.py is missing (Helpers/test makes it with Helpers/cri-api, which needs protobuf-compiler)"
        }
        return nil
    }()

    static let busyboxLayer: [UInt8] = Array((try? Data(contentsOf: URL(fileURLWithPath: Harness.shared.image()))) ?? Data())

    init() throws {
        let h = Harness.shared
        base = h.freshRoot() + "-ctrd"
        socket = base + "/c.sock"
        runtime = base + "/bin/urun-runc"
        cgroupsBefore = Self.cgroupDirectories()
        try #require(Harness.sh("mkdir -p \(base)/bin \(base)/cni/net.d \(base)/pods \(base)/fifo && ln -s \(h.binary) \(runtime)").status == 0)
        try write("config.toml", """
            version = 2
            root = "\(base)/root"
            state = "\(base)/state"
            [grpc]
              address = "\(socket)"
            [ttrpc]
              address = "\(socket).ttrpc"
            [plugins."io.containerd.internal.v1.opt"]
              path = "\(base)/opt"
            [plugins."io.containerd.runtime.v1.linux"]
              runtime_root = "\(base)/runtime-v1"
            [plugins."io.containerd.grpc.v1.cri"]
              sandbox_image = "localhost/pause:1"
              # This host's cgroup2 has no cpu controller for the sandbox's cpu.shares
              # (urun would refuse it, naming the fix): no cgroups from the CRI here.
              disable_cgroup = true
              disable_apparmor = true
              disable_hugetlb_controller = true
              tolerate_missing_hugetlb_controller = true
              disable_tcp_service = true
              stream_server_address = "127.0.0.1"
              stream_server_port = "0"
              netns_mounts_under_state_dir = true
              # Root here lacks CAP_SYS_RESOURCE: the sandbox's oomScoreAdj -998 would fail.
              restrict_oom_score_adj = true
              [plugins."io.containerd.grpc.v1.cri".cni]
                bin_dir = "/usr/lib/cni"
                conf_dir = "\(base)/cni/net.d"
              [plugins."io.containerd.grpc.v1.cri".containerd]
                snapshotter = "overlayfs"
                default_runtime_name = "urun"
                [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.urun]
                  runtime_type = "io.containerd.runc.v2"
                  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.urun.options]
                    BinaryName = "\(runtime)"
                    Root = "\(base)/runtime-root"

            """)
        try write("cni/net.d/10-urun-test.conflist", """
            {"cniVersion": "1.0.0", "name": "urun-test", "plugins": [
              {"type": "bridge", "bridge": "uruntest0", "isGateway": true, "ipMasq": false,
               "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.91.0/24"}]], "dataDir": "\(base)/cni/ipam"}}]}
            """)
        // The daemon must not keep the harness's descriptors (it would wait for containerd).
        try write("bin/start", """
            #!/bin/bash
            for fd in $(ls /proc/$$/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done
            set -e
            ip link set lo up
            for dir in run var/lib; do
                name=${dir//\\//-}; mkdir -p \(base)/ns/$name-upper \(base)/ns/$name-work
                mount -t overlay overlay -o lowerdir=/$dir,upperdir=\(base)/ns/$name-upper,workdir=\(base)/ns/$name-work /$dir
            done
            mount -t cgroup2 cgroup2 /sys/fs/cgroup
            exec containerd --config \(base)/config.toml
            """, mode: 0o755)
        let started = Harness.sh(
            "unshare -m -n --propagation private \(base)/bin/start > \(base)/containerd.log 2>&1 < /dev/null & echo $! > \(base)/containerd.pid")
        try #require(started.status == 0, "\(started)")
        let up = waitFor(30) { self.ctr(["version"], timeout: 5).status == 0 }
        try #require(up, "containerd did not start: \((try? String(contentsOfFile: base + "/containerd.log", encoding: .utf8)) ?? "")")

        // Images without a registry: busybox, and a "pause" that sleeps as the pod's sandbox.
        var busybox = ImageArchiveBuilder()
        busybox.layers = [Self.busyboxLayer]
        busybox.env = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]
        busybox.cmd = ["sh"]
        busybox.tags = ["localhost/busybox:1"]
        var pause = busybox
        pause.cmd = nil
        pause.entrypoint = ["/bin/sleep", "1000007"]
        pause.tags = ["localhost/pause:1"]
        FileManager.default.createFile(atPath: base + "/images.tar", contents: Data(ImageArchiveBuilder.dockerSave(images: [busybox, pause])))
        for namespace in ["k8s.io", "ctrtest"] {
            let imported = ctr(["-n", namespace, "images", "import", base + "/images.tar"], timeout: 120)
            try #require(imported.status == 0, "\(imported)")
        }
    }

    deinit { if !stopped { _ = stop() } }

    private func write(_ name: String, _ text: String, mode: mode_t = 0o644) throws {
        try #require(FileManager.default.createFile(atPath: base + "/" + name, contents: Data(text.utf8)))
        chmod(base + "/" + name, mode)
    }

    @discardableResult
    func ctr(_ args: [String], timeout: Double = 60) -> Outcome {
        Harness.run(["ctr", "-a", socket] + args, as: nil, environment: [:], stdin: nil, workspace: base, timeout: timeout)
    }

    /// `ctr run` with this host's settings: the fifos under the test's
    /// directory (else ctr makes them where the shim cannot see), and no
    /// cpu.shares (this cgroup2 has no cpu controller).
    func ctrRun(_ args: [String], timeout: Double = 60) -> Outcome {
        ctr(["-n", "ctrtest", "run", "--fifo-dir", base + "/fifo", "--runc-binary", runtime, "--runc-root", base + "/ctr-root"] + args, timeout: timeout)
    }

    /// One CRI call: the reply as JSON, or the error line.
    func cri(_ method: String, _ request: [String: Any] = [:]) -> (reply: [String: Any], error: String?) {
        let json = String(decoding: try! JSONSerialization.data(withJSONObject: request), as: UTF8.self)
        let call = Harness.run(
            [Harness.packageRoot + "/Helpers/cri", socket, method, json], as: nil, environment: ["CRI_API_DIR": Self.criAPI],
            stdin: nil, workspace: base, timeout: 90)
        guard call.status == 0 else { return ([:], "\(method): \(call)") }
        return ((try? JSONSerialization.jsonObject(with: Data(call.stdout.utf8))) as? [String: Any] ?? [:], nil)
    }

    /// The hierarchy's directories but the subtrees Helpers/cgroup-delegate
    /// makes for other tests running meanwhile.
    static func cgroupDirectories() -> Set<String> {
        Set(Harness.sh("find /sys/fs/cgroup/unified -mindepth 1 -type d -name 'urun-delegated.*' -prune -o -type d -print 2>/dev/null").lines)
            .subtracting(["/sys/fs/cgroup/unified"])
    }

    /// Stops containerd and says what it or urun left behind: processes
    /// (shims, containers), cgroups, mounts on the host, state. Then removes
    /// whatever that was, so one failure does not leak into the next test.
    func stop() -> [String] {
        stopped = true
        var left: [String] = []
        if let pid = pid_t((try? String(contentsOfFile: base + "/containerd.pid", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") {
            kill(pid, SIGTERM)
            if !waitFor(10, { kill(pid, 0) != 0 }) { kill(pid, SIGKILL) }
            _ = waitFor(5) { kill(pid, 0) != 0 }
        }
        // Shims exit once their last container is deleted; the containers' commands use these sleeps.
        // ("shi[m]": the pattern must not match the shell that runs pgrep.)
        let shims = "containerd-shi[m].* -address \(socket)"
        let leftovers = Harness.sh("pgrep -a -f '\(shims)'; pgrep -a -x -f 'sleep (1000007|3601|3602)'").text
        if !leftovers.isEmpty {
            left.append("processes: \(leftovers)")
            Harness.sh("pkill -9 -f '\(shims)'; pkill -9 -x -f 'sleep (1000007|3601|3602)'")
        }
        let newCgroups = Self.cgroupDirectories().subtracting(cgroupsBefore)
        // ctr's namespace is the parent cgroup containerd names (/ctrtest/ID); urun
        // removes the container's own, as runc does, and the engine owns the parent.
        for directory in newCgroups.sorted().reversed() {
            if !directory.hasSuffix("/ctrtest") { left.append("cgroup \(directory)") }
            rmdir(directory)
        }
        let mounts = Harness.sh("grep -F '\(base)' /proc/self/mountinfo").text
        if !mounts.isEmpty { left.append("mounts on the host: \(mounts)") }
        // The shim makes ROOT/NAMESPACE; urun's state is a directory per container below it
        // (beside .cache, the compiled seccomp programs kept for the next create).
        let state = Harness.sh("find \(base)/runtime-root \(base)/ctr-root -mindepth 2 ! -path '*/.cache*' 2>/dev/null").text
        if !state.isEmpty { left.append("urun's state: \(state)") }
        Harness.sh("rm -rf \(base)")
        return left
    }
}

@Suite(harnessAvailable, .requiring(Containerd.missing == nil, Containerd.missing ?? ""), .serialized)
struct ContainerdTests {
    @Test func ctrRunsAndExecsThroughUrun() throws {
        let c = try Containerd()
        let run = c.ctrRun(["--rm", "--cpu-shares", "0", "localhost/busybox:1", "r1", "sh", "-c", "echo hello; id -u; exit 3"])
        #expect(run.status == 3, "ctr passes the command's status on: \(run)")
        #expect(run.lines == ["hello", "0"], "\(run)")

        // Limits urun cannot enforce here are refused by name, and leave nothing.
        let limited = c.ctrRun(["--rm", "--cpu-shares", "512", "localhost/busybox:1", "r2", "true"])
        #expect(limited.status != 0 && limited.stderr.contains("cpu"), "\(limited)")
        c.ctr(["-n", "ctrtest", "containers", "rm", "r2"])

        let detached = c.ctrRun(["-d", "--cpu-shares", "0", "localhost/busybox:1", "d1", "sleep", "3602"])
        #expect(detached.status == 0, "\(detached)")
        let exec = c.ctr(["-n", "ctrtest", "task", "exec", "--fifo-dir", c.base + "/fifo", "--exec-id", "e1", "d1", "sh", "-c", "echo in $(cat /proc/1/cmdline | tr '\\0' ' '); exit 4"])
        #expect(exec.status == 4, "\(exec)")
        #expect(exec.text == "in sleep 3602", "the exec joins the task's namespaces: \(exec)")
        #expect(c.ctr(["-n", "ctrtest", "task", "kill", "-s", "SIGKILL", "d1"]).status == 0)
        #expect(waitFor(10) { c.ctr(["-n", "ctrtest", "task", "ls"]).stdout.contains("STOPPED") }, "\(c.ctr(["-n", "ctrtest", "task", "ls"]))")
        #expect(c.ctr(["-n", "ctrtest", "task", "rm", "d1"]).status == 0)
        #expect(c.ctr(["-n", "ctrtest", "containers", "rm", "d1"]).status == 0)
        let left = c.stop()
        #expect(left.isEmpty, "\(left)")
    }

    /// The calls a kubelet makes for one pod with one container, and what
    /// each must show: the pod's network, hostname and PID namespace shared
    /// with the container, exec's output and status, the container's log,
    /// its exit status, and nothing left once the pod is removed.
    @Test func theKubeletsPathThroughTheCRI() throws {
        let c = try Containerd()
        let pod: [String: Any] = [
            "metadata": ["name": "web", "namespace": "default", "uid": "urun-test-pod", "attempt": 1],
            "hostname": "urunpod", "log_directory": c.base + "/pods", "linux": [String: Any](),
        ]
        let sandbox = c.cri("RunPodSandbox", ["config": pod, "runtime_handler": "urun"])
        try #require(sandbox.error == nil, "\(sandbox.error ?? "")")
        let podID = try #require(sandbox.reply["pod_sandbox_id"] as? String)

        let created = c.cri("CreateContainer", [
            "pod_sandbox_id": podID, "sandbox_config": pod,
            "config": [
                "metadata": ["name": "app"], "image": ["image": "localhost/busybox:1"], "log_path": "app.log",
                "command": ["/bin/sh", "-c", "echo hello from the pod; echo to stderr >&2; exec sleep 3601"],
                "envs": [["key": "GREETING", "value": "hi"]], "linux": [String: Any](),
            ],
        ])
        try #require(created.error == nil, "\(created.error ?? "")")
        let id = try #require(created.reply["container_id"] as? String)
        #expect(c.cri("StartContainer", ["container_id": id]).error == nil)

        func execSync(_ command: String) -> (status: Int, stdout: String) {
            let reply = c.cri("ExecSync", ["container_id": id, "cmd": ["sh", "-c", command], "timeout": 20])
            #expect(reply.error == nil, "\(reply.error ?? "")")
            let stdout = (reply.reply["stdout"] as? String).flatMap { Data(base64Encoded: $0) }.map { String(decoding: $0, as: UTF8.self) } ?? ""
            return ((reply.reply["exit_code"] as? Int) ?? 0, stdout)
        }
        let seen = execSync("hostname; echo $GREETING; ip -4 -o addr show eth0 | awk '{print $4}'; tr '\\0' ' ' < /proc/1/cmdline")
        let lines = seen.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 4 && lines[0] == "urunpod" && lines[1] == "hi", "\(seen)")
        #expect(lines.count == 4 && lines[2].hasPrefix("10.88.91."), "the pod's CNI address: \(seen)")
        #expect(lines.count == 4 && lines[3] == "/bin/sleep 1000007 ", "PID 1 is the sandbox's (one PID namespace per pod): \(seen)")
        #expect(execSync("exit 5").status == 5)

        let status = c.cri("ContainerStatus", ["container_id": id])
        let state = status.reply["status"] as? [String: Any]
        #expect(state?["state"] as? String == "CONTAINER_RUNNING", "\(status)")
        // The CRI log format: TIME STREAM P|F TEXT.
        let log = (try? String(contentsOfFile: c.base + "/pods/app.log", encoding: .utf8)) ?? ""
        let entries = log.split(separator: "\n").map { $0.split(separator: " ", maxSplits: 3).dropFirst().joined(separator: " ") }
        #expect(Set(entries) == ["stdout F hello from the pod", "stderr F to stderr"], "\(log)")

        #expect(c.cri("StopContainer", ["container_id": id, "timeout": 5]).error == nil)
        let exited = c.cri("ContainerStatus", ["container_id": id]).reply["status"] as? [String: Any]
        #expect(exited?["state"] as? String == "CONTAINER_EXITED", "\(exited ?? [:])")
        #expect(exited?["exit_code"] as? Int == 143, "sleep ended by SIGTERM: \(exited ?? [:])")
        #expect(c.cri("RemoveContainer", ["container_id": id]).error == nil)
        #expect(c.cri("StopPodSandbox", ["pod_sandbox_id": podID]).error == nil)
        #expect(c.cri("RemovePodSandbox", ["pod_sandbox_id": podID]).error == nil)
        #expect((c.cri("ListPodSandbox").reply["items"] as? [Any] ?? []).isEmpty)
        let left = c.stop()
        #expect(left.isEmpty, "\(left)")
    }
}
