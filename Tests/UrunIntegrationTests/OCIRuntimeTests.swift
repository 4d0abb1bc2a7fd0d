import Foundation
import Glibc
import Testing
import UrunTestSupport

/// A bundle (a busybox rootfs and a config.json) that urun runs as an OCI
/// runtime, made by `urun oci spec` and edited as a test needs.
struct OCIBundle {
    let h = Harness.shared
    let path: String
    /// The runtime's state root, private to the test.
    let root: String
    /// Run as the test user (rootless) or as root.
    let rootless: Bool

    init(rootless: Bool = true, _ edit: (inout [String: Any]) -> Void = { _ in }) {
        self.rootless = rootless
        let base = Harness.shared.freshRoot()
        path = base + "/bundle"
        root = base + "/oci-state"
        let owner = rootless ? "\(Harness.shared.uid)" : "0"
        Harness.sh("mkdir -p \(path)/rootfs && tar -C \(path)/rootfs -xf \(Harness.shared.image()) && chown -R \(owner) \(path)")
        let spec = rootless
            ? Harness.shared.runAsUser([Harness.shared.binary, "oci", "spec", "--rootless", "--bundle", path])
            : Harness.sh("'\(Harness.shared.binary)' oci spec --bundle \(path)")
        #expect(spec.status == 0, "\(spec)")
        var config = (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path + "/config.json")))) as? [String: Any] ?? [:]
        var process = config["process"] as? [String: Any] ?? [:]
        process["terminal"] = false
        config["process"] = process
        edit(&config)
        let data = try! JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted])
        FileManager.default.createFile(atPath: path + "/config.json", contents: data)
        Harness.sh("chown \(owner) \(path)/config.json")
    }

    static func command(_ args: [String]) -> (inout [String: Any]) -> Void {
        { config in
            var process = config["process"] as! [String: Any]
            process["args"] = args
            config["process"] = process
        }
    }

    /// `urun oci --root ROOT ARGS...`, as the bundle's user.
    @discardableResult
    func oci(_ args: [String], stdin: String? = nil, timeout: Double = 30) -> Outcome {
        let command = [h.binary, "oci", "--root", root] + args
        if rootless { return h.runAsUser(command, stdin: stdin, timeout: timeout) }
        let process = Harness.process(command, as: nil, environment: [:])
        return Harness.run(process, stdin: stdin, workspace: h.workspace, timeout: timeout)
    }

    func status(_ id: String) -> String {
        let state = oci(["state", id])
        let json = (try? JSONSerialization.jsonObject(with: Data(state.stdout.utf8))) as? [String: Any]
        return json?["status"] as? String ?? "error: \(state.stderr)"
    }
}

/// urun driven as an OCI runtime through runc's command line, the way
/// engines drive it: rootless as the test user, and as root.
@Suite(harnessAvailable) struct OCIRuntimeTests {
    let h = Harness.shared

    @Test(arguments: [true, false]) func runPrintsAndExitsWithTheStatus(_ rootless: Bool) throws {
        try require(rootless || getuid() == 0, "running as root needs root")
        let bundle = OCIBundle(rootless: rootless, OCIBundle.command(["sh", "-c", "echo pid $$; id -u; grep CapEff /proc/self/status; hostname; exit 3"]))
        let run = bundle.oci(["run", "--bundle", bundle.path, "r1"])
        #expect(run.status == 3, "\(run)")
        #expect(run.lines == ["pid 1", "0", "CapEff:\t0000000020000420", "urun"], "the config's process, capabilities and hostname: \(run)")
        #expect(bundle.oci(["list", "-q"]).stdout.isEmpty, "run removes its container")
    }

