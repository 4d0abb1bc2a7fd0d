import CUrunSyscalls
import Glibc
import UrunCgroups
import UrunKernel
import UrunNetwork
import UrunUserNS

/// `urun doctor`: what this host and this user allow, one check per line,
/// with the exact fix for each failure. The trials are real (a user
/// namespace, an overlay mount with a whiteout in it, each in a throwaway
/// child), so a check cannot pass where a container would fail.
public enum Doctor {
    public enum Status: String, Sendable {
        /// Works.
        case ok
        /// Works, with less: limits, subordinate ids or a network are unavailable.
        case warn
        /// urun cannot run containers until this is fixed.
        case fail

        public var mark: String {
            switch self {
            case .ok: return "✓"
            case .warn: return "!"
            case .fail: return "✗"
            }
        }
    }

    public struct Check: Sendable {
        public let name: String
        public let status: Status
        /// What was found, in a phrase.
        public let found: String
        /// The command or change that fixes it, for warn and fail.
        public let fix: String?

        init(_ name: String, _ status: Status, _ found: String, fix: String? = nil) {
            self.name = name
            self.status = status
            self.found = found
            self.fix = fix
        }
    }

    /// Every check, in the order a container needs them.
    public static func checks(paths: UrunPaths) -> [Check] {
        let userNamespace = userNamespaceTrial()
        return [
            userNamespaceSettings(), userNamespace, overlayTrial(paths: paths, userNamespaceWorks: userNamespace.status != .fail),
            kernelVersion(), subordinateIDs(), idMapHelpers(), cgroups(), systemdUserManager(), network(),
        ] + directories(paths)
    }

    /// Whether urun can run containers here: no check failed.
    public static func canRun(_ checks: [Check]) -> Bool { !checks.contains { $0.status == .fail } }

    public static func text(_ checks: [Check]) -> String {
        let width = (checks.map(\.name.count).max() ?? 0) + 2
        var text = ""
        for check in checks {
            text += "\(check.status.mark) \(check.name)" + String(repeating: " ", count: width - check.name.count) + check.found + "\n"
            if let fix = check.fix, check.status != .ok {
                text += "    fix: \(fix)\n"
            }
        }
        text += canRun(checks)
            ? "urun can run containers here" + (checks.contains { $0.status == .warn } ? " (! marks what is missing)" : "") + ".\n"
            : "urun cannot run containers here until each ✗ is fixed.\n"
        return text
    }

    public static func json(_ checks: [Check]) -> JSON {
        .object([
            ("canRun", .bool(canRun(checks))),
            ("checks", .array(checks.map { check in
                var object = JSON.object([("check", .string(check.name)), ("status", .string(check.status.rawValue)), ("found", .string(check.found))])
                if let fix = check.fix { object["fix"] = .string(fix) }
                return object
            })),
        ])
    }

    // MARK: user namespaces

    static func userNamespaceSettings() -> Check {
        let name = "user namespace settings"
        var found: [String] = []
        let clone = Hint.readSysctl("kernel/unprivileged_userns_clone")
        let maximum = Hint.readSysctl("user/max_user_namespaces")
        let apparmor = Hint.readSysctl("kernel/apparmor_restrict_unprivileged_userns")
        if let clone { found.append("kernel.unprivileged_userns_clone=\(clone)") }
        if let maximum { found.append("user.max_user_namespaces=\(maximum)") }
        if let apparmor { found.append("kernel.apparmor_restrict_unprivileged_userns=\(apparmor)") }
        let summary = found.joined(separator: ", ")
        if clone == "0" && getuid() != 0 {
            return Check(name, .fail, summary, fix: "sudo sysctl -w kernel.unprivileged_userns_clone=1 (to keep it: echo kernel.unprivileged_userns_clone=1 | sudo tee /etc/sysctl.d/90-urun.conf)")
        }
        if maximum == "0" {
            return Check(name, .fail, summary, fix: "sudo sysctl -w user.max_user_namespaces=15000 (to keep it: echo user.max_user_namespaces=15000 | sudo tee /etc/sysctl.d/90-urun.conf)")
        }
        if apparmor == "1" && getuid() != 0 {
            return Check(name, .fail, summary + " (AppArmor refuses user namespaces to unconfined programs)",
                         fix: "give urun an AppArmor profile that allows them: printf 'abi <abi/4.0>,\\ninclude <tunables/global>\\nprofile urun \(executablePath() ?? "/usr/local/bin/urun") flags=(unconfined) {\\n  userns,\\n}\\n' | sudo tee /etc/apparmor.d/urun && sudo apparmor_parser -r /etc/apparmor.d/urun")
        }
        return Check(name, .ok, summary.isEmpty ? "no sysctl restricts them" : summary)
    }

