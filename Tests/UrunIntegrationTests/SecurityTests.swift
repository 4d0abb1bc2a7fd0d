import Foundation
import Glibc
import Testing
import UrunTestSupport

/// What a container started by an unprivileged user can and cannot do, as
/// the escape probe (Tests/Probes/escape-probe.c) reports it from inside.
@Suite(harnessAvailable, .requiring(escapeProbe != nil, "the escape probe cannot be built here (needs gcc and libc6-dev)"))
struct SecurityTests {
    let h = Harness.shared

    /// Runs the probe in a container with `options`; its `check=result` lines as a dictionary.
    func probe(_ options: [String], _ checks: [String] = [], sourceLocation: SourceLocation = #_sourceLocation)
        -> [String: String]
    {
        let result = h.urun(["run", "-v", "\(escapeProbe!):/probe:ro"] + options + [h.image(), "/probe"] + checks)
        #expect(result.status == 0, "\(result)", sourceLocation: sourceLocation)
        return Self.parse(result.stdout)
    }

    static func parse(_ output: String) -> [String: String] {
        var results: [String: String] = [:]
        for line in output.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 { results[parts[0]] = parts[1] }
        }
        return results
    }

    /// docker's 14 capabilities as /proc/PID/status prints them.
    static let dockerDefaultCaps = "00000000a80425fb"

    @Test func defaultsRefuseEveryEscape() {
        let r = probe([])
        #expect(r["caps"] == Self.dockerDefaultCaps)
        #expect(r["capbnd"] == Self.dockerDefaultCaps)
        #expect(r["capinh"] == "0000000000000000", "nothing inheritable (CVE-2022-24769)")
        #expect(r["no_new_privs"] == "1")
        #expect(r["seccomp"] == "2", "a filter is loaded")
        // The filter refuses what needs CAP_SYS_ADMIN and what no container needs.
        for check in [
            "mount", "unshare_user", "unshare_mount", "clone_newns", "sethostname", "keyctl", "io_uring_setup",
            "kexec_load", "reboot", "bpf", "perf_event_open", "ptrace_parent", "userfaultfd", "personality", "af_vsock",
            "af_alg",
        ] {
            #expect(r[check] == "EPERM", "\(check): \(r[check] ?? "not reported")")
        }
        #expect(r["clone3"] == "ENOSYS", "libc falls back to clone(2), whose flags the filter sees")
        #expect(r["raw_socket"] == "ok", "NET_RAW is one of docker's defaults")
        // /proc/sys is read-only: EROFS before any permission check.
        #expect(r["write_proc_sys_kernel"] == "EROFS")
        #expect(r["write_proc_sys_net"] == "EROFS")
        #expect(r["write_sysrq_trigger"] != "ok")
        #expect(r["fds"] == "none")
    }

    @Test func kernelInterfacesAreMasked() {
        let r = probe([])
        var checked = 0
        for (path, masked) in [
            ("/proc/kcore", "masked"), ("/proc/keys", "masked"), ("/proc/timer_list", "masked"),
            ("/proc/interrupts", "masked"), ("/proc/sched_debug", "masked"), ("/proc/acpi", "empty"),
            ("/proc/scsi", "empty"), ("/sys/firmware", "empty"), ("/sys/devices/virtual/powercap", "empty"),
        ] {
            guard access(path, F_OK) == 0 else {
                print("SecurityTests: \(path) does not exist on this kernel; its mask is not checked")
                continue
            }
            #expect(r[path] == masked, "\(path): \(r[path] ?? "not reported")")
            checked += 1
        }
        #expect(checked >= 3, "this kernel has almost none of the masked paths")
        // unmask=PATH uncovers that path and only it.
        let unmasked = probe(["--security-opt", "unmask=/proc/keys"], ["/proc/keys", "/proc/interrupts"])
        #expect(unmasked["/proc/keys"]?.hasPrefix("read") == true, "\(unmasked)")
        #expect(unmasked["/proc/interrupts"] == "masked")
        let all = probe(["--security-opt", "unmask=ALL"], ["/proc/interrupts", "write_proc_sys_net"])
        #expect(all["/proc/interrupts"]?.hasPrefix("read") == true, "\(all)")
        #expect(all["write_proc_sys_net"] == "EACCES", "/proc/sys is writable again; NET_ADMIN is still missing")
    }