    @Test(arguments: [true, false]) func createStartStateKillDelete(_ rootless: Bool) throws {
        try require(rootless || getuid() == 0, "running as root needs root")
        let bundle = OCIBundle(rootless: rootless, OCIBundle.command(["sleep", "1000"]))
        let pidFile = bundle.path + "/init.pid"
        let create = bundle.oci(["create", "--bundle", bundle.path, "--pid-file", pidFile, "c1"])
        #expect(create.status == 0, "\(create)")
        let pid = Harness.sh("cat \(pidFile)").text
        #expect(Int32(pid) != nil, "the pid file holds the init's pid")
        #expect(bundle.status("c1") == "created")
        #expect(Harness.sh("cat /proc/\(pid)/cmdline | tr '\\0' ' '").text.contains("oci"), "before start, the init is urun, waiting")
        let state = bundle.oci(["state", "c1"])
        let json = try #require((try? JSONSerialization.jsonObject(with: Data(state.stdout.utf8))) as? [String: Any])
        #expect(json["ociVersion"] as? String == "1.2.0" && json["id"] as? String == "c1" && json["bundle"] as? String == bundle.path)
        #expect("\(json["pid"] ?? "")" == pid)
        #expect(bundle.oci(["create", "--bundle", bundle.path, "c1"]).stderr.contains("already exists"))

        #expect(bundle.oci(["start", "c1"]).status == 0)
        #expect(bundle.status("c1") == "running")
        #expect(Harness.sh("cat /proc/\(pid)/cmdline | tr '\\0' ' '").text == "sleep 1000", "start let it exec its command")
        #expect(bundle.oci(["start", "c1"]).stderr.contains("it is running, not created"))
        let list = bundle.oci(["list", "--format", "json"])
        #expect(list.stdout.contains("\"id\":\"c1\"") && list.stdout.contains("\"status\":\"running\""), "\(list)")
        #expect(bundle.oci(["ps", "--format", "json", "c1"]).text == "[\(pid)]")
        let refused = bundle.oci(["delete", "c1"])
        #expect(refused.status == 1 && refused.stderr.contains("not stopped"), "\(refused)")
        #expect(bundle.oci(["kill", "c1", "9"]).status == 0, "signals by number, as podman sends them")
        #expect(waitFor { bundle.status("c1") == "stopped" })
        #expect(bundle.oci(["kill", "--all", "c1", "SIGKILL"]).status == 0, "the shim's kill --all of a stopped container")
        #expect(bundle.oci(["delete", "c1"]).status == 0)
        #expect(bundle.oci(["state", "c1"]).stderr.contains("does not exist"))
        #expect(bundle.oci(["delete", "--force", "c1"]).status == 0, "delete --force of what is gone: 0, as engines expect")
        #expect(Harness.sh("ls -A \(bundle.root)").stdout.isEmpty, "no state left")
    }