    /// A real user namespace with a one-line map, in a throwaway child.
    static func userNamespaceTrial() -> Check {
        let name = "user namespace trial"
        do throws(UrunError) {
            try runInUserNamespace(.single(hostUID: getuid(), hostGID: getgid(), uid: 0, gid: 0)) {}
            return Check(name, .ok, "created one, mapped uid \(getuid()) to root in it")
        } catch {
            return Check(name, .fail, message(error), fix: Hint.userNamespaceBlocker())
        }
    }

    /// An overlay with `userxattr` mounted inside a user namespace on the
    /// cache's file system, and a file of its lower layer deleted through it
    /// (a whiteout, which unprivileged overlayfs can make since Linux 5.8).
    static func overlayTrial(paths: UrunPaths, userNamespaceWorks: Bool) -> Check {
        let name = "overlayfs in a user namespace"
        guard userNamespaceWorks else { return Check(name, .fail, "not tried: no user namespace", fix: "fix the user namespace first") }
        let kernelFix = KernelVersion.running.flatMap { $0 < KernelVersion(5, 11) ? "overlayfs in a user namespace needs Linux 5.11 or newer; this is \($0)" : nil }
        // On the cache's file system, which decides; without creating the cache.
        let base = nearestExisting(paths.cache)
        let trial: String
        do throws(UrunError) {
            trial = try makeTemporaryDirectory(in: base, prefix: ".urun-doctor-")
        } catch {
            return Check(name, .fail, "cannot create a directory in \(base): \(error)", fix: "set URUN_ROOT to a directory you own")
        }
        defer { try? removeTreeAsOwner(trial) }
        do throws(UrunError) {
            for directory in ["lower", "upper", "work", "merged"] { try makeDirectories(trial + "/" + directory) }
            try writeFileAtomically(trial + "/lower/file", "x\n")
            try runInUserNamespace(.single(hostUID: getuid(), hostGID: getgid(), uid: 0, gid: 0), also: [.mount]) { () throws(UrunError) in
                let options = "lowerdir=\(trial)/lower,upperdir=\(trial)/upper,workdir=\(trial)/work,userxattr"
                try sys(.mountOverlay, path: trial + "/merged") { mount("overlay", trial + "/merged", "overlay", 0, options) }
                try sys(.unpackImage, path: trial + "/merged/file") { unlink(trial + "/merged/file") }
            }
            guard let whiteout = fileStatus(trial + "/upper/file"), whiteout.st_mode & S_IFMT == S_IFCHR else {
                return Check(name, .fail, "mounted, but deleting a lower file left no whiteout", fix: kernelFix ?? "a kernel with unprivileged overlayfs whiteouts (5.8 or newer)")
            }
            return Check(name, .ok, "mounted with userxattr on \(fileSystemType(base)), whiteouts work")
        } catch {
            return Check(name, .fail, message(error), fix: kernelFix ?? "put urun's directories on a file system with user xattrs (ext4, xfs, btrfs; tmpfs from Linux 6.6): URUN_ROOT=/path urun ...")
        }
    }

    // MARK: kernel

    static func kernelVersion() -> Check {
        let name = "kernel"
        guard let running = KernelVersion.running else { return Check(name, .warn, "unknown version") }
        let gates: [(KernelVersion, String)] = [
            (KernelVersion(5, 6), "time namespaces"),
            (KernelVersion(5, 7), "clone3 CLONE_INTO_CGROUP (exec straight into a container's cgroup)"),
            (KernelVersion(5, 8), "unprivileged overlayfs whiteouts"),
            (KernelVersion(5, 11), "overlayfs in a user namespace"),
        ]
        let missing = gates.filter { running < $0.0 }.map { "\($0.1) needs \($0.0)" }
        guard missing.isEmpty else {
            return Check(name, running < KernelVersion(5, 11) ? .fail : .warn, "Linux \(running): " + missing.joined(separator: "; "),
                         fix: "a newer kernel (urun needs 5.11 for overlayfs in a user namespace)")
        }
        return Check(name, .ok, "Linux \(running): overlayfs in user namespaces (5.11), whiteouts (5.8), CLONE_INTO_CGROUP (5.7), time namespaces (5.6)")
    }