    @Test func privilegedLiftsTheFilterAndMasksButStaysRootless() throws {
        let r = probe(["--privileged"])
        let last = try #require(Int(Harness.sh("cat /proc/sys/kernel/cap_last_cap").text))
        #expect(r["caps"] == String(format: "%016llx", (UInt64(1) << UInt64(last + 1)) - 1), "every capability")
        #expect(r["seccomp"] == "0")
        for check in ["mount", "unshare_user", "unshare_mount", "clone_newns", "sethostname", "keyctl", "write_proc_sys_net"] {
            #expect(r[check] == "ok", "\(check): \(r[check] ?? "not reported")")
        }
        #expect(r["clone3"] == "EINVAL", "the kernel itself sees clone3")
        #expect(r["reboot"] == "EINVAL", "allowed through, and refused by the PID namespace")
        #expect(r["/proc/keys"]?.hasPrefix("read") == true)
        // Still an unprivileged user on the host: the host's own limits hold.
        #expect(r["kexec_load"] != "ok")
        #expect(r["write_proc_sys_kernel"] == "EACCES")
        #expect(r["fds"] == "none")
    }

    @Test func capAddAndCapDropFlipWhatTheyShould() {
        let admin = probe(["--cap-add", "SYS_ADMIN"])
        for check in ["mount", "unshare_user", "unshare_mount", "clone_newns", "sethostname"] {
            #expect(admin[check] == "ok", "\(check) with CAP_SYS_ADMIN: \(admin[check] ?? "not reported")")
        }
        #expect(admin["clone3"] == "EINVAL")
        // What no capability unlocks stays refused, and the masks stay.
        for check in ["keyctl", "io_uring_setup", "userfaultfd", "af_vsock", "af_alg"] {
            #expect(admin[check] == "EPERM", "\(check): \(admin[check] ?? "not reported")")
        }
        #expect(admin["write_proc_sys_net"] == "EROFS")

        let noRaw = probe(["--cap-drop", "net_raw", "--cap-add", "CAP_SYS_BOOT"], ["caps", "raw_socket", "reboot"])
        #expect(noRaw["raw_socket"] == "EPERM")
        #expect(noRaw["reboot"] == "EINVAL", "SYS_BOOT lets reboot(2) through to the PID namespace's refusal")
        #expect(noRaw["caps"] == "00000000a84405fb", "\(noRaw)")

        let none = probe(["--cap-drop", "ALL"], ["caps", "capbnd", "raw_socket"])
        #expect(none["caps"] == "0000000000000000")
        #expect(none["capbnd"] == "0000000000000000")
        #expect(none["raw_socket"] == "EPERM")

        let bad = h.urun(["--cap-add", "SYS_WIZARD", h.image(), "true"])
        #expect(bad.status == 125)
        #expect(bad.stderr.contains("SYS_WIZARD"), "\(bad)")
    }

    @Test func aNonRootUserHasNoCapabilities() {
        let r = probe(["--user", "1000"], ["caps", "capbnd", "raw_socket"])
        #expect(r["caps"] == "0000000000000000")
        #expect(r["capbnd"] == Self.dockerDefaultCaps)
    }

    @Test func securityOptions() {
        let nnp = probe(["--security-opt", "no-new-privileges=false"], ["no_new_privs", "seccomp", "mount"])
        #expect(nnp["no_new_privs"] == "0")
        #expect(nnp["seccomp"] == "2", "the filter is loaded without no_new_privs too")
        #expect(nnp["mount"] == "EPERM")
        let unconfined = probe(["--security-opt", "seccomp=unconfined"], ["seccomp", "keyctl", "mount"])
        #expect(unconfined["seccomp"] == "0")
        #expect(unconfined["keyctl"] == "ok")
        #expect(unconfined["mount"] == "EPERM", "capabilities still apply")
        let wrong = h.urun(["--security-opt", "apparmor=x", h.image(), "true"])
        #expect(wrong.status == 125 && wrong.stderr.contains("apparmor"), "\(wrong)")
    }