    @Test(arguments: [true, false]) func execJoinsTheContainer(_ rootless: Bool) throws {
        try require(rootless || getuid() == 0, "running as root needs root")
        let bundle = OCIBundle(rootless: rootless, OCIBundle.command(["sleep", "1000"]))
        #expect(bundle.oci(["run", "-d", "--bundle", bundle.path, "e1"]).status == 0)
        let exec = bundle.oci(["exec", "e1", "sh", "-c", "echo $$; ps -o comm | sed -n 2p"])
        #expect(exec.lines == ["2", "sleep"], "in the container's PID namespace: \(exec)")
        #expect(bundle.oci(["exec", "e1", "sh", "-c", "exit 5"]).status == 5)
        let missing = bundle.oci(["exec", "e1", "nope"])
        #expect(missing.status != 0 && missing.stderr.contains("not found"), "\(missing)")
        // --process, as podman and the containerd shim pass it, detached with a pid file.
        let process = bundle.path + "/process.json"
        FileManager.default.createFile(atPath: process, contents: Data(#"{"args":["sh","-c","sleep 77"],"cwd":"/tmp","env":["PATH=/bin"],"user":{"uid":0,"gid":0},"capabilities":{"bounding":["CAP_KILL"],"effective":["CAP_KILL"],"permitted":["CAP_KILL"]}}"#.utf8))
        Harness.sh("chmod 644 \(process)")
        let detached = bundle.oci(["exec", "--process", process, "--detach", "--pid-file", bundle.path + "/exec.pid", "e1"])
        #expect(detached.status == 0, "\(detached)")
        let pid = Harness.sh("cat \(bundle.path)/exec.pid").text
        #expect(waitFor { Harness.sh("grep CapEff /proc/\(pid)/status").text == "CapEff:\t0000000000000020" }, "the process's own capabilities (CAP_KILL)")
        #expect(Harness.sh("readlink /proc/\(pid)/cwd").text.hasSuffix("/tmp"))
        #expect(bundle.oci(["delete", "--force", "e1"]).status == 0)
        #expect(waitFor { Harness.sh("kill -0 \(pid) 2>/dev/null").status != 0 }, "the exec'd process died with the container")
    }

    /// A pod: the second container joins the first one's namespaces by path
    /// (the CRI shares a pod's PID, IPC, UTS and network namespaces this way;
    /// rootless, podman's pods join its user namespace too). Its processes
    /// keep running after `create` and `exec --detach` return, also when they
    /// switch to a user with supplementary groups.
    @Test(arguments: [true, false]) func aSecondContainerJoinsTheFirstsNamespaces(_ rootless: Bool) throws {
        try require(rootless || getuid() == 0, "running as root needs root")
        let first = OCIBundle(rootless: rootless, OCIBundle.command(["sleep", "1001"]))
        #expect(first.oci(["run", "-d", "--bundle", first.path, "p1"]).status == 0)
        let pid = try #require(Int32(first.oci(["ps", "p1"]).lines.last { Int32($0) != nil } ?? ""), "\(first.oci(["ps", "p1"]))")
        let second = OCIBundle(rootless: rootless) { config in
            var process = config["process"] as! [String: Any]
            process["args"] = ["sleep", "1002"]
            process["user"] = ["uid": 0, "gid": 0, "additionalGids": [0]]
            config["process"] = process
            var linux = config["linux"] as! [String: Any]
            var namespaces = (linux["namespaces"] as! [[String: Any]]).filter { $0["type"] as? String == "mount" }
            for type in ["pid", "ipc", "uts", "network"] + (rootless ? ["user"] : []) {
                namespaces.append(["type": type, "path": "/proc/\(pid)/ns/\(type == "network" ? "net" : type)"])
            }
            linux["namespaces"] = namespaces
            linux.removeValue(forKey: "uidMappings")
            linux.removeValue(forKey: "gidMappings")
            config["linux"] = linux
            config.removeValue(forKey: "hostname")
        }
        let created = second.oci(["create", "--bundle", second.path, "p2"])
        #expect(created.status == 0, "\(created)")
        #expect(second.oci(["start", "p2"]).status == 0)
        let seen = second.oci(["exec", "p2", "sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline; echo; hostname; readlink /proc/self/ns/net"])
        let netOfFirst = Harness.sh("readlink /proc/\(pid)/ns/net").text
        #expect(seen.lines == ["sleep 1001 ", "urun", netOfFirst], "PID 1 is the first container's: \(seen)")
        let process = second.path + "/process.json"
        FileManager.default.createFile(atPath: process, contents: Data(#"{"args":["sleep","1003"],"cwd":"/","env":["PATH=/bin"],"user":{"uid":0,"gid":0,"additionalGids":[0]}}"#.utf8))
        Harness.sh("chmod 644 \(process)")
        #expect(second.oci(["exec", "--process", process, "--detach", "--pid-file", second.path + "/exec.pid", "p2"]).status == 0)
        let execPID = Harness.sh("cat \(second.path)/exec.pid").text
        usleep(200_000)
        #expect(Harness.sh("tr '\\0' ' ' < /proc/\(execPID)/cmdline").text == "sleep 1003", "a detached exec outlives urun exec")
        #expect(second.status("p2") == "running", "the init outlives urun create")
        #expect(second.oci(["delete", "--force", "p2"]).status == 0)
        #expect(waitFor { Harness.sh("pgrep -x -f 'sleep 100[23]'").stdout.isEmpty }, "delete --force ends the second container's processes, the exec'd one too")
        #expect(first.status("p1") == "running", "and not the first's, in the same PID namespace")
        #expect(first.oci(["delete", "--force", "p1"]).status == 0)
        #expect(waitFor { Harness.sh("pgrep -x -f 'sleep 100[123]'").stdout.isEmpty })
    }

    /// What an engine puts in a config is honoured: binds, tmpfs, env, cwd,
    /// rlimits, masked and read-only paths, sysctls, the read-only root, hooks.
    @Test func configFieldsAreHonoured() throws {
        let host = h.freshRoot() + "-shared"
        Harness.sh("mkdir -p \(host) && echo from-host > \(host)/file && chown -R \(h.uid) \(host)")
        let hook = h.freshRoot() + "-hook.sh"
        let hookOut = h.freshRoot() + "-hook.out"
        Harness.sh("printf '#!/bin/sh\\ncat > \(hookOut)\\n' > \(hook) && chmod 755 \(hook) && touch \(hookOut) && chown \(h.uid) \(hookOut)")
        let bundle = OCIBundle { config in
            var process = config["process"] as! [String: Any]
            process["args"] = ["sh", "-c", "cat /data/file; pwd; echo $GREETING; ulimit -n; touch /x 2>&1 | grep -c Read-only; cat /proc/keys 2>&1 | wc -c; grep ' /proc/sys ' /proc/self/mountinfo | grep -c ' ro,'; cat /proc/sys/net/ipv4/ip_forward"]
            process["cwd"] = "/work"
            process["env"] = ["PATH=/bin", "GREETING=hello"]
            process["rlimits"] = [["type": "RLIMIT_NOFILE", "soft": 100, "hard": 200]]
            config["process"] = process
            var mounts = config["mounts"] as! [[String: Any]]
            mounts.append(["destination": "/data", "type": "bind", "source": host, "options": ["rbind", "ro"]])
            mounts.append(["destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]])
            config["mounts"] = mounts
            var linux = config["linux"] as! [String: Any]
            var namespaces = linux["namespaces"] as! [[String: Any]]
            namespaces.append(["type": "network"])
            linux["namespaces"] = namespaces
            linux["sysctl"] = ["net.ipv4.ip_forward": "1"]
            config["linux"] = linux
            config["hooks"] = ["prestart": [["path": hook, "args": ["hook"]]]]
        }
        let run = bundle.oci(["run", "--bundle", bundle.path, "f1"])
        #expect(run.lines == ["from-host", "/work", "hello", "100", "1", "0", "1", "1"], "\(run)")
        let state = Harness.sh("cat \(hookOut)").text
        #expect(state.contains("\"id\":\"f1\"") && state.contains("\"status\":\"creating\""), "the hook got the state on stdin: \(state)")
    }

    /// Each hook at its stage with the state on stdin: createRuntime and
    /// prestart by urun on the host, createContainer in the container's
    /// mount namespace before pivot_root (a host path), startContainer in
    /// the container after `start` (a container path), poststart and
    /// poststop on the host.
    @Test func hooksRunAtTheirStages() throws {
        let log = h.freshRoot() + "-hooks.log"
        let hook = h.freshRoot() + "-hook.sh"
        // Each writes its stage and the state's status.
        let script = #"state=$(cat); status=${state#*\"status\":\"}; echo "$1 ${status%%\"*}""#
        FileManager.default.createFile(atPath: hook, contents: Data("#!/bin/sh\n\(script) >> \(log)\n".utf8))
        Harness.sh("chmod 755 \(hook) && touch \(log) && chown \(h.uid) \(log)")
        let bundle = OCIBundle { config in
            var process = config["process"] as! [String: Any]
            process["args"] = ["cat", "/dev/shm/started"]
            config["process"] = process
            func at(_ stage: String) -> [[String: Any]] { [["path": hook, "args": ["hook", stage]]] }
            config["hooks"] = [
                "prestart": at("prestart"), "createRuntime": at("createRuntime"), "createContainer": at("createContainer"),
                "startContainer": [["path": "/bin/sh", "args": ["sh", "-c", script + " > /dev/shm/started", "sh", "startContainer"]]],
                "poststart": at("poststart"), "poststop": at("poststop"),
            ]
        }
        let run = bundle.oci(["run", "--bundle", bundle.path, "h1"])
        #expect(run.text == "startContainer created", "\(run)")
        let stages = Harness.sh("cat \(log)").lines
        #expect(stages == ["prestart creating", "createRuntime creating", "createContainer creating", "poststart running", "poststop stopped"], "\(stages)")

        let failing = OCIBundle { config in
            config["hooks"] = ["createContainer": [["path": "/bin/false"]]]
        }
        let refused = failing.oci(["create", "--bundle", failing.path, "h2"])
        #expect(refused.status == 1 && refused.stderr.contains("createContainer hook /bin/false failed with exit status 1"), "\(refused)")
        #expect(Harness.sh("ls -A \(failing.root) | grep -v '^\\.cache$'").stdout.isEmpty, "nothing left")
    }

    /// A time namespace with the config's offsets, and the LINUX32 execution domain.
    @Test(arguments: [true, false]) func timeOffsetsAndPersonality(_ rootless: Bool) throws {
        try require(rootless || getuid() == 0, "running as root needs root")
        let bundle = OCIBundle(rootless: rootless) { config in
            OCIBundle.command(["sh", "-c", "cat /proc/self/timens_offsets; cut -d. -f1 /proc/uptime; uname -m"])(&config)
            var linux = config["linux"] as! [String: Any]
            var namespaces = linux["namespaces"] as! [[String: Any]]
            namespaces.append(["type": "time"])
            linux["namespaces"] = namespaces
            linux["timeOffsets"] = ["monotonic": ["secs": 86400, "nanosecs": 5], "boottime": ["secs": 10_000_000]]
            linux["personality"] = ["domain": "LINUX32"]
            config["linux"] = linux
        }
        let run = bundle.oci(["run", "--bundle", bundle.path, "t1"])
        let hostUptime = Int(Harness.sh("cut -d. -f1 /proc/uptime").text) ?? 0
        #expect(run.status == 0, "\(run)")
        let offsets = run.lines.prefix(2).map { $0.split(separator: " ").joined(separator: " ") }
        #expect(offsets == ["monotonic 86400 5", "boottime 10000000 0"], "\(run)")
        let uptime = run.lines.count == 4 ? Int(run.lines[2]) ?? 0 : 0
        #expect(uptime >= 10_000_000 + hostUptime - 5 && uptime <= 10_000_000 + hostUptime, "uptime counts from the offset: \(run)")
        #expect(run.lines.last == "i686", "LINUX32: \(run)")
    }

    /// One engine: what `urun run --print-config` prints is what `urun run`
    /// executes. The printed config, pointed at an unpacked copy of the
    /// image (its generated /etc files and limits aside, which belong to a
    /// run's own directory and cgroup), runs under `urun oci` with the same
    /// user, groups, hostname, capabilities, no_new_privs, seccomp, env,
    /// working directory and id maps.
    @Test func urunRunExecutesTheConfigItPrints() throws {
        let command = "id -u; id -G; hostname; grep -E '^(CapBnd|CapEff|NoNewPrivs|Seccomp):' /proc/self/status; echo $GREETING; pwd; wc -l < /proc/self/uid_map; cat /proc/1/cmdline | tr '\\0' ' '; echo"
        let options = ["--network", "none", "--hostname", "same", "-e", "GREETING=hi", "-w", "/tmp", "--cap-drop", "NET_RAW"]
        let printed = h.urun(["run", "--print-config"] + options + [h.image(), "sh", "-c", command])
        try #require(printed.status == 0, "\(printed)")
        let bundle = OCIBundle { config in
            let plan = (try? JSONSerialization.jsonObject(with: Data(printed.stdout.utf8))) as? [String: Any] ?? [:]
            let rootfs = (config["root"] as? [String: Any])?["path"] as? String ?? "rootfs"
            config = plan
            config["root"] = ["path": rootfs, "readonly": false]
            config["mounts"] = (plan["mounts"] as? [[String: Any]] ?? []).filter { !(($0["destination"] as? String) ?? "").hasPrefix("/etc/") }
        }
        let run = h.urun(["run"] + options + [h.image(), "sh", "-c", command])
        let oci = bundle.oci(["run", "--bundle", bundle.path, "same"])
        #expect(run.status == 0 && oci.status == 0, "\(run)\n\(oci)")
        #expect(run.lines.count == 11 && oci.lines == run.lines, "urun run:\n\(run.stdout)urun oci run of its printed config:\n\(oci.stdout)")
        // The same steps, narrated the same way: --explain for one, --debug for the other.
        let explained = h.urun(["run", "--explain"] + options + [h.image(), "true"])
        let debugged = h.runAsUser([h.binary, "oci", "--root", bundle.root, "--debug", "run", "--bundle", bundle.path, "same2"])
        for narration in [explained.stderr, debugged.stderr] {
            #expect(narration.contains("clone(CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWPID)") && narration.contains("pivot_root"), "\(narration)")
        }
    }

    /// A container with a cgroup of its own (linux.cgroupsPath, as root on
    /// this host's cgroup2): its unified limits written, frozen by `pause`,
    /// thawed by `resume`, changed by `update`, removed by `delete`.
    @Test func pauseResumeAndUpdateThroughItsCgroup() throws {
        try require(getuid() == 0, "a cgroup of the container's own needs root here (or a delegated subtree)")
        let hierarchy = Harness.sh("awk '$9 == \"cgroup2\" { print $5; exit }' /proc/self/mountinfo").text
        let name = "urun-oci-test-\(getpid())"
        let bundle = OCIBundle(rootless: false) { config in
            OCIBundle.command(["sleep", "1005"])(&config)
            var linux = config["linux"] as! [String: Any]
            linux["cgroupsPath"] = "/" + name
            linux["resources"] = ["unified": ["cgroup.max.descendants": "3"]]
            config["linux"] = linux
        }
        let cgroup = hierarchy + "/" + name
        #expect(bundle.oci(["run", "-d", "--bundle", bundle.path, "g1"]).status == 0)
        #expect(Harness.sh("cat \(cgroup)/cgroup.max.descendants").text == "3")
        let pid = bundle.oci(["ps", "g1"]).lines.last ?? ""
        #expect(Harness.sh("cat \(cgroup)/cgroup.procs").text == pid, "the init is in its cgroup")
        #expect(bundle.oci(["pause", "g1"]).status == 0)
        #expect(bundle.status("g1") == "paused")
        #expect(waitFor { Harness.sh("grep frozen \(cgroup)/cgroup.events").text == "frozen 1" })
        #expect(bundle.oci(["pause", "g1"]).stderr.contains("it is paused"))
        #expect(bundle.oci(["resume", "g1"]).status == 0)
        #expect(bundle.status("g1") == "running")
        let update = bundle.oci(["update", "--resources", "-", "g1"], stdin: #"{"unified": {"cgroup.max.depth": "2"}}"#)
        #expect(update.status == 0, "\(update)")
        #expect(Harness.sh("cat \(cgroup)/cgroup.max.depth").text == "2")
        #expect(bundle.oci(["delete", "--force", "g1"]).status == 0)
        #expect(access(cgroup, F_OK) != 0, "delete removes its cgroup")
    }

    /// As real root, with no user namespace to make a device node useless:
    /// rules that deny devices at large (every engine's default) keep the
    /// container from making any, even with CAP_MKNOD in its sets (a pod's
    /// default), where urun has no device cgroup program to enforce them.
    @Test func deviceRulesHoldWithoutADeviceCgroup() throws {
        try require(getuid() == 0, "making device nodes is root's")
        func bundle(_ rules: [[String: Any]]) -> OCIBundle {
            OCIBundle(rootless: false) { config in
                OCIBundle.command(["sh", "-c", "mknod /dev/shm/disk b 8 0 2>&1 && echo made"])(&config)
                var process = config["process"] as! [String: Any]
                let caps = ["CAP_MKNOD", "CAP_CHOWN"]
                process["capabilities"] = ["bounding": caps, "effective": caps, "permitted": caps]
                config["process"] = process
                var linux = config["linux"] as! [String: Any]
                linux["resources"] = ["devices": rules]
                config["linux"] = linux
            }
        }
        let denied = bundle([["allow": false, "access": "rwm"], ["allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"]])
        let refused = denied.oci(["run", "--bundle", denied.path, "d1"])
        #expect(refused.status != 0 && refused.text.contains("Operation not permitted"), "\(refused)")
        let open = bundle([["allow": true, "access": "rwm"]])
        let made = open.oci(["run", "--bundle", open.path, "d2"])
        #expect(made.status == 0 && made.text == "made", "rules that allow every device leave CAP_MKNOD: \(made)")
    }

    /// Limits with no delegated cgroup: refused naming the fix, nothing
    /// left; with --cgroup-manager=disabled the container runs without them,
    /// and a warning says so.
    @Test func limitsWithoutADelegatedCgroup() {
        let bundle = OCIBundle { config in
            OCIBundle.command(["echo", "ran"])(&config)
            var linux = config["linux"] as! [String: Any]
            linux["resources"] = ["memory": ["limit": 64 << 20]]
            config["linux"] = linux
        }
        let refused = bundle.oci(["run", "--bundle", bundle.path, "l1"])
        #expect(refused.status == 1 && refused.stderr.contains("linux.resources.memory.limit needs the memory controller, which is not delegated to you here"), "\(refused)")
        #expect(Harness.sh("ls -A \(bundle.root) | grep -v '^\\.cache$'").stdout.isEmpty, "nothing left")
        let disabled = h.runAsUser([h.binary, "oci", "--root", bundle.root, "--cgroup-manager=disabled", "run", "--bundle", bundle.path, "l2"])
        #expect(disabled.status == 0 && disabled.text == "ran", "\(disabled)")
        #expect(disabled.stderr.contains("linux.resources are not applied: --cgroup-manager=disabled"), "\(disabled)")
    }

    /// Bad configs and wrong states: one clear line, exit 1, nothing left.
    @Test func badInputIsOneLineAndLeavesNothing() {
        let bundle = OCIBundle { config in config["ociVersion"] = "2.0.0" }
        let refused = bundle.oci(["create", "--bundle", bundle.path, "v2"])
        #expect(refused.status == 1 && refused.stderr.contains("ociVersion: 2.0.0 is not a 1.x runtime specification"), "\(refused)")
        #expect(bundle.oci(["create", "--bundle", bundle.path, "../escape"]).stderr.contains("invalid container id"))
        #expect(bundle.oci(["start", "nosuch"]).stderr.contains("container \"nosuch\" does not exist"))
        #expect(bundle.oci(["kill", "nosuch", "BOGUS"]).stderr.contains("invalid signal"))
        #expect(bundle.oci(["frobnicate"]).status == 1)
        let missing = OCIBundle(OCIBundle.command(["nope"]))
        let notFound = missing.oci(["create", "--bundle", missing.path, "nf"])
        #expect(notFound.status == 1 && notFound.stderr.contains("nope: executable file not found in $PATH"), "\(notFound)")
        for root in [bundle.root, missing.root] {
            #expect(Harness.sh("ls -A \(root) 2>/dev/null | grep -v '^\\.cache$'").stdout.isEmpty, "nothing left in \(root)")
        }
        // --log json: the error as the containerd shim reads it back.
        let log = bundle.path + "/log.json"
        let logged = h.runAsUser([h.binary, "oci", "--root", bundle.root, "--log", log, "--log-format", "json", "start", "nosuch"])
        #expect(logged.status == 1)
        #expect(Harness.sh("tail -1 \(log)").text.hasPrefix("{\"level\":\"error\",\"msg\":\"container \\\"nosuch\\\" does not exist\""), "\(Harness.sh("cat \(log)"))")
    }

    @Test func versionFeaturesAndSpec() {
        let version = h.urun(["oci", "--version"])
        #expect(version.lines.last == "spec: 1.2.0", "\(version)")
        let features = h.urun(["oci", "features"])
        #expect(features.stdout.contains("\"ociVersionMax\": \"1.2.0\"") && features.stdout.contains("CAP_SYS_ADMIN"), "\(features)")
        // urun-runc, a link to urun, speaks the same.
        let link = h.pathDirectory(linking: [h.binary]) + "/urun-runc"
        Harness.sh("ln -sf \(h.binary) \(link)")
        #expect(h.runAsUser([link, "--version"]).lines.last == "spec: 1.2.0")
    }
}