    // MARK: ids

    static func subordinateIDs() -> Check {
        let name = "subordinate ids"
        if getuid() == 0 { return Check(name, .ok, "root maps any id") }
        guard let ids = SubordinateIDs.ofCaller() else {
            let user = SubordinateIDs.callerName() ?? String(getuid())
            return Check(name, .warn, "none for \(user) in /etc/subuid and /etc/subgid: containers map only your own id (files of other owners in images become yours)",
                         fix: "sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 \(user)")
        }
        return Check(name, .ok, "uids \(describe(ids.uids)), gids \(describe(ids.gids))")
    }

    private static func describe(_ ranges: [SubordinateIDs.Range]) -> String {
        ranges.map { "\($0.start)-\($0.start + $0.count - 1)" }.joined(separator: ", ")
    }

    static func idMapHelpers() -> Check {
        let name = "newuidmap, newgidmap"
        if getuid() == 0 { return Check(name, .ok, "not needed as root") }
        var found: [String] = []
        for helper in ["newuidmap", "newgidmap"] {
            guard let path = SubordinateIDs.helper(helper) else {
                return Check(name, .warn, "\(helper) is not installed: subordinate ids cannot be mapped", fix: "sudo apt-get install uidmap")
            }
            guard let st = fileStatus(path), st.st_mode & S_ISUID != 0 && st.st_uid == 0 || hasFileCapabilities(path) else {
                return Check(name, .warn, "\(path) is neither setuid root nor has file capabilities", fix: "sudo chmod u+s \(path) (or: sudo setcap cap_setuid+ep \(path))")
            }
            found.append(path)
        }
        return Check(name, .ok, found.joined(separator: ", ") + " (setuid or with file capabilities)")
    }