    @Test func customProfileInDockersFormat() throws {
        let root = h.freshRoot()
        let profile = root + "/profile.json"
        try """
            {
              "defaultAction": "SCMP_ACT_ALLOW",
              "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"],
              "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13, "comment": "no new directories"},
                {"names": ["keyctl"], "action": "SCMP_ACT_ERRNO", "includes": {"caps": ["CAP_SYS_ADMIN"]}}
              ]
            }
            """.write(toFile: profile, atomically: true, encoding: .utf8)
        chmod(profile, 0o644)
        let result = h.urun(
            ["run", "--security-opt", "seccomp=\(profile)", "-v", "\(escapeProbe!):/probe:ro", h.image(), "sh", "-c",
             "mkdir /x 2>&1; /probe keyctl seccomp"], root: root)
        #expect(result.stdout.contains("Permission denied"), "\(result)")
        #expect(result.stdout.contains("keyctl=ok"), "the keyctl rule applies only with CAP_SYS_ADMIN")
        #expect(result.stdout.contains("seccomp=2"))

        // A malformed profile: exit 125, the file and the field named, nothing created.
        try """
            {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"},
             {"names": ["write"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]}
            """.write(toFile: profile, atomically: true, encoding: .utf8)
        let bad = h.urun(["run", "--name", "never", "--security-opt", "seccomp=\(profile)", h.image(), "true"], root: root)
        #expect(bad.status == 125)
        #expect(bad.stderr.contains(profile) && bad.stderr.contains("syscalls[1].args[0].index"), "\(bad)")
        try "{ not json".write(toFile: profile, atomically: true, encoding: .utf8)
        let broken = h.urun(["run", "--security-opt", "seccomp=\(profile)", h.image(), "true"], root: root)
        #expect(broken.status == 125 && broken.stderr.contains("not valid JSON"), "\(broken)")
        let missing = h.urun(["run", "--security-opt", "seccomp=\(root)/nope.json", h.image(), "true"], root: root)
        #expect(missing.status == 125 && missing.stderr.contains("nope.json"), "\(missing)")
        #expect(h.urun(["ps", "-a", "-q"], root: root).stdout.isEmpty)
    }

    @Test func noHostDescriptorReachesTheContainer() {
        // urun is started with descriptors 7 and 8 open, as a careless caller would.
        let result = h.runAsUser(
            ["sh", "-c", "exec 7</etc/hostname 8>/dev/null; exec \(h.binary) run -v \(escapeProbe!):/probe:ro \(h.image()) /probe fds"],
            environment: ["URUN_ROOT": h.sharedRoot])
        #expect(result.status == 0, "\(result)")
        #expect(Self.parse(result.stdout)["fds"] == "none", "\(result)")
    }

    @Test func initHidesUrunsBinary() {
        // With --init, PID 1 is urun: not dumpable, so its /proc/1/exe (urun's
        // binary on the host) cannot be opened, nor PID 1 traced, even with CAP_SYS_PTRACE.
        let r = probe(["--init", "--cap-add", "SYS_PTRACE"], ["open_proc1_exe", "ptrace_pid1", "ptrace_parent"])
        #expect(r["open_proc1_exe"] == "EACCES", "\(r)")
        #expect(r["ptrace_pid1"] == "EPERM", "\(r)")
        #expect(r["ptrace_parent"] == "ok", "CAP_SYS_PTRACE does work on the container's own processes")
    }

    @Test func execNeverExposesUrunsBinary() throws {
        // The container watches /proc for 3 s while urun execs into it again
        // and again: no process it can see may ever have urun's binary as exe.
        let root = h.freshRoot()
        var st = stat()
        #expect(stat(h.binary, &st) == 0)
        let identity = "\(st.st_dev):\(st.st_ino)"
        let started = h.urun(
            ["run", "-d", "--name", "watch", "-v", "\(escapeProbe!):/probe:ro", h.image(), "/probe", "watch", "3", identity],
            root: root)
        #expect(started.status == 0, "\(started)")
        var execs = 0
        while h.urun(["exec", "watch", "true"], root: root).status == 0 { execs += 1 }
        #expect(execs >= 5, "urun exec ran \(execs) times while the container watched")
        #expect(h.urun(["wait", "watch"], root: root).stdout == "0\n")
        let log = h.urun(["logs", "watch"], root: root).stdout
        let summary = try #require(log.split(separator: "\n").last { $0.hasPrefix("watch ") }, "\(log)")
        let counts = Self.parse(summary.dropFirst(6).split(separator: " ").joined(separator: "\n"))
        #expect(counts["reached"] == "0", "\(log)")
        #expect((Int(counts["opened"] ?? "") ?? 0) > 0, "the probe did open the exe of exec'd commands: \(log)")
        h.urun(["rm", "watch"], root: root)
    }

    @Test func execGetsTheContainersPolicy() {
        let root = h.freshRoot()
        #expect(
            h.urun(
                ["run", "-d", "--name", "p", "--cap-drop", "NET_RAW", "-v", "\(escapeProbe!):/probe:ro", h.image(),
                 "sleep", "30"], root: root
            ).status == 0)
        let exec = Self.parse(h.urun(["exec", "p", "/probe", "caps", "seccomp", "raw_socket", "mount"], root: root).stdout)
        #expect(exec["caps"] == "00000000a80405fb", "\(exec)")
        #expect(exec["seccomp"] == "2")
        #expect(exec["raw_socket"] == "EPERM")
        #expect(exec["mount"] == "EPERM")
        h.urun(["rm", "-f", "p"], root: root)

        // A kept container keeps its policy across a restart.
        #expect(h.urun(["create", "--name", "k", "--privileged", "-v", "\(escapeProbe!):/probe:ro", h.image(), "/probe", "seccomp", "mount"], root: root).status == 0)
        let first = Self.parse(h.urun(["start", "-a", "k"], root: root).stdout)
        #expect(first["seccomp"] == "0" && first["mount"] == "ok", "\(first)")
        h.urun(["rm", "k"], root: root)
    }

    @Test func workdirResolvesInsideTheImage() throws {
        // Symlinks in the image, absolute and relative, that point at a host
        // directory: -w and -v must follow them inside the container only.
        let base = h.freshRoot()
        let host = base + "/host-side"
        let image = base + "/evil.tar"
        let made = h.runAsUser([
            "sh", "-c",
            "mkdir -p \(base)/tree \(host) && tar -C \(base)/tree -xf \(h.image()) && ln -s \(host) \(base)/tree/abs && ln -s ../../../../../../../..\(host) \(base)/tree/rel && tar -C \(base)/tree -cf \(image) .",
        ])
        #expect(made.status == 0, "\(made)")
        let result = h.urun(["-w", "/abs/work", "-v", "\(base)/tree/etc:/rel/etc:ro", image, "sh", "-c", "pwd -P; ls /rel/etc/passwd"])
        #expect(result.status == 0, "\(result)")
        // Inside, the symlinks lead to a copy of the host path in the container's own tree.
        #expect(result.lines == [host + "/work", "/rel/etc/passwd"], "\(result)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: host).isEmpty, "nothing was created on the host")
    }
}

/// What a hostile container leaves in its own files cannot hang urun or
/// make it read the host's files.
@Suite(harnessAvailable) struct HostileContainerTests {
    let h = Harness.shared

    @Test func aFIFOAsEtcPasswdDoesNotHangExec() {
        let r = h.freshRoot()
        let run = h.urun(["run", "-d", "--network", "none", "--name", "fifo", h.image(), "sh", "-c", "rm -f /etc/passwd /etc/group && mkfifo /etc/passwd /etc/group && exec sleep 6061"], root: r)
        #expect(run.status == 0, "\(run)")
        #expect(waitFor { h.urun(["exec", "fifo", "test", "-p", "/etc/passwd"], root: r).status == 0 })
        let started = Date()
        // (echo, not id: busybox's id reads /etc/passwd itself.)
        let exec = h.urun(["exec", "fifo", "echo", "in"], root: r, timeout: 20)
        #expect(exec.text == "in", "\(exec)")
        #expect(Date().timeIntervalSince(started) < 10, "a FIFO is not opened for reading")
        #expect(h.urun(["rm", "-f", "fifo"], root: r).status == 0)
    }

    /// With --cap-add SYS_ADMIN a container can swap its /etc/hosts for a
    /// symlink to a host path; a container joining its network copies the
    /// file read inside that container's root, never the host's.
    @Test func aJoinedContainersSymlinksResolveInsideIt() {
        let r = h.freshRoot()
        let secret = r + "-secret"
        Harness.sh("echo host-secret > \(secret) && chown \(h.uid) \(secret) && chmod 600 \(secret)")
        defer { unlink(secret) }
        let script = "umount /etc/hosts && rm -f /etc/hosts && ln -s \(secret) /etc/hosts && touch /ready && exec sleep 6062"
        #expect(h.urun(["run", "-d", "--cap-add", "SYS_ADMIN", "--network", "none", "--name", "evil", h.image(), "sh", "-c", script], root: r).status == 0)
        #expect(waitFor { h.urun(["exec", "evil", "test", "-f", "/ready"], root: r).status == 0 })
        let joined = h.urun(["run", "--network", "container:evil", h.image(), "cat", "/etc/hosts"], root: r)
        #expect(!joined.stdout.contains("host-secret"), "the host's file was read: \(joined)")
        #expect(h.urun(["rm", "-f", "evil"], root: r).status == 0)
    }
}