    private static func hasFileCapabilities(_ path: String) -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { closeQuietly(fd) }
        var buffer = [UInt8](repeating: 0, count: 64)
        return urun_fgetxattr(fd, "security.capability", &buffer, buffer.count) > 0
    }

    // MARK: cgroups and systemd

    static func cgroups() -> Check {
        let name = "cgroups"
        guard let hierarchy = CgroupHierarchy.discover() else {
            return Check(name, .warn, "no cgroup v2 hierarchy: --memory, --cpus, --pids-limit are unavailable; pause needs cgroup.freeze",
                         fix: "boot with systemd.unified_cgroup_hierarchy=1")
        }
        let layout = hierarchy.layout == .unified ? "cgroup v2 at \(hierarchy.mountPoint)" : "hybrid (v1 controllers, cgroup2 at \(hierarchy.mountPoint))"
        switch ContainerCgroup.delegated() {
        case .failure:
            return Check(name, .warn, "\(layout); your cgroup \(hierarchy.ownPath) is not delegated to you: limits are refused, pause and kill work per process",
                         fix: "run in a delegated scope: systemd-run --user --scope -p Delegate=yes urun ...; or for every user: printf '[Service]\\nDelegate=cpu cpuset io memory pids\\n' | sudo tee /etc/systemd/system/user@.service.d/delegate.conf && sudo systemctl daemon-reload")
        case .success(let cgroup):
            let controllers = (try? cgroup.controllers()) ?? []
            let wanted = ["cpu", "cpuset", "io", "memory", "pids"]
            let missing = wanted.filter { !controllers.contains($0) }
            let have = "\(layout); \(cgroup.path) is delegated to you, controllers: \(controllers.sorted().joined(separator: " "))"
            guard missing.isEmpty else {
                return Check(name, .warn, have + "; missing: \(missing.joined(separator: " ")) (the limits that need them are refused)",
                             fix: hierarchy.layout == .hybrid
                                 ? "a pure cgroup v2 host (boot with systemd.unified_cgroup_hierarchy=1): on this hybrid layout the controllers belong to v1"
                                 : "printf '[Service]\\nDelegate=\(wanted.joined(separator: " "))\\n' | sudo tee /etc/systemd/system/user@.service.d/delegate.conf && sudo systemctl daemon-reload")
            }
            return Check(name, .ok, have)
        }
    }

    static func systemdUserManager() -> Check {
        let name = "systemd user manager"
        let uid = getuid()
        let user = SubordinateIDs.callerName() ?? String(uid)
        let lingering = access("/var/lib/systemd/linger/\(user)", F_OK) == 0
        if access("/run/user/\(uid)/systemd/private", F_OK) == 0 {
            return Check(name, .ok, "running" + (lingering ? ", lingering (containers outlive your sessions)" : ", no lingering (containers end with your last session)"))
        }
        if uid == 0 { return Check(name, .ok, "not needed as root") }
        return Check(name, .warn, "not reachable (no login session: su, sudo, cron?): urun cannot ask it for a delegated cgroup",
                     fix: "log in for real (ssh, machinectl shell \(user)@), or keep one running: sudo loginctl enable-linger \(user)")
    }

    // MARK: network

    static func network() -> Check {
        let name = "network helper"
        switch NetworkHelper.choose(from: NetworkHelper.Kind.preferred(publishing: false)) {
        case .success(let kind):
            let publishing = NetworkHelper.Kind.preferred(publishing: true).first { $0.executable != nil } ?? kind
            let uses = publishing == kind ? "\(kind.rawValue) at \(kind.executable ?? "?")"
                : "\(kind.rawValue) at \(kind.executable ?? "?"), \(publishing.rawValue) at \(publishing.executable ?? "?") with -p"
            return Check(name, .ok, "\(uses), /dev/net/tun usable")
        case .failure(let error):
            let installed = NetworkHelper.Kind.allCases.contains { $0.executable != nil }
            let fix = installed ? "sudo chmod 0666 /dev/net/tun (stock Debian and Ubuntu have it so)" : "sudo apt-get install passt"
            return Check(name, .warn, "\(error): containers get loopback only", fix: fix)
        }
    }

    // MARK: directories

    static func directories(_ paths: UrunPaths) -> [Check] {
        [("cache directory", paths.cache), ("data directory", paths.data), ("runtime directory", paths.runtime)].map { name, path in
            // The nearest existing ancestor decides whether urun can create it.
            let existing = nearestExisting(path)
            guard access(existing, W_OK | X_OK) == 0 else {
                return Check(name, .fail, "\(path): \(existing) is not writable for you", fix: "set URUN_ROOT to a directory you own")
            }
            var info = statvfs()
            let free = statvfs(existing, &info) == 0 ? UInt64(info.f_bavail) * UInt64(info.f_frsize) : 0
            let found = "\(path) (\(fileSystemType(existing)), \(humanSize(free, binary: true)) free)"
            if name == "runtime directory" && environment("XDG_RUNTIME_DIR") == nil && environment("URUN_ROOT") == nil {
                return Check(name, .ok, found + "; XDG_RUNTIME_DIR is unset (su?), so this fallback is used")
            }
            guard free >= 1 << 30 || name == "runtime directory" else {
                return Check(name, .warn, found + ": less than 1 GiB free", fix: "free some space, or move urun's directories: URUN_ROOT=/bigger/disk")
            }
            return Check(name, .ok, found)
        }
    }

    /// An error's text without the pointer to this very command.
    private static func message(_ error: UrunError) -> String {
        var text = "\(error)"
        if text.hasSuffix(Hint.seeDoctor) { text.removeLast(Hint.seeDoctor.count) }
        return text
    }

    /// `path`, or its nearest ancestor that exists.
    static func nearestExisting(_ path: String) -> String {
        var existing = path
        while access(existing, F_OK) != 0 && existing != "/" { existing = parentDirectory(of: existing) }
        return existing
    }

    /// The name of the file system `path` is on.
    static func fileSystemType(_ path: String) -> String {
        let type = urun_fs_type(path)
        guard type != -1 else { return "unknown file system" }
        let names: [Int: String] = [
            0xEF53: "ext4", 0x5846_5342: "xfs", 0x9123_683E: "btrfs", 0x0102_1994: "tmpfs", 0x794C_7630: "overlayfs",
            0x2FC1_2FC1: "zfs", 0x6969: "nfs", 0xFF53_4D42: "cifs", 0x6573_5546: "fuse", 0x5346_544E: "ntfs",
        ]
        let magic = type & 0xFFFF_FFFF
        return names[magic] ?? "file system 0x" + String(magic, radix: 16)
    }

}
