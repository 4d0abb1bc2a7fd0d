import Glibc
import SystemPackage

/// What to do about a failed step: one table keyed by (step, errno), so every
/// error that has a known cause names it and the fix.
public enum Hint {
    /// Ends every message that `urun doctor` explains further.
    public static let seeDoctor = " (run 'urun doctor' for details)"

    public static func `for`(_ step: Step, _ errno: Errno) -> String? {
        guard let hint = knownCause(step, errno) else { return nil }
        return [.clone, .mountOverlay, .runNewuidmap, .runNewgidmap].contains(step) ? hint + seeDoctor : hint
    }

    private static func knownCause(_ step: Step, _ errno: Errno) -> String? {
        switch (step, errno) {
        case (.setRlimits, .notPermitted):
            return "a hard limit above your own needs privilege: ask for at most yours (ulimit -H -a shows them)"
        case (.clone, .noSpace):
            return "user.max_user_namespaces is exhausted or 0; raise it: sysctl -w user.max_user_namespaces=15000"
        case (.clone, .notPermitted), (.clone, .invalidArgument):
            return userNamespaceBlocker()
        case (.mountOverlay, .invalidArgument), (.mountOverlay, .notPermitted),
            (.mountOverlay, .operationNotSupportedByDevice):
            if let version = KernelVersion.running, version < KernelVersion(5, 11) {
                return "overlayfs inside a user namespace needs Linux 5.11 or newer; this is \(version)"
            }
            return "the cache or data directory's file system may not support user xattrs (overlayfs userxattr); move it with URUN_ROOT"
        case (.mountProc, .notPermitted), (.mountSysfs, .notPermitted):
            return "this host hides parts of /proc or /sys (inside another container?); a fresh instance needs a fully visible one"
        case (.dropPrivileges, .invalidArgument):
            return "that user or group id is not mapped in the container's user namespace (see /proc/self/uid_map inside)"
        case (.writeUIDMap, .notPermitted), (.writeGIDMap, .notPermitted):
            return "an unprivileged user may map only its own id"
        case (.unshareNamespaces, .noSpace), (.unshareCgroup, .noSpace), (.joinNamespaces, .noSpace):
            return "a namespace limit is reached (user.max_*_namespaces, see /proc/sys/user/); raise it with sysctl"
        case (.makeMountpoint, .noSpace), (.linkDevice, .noSpace):
            return "the file system holding the container's files is full"
        case (let step, .noSpace) where step.phase == .mounts || step.phase == .rootfs:
            // mount(2) says ENOSPC when the mount namespace holds fs.mount-max mounts.
            return "too many mounts: the mount namespace reached fs.mount-max (\(readSysctl("fs/mount-max") ?? "100000")); fewer volumes, or raise it with sysctl -w fs.mount-max=..."
        case (.writeLimit, .noSpace), (.createCgroup, .noSpace), (.moveToCgroup, .noSpace):
            return "the cgroup cannot take it (a controller's limit or cgroup.max.descendants is reached)"
        case (.writeUIDMap, .noSpace), (.writeGIDMap, .noSpace):
            return "the kernel takes at most 340 lines in an id map"
        case (_, .noSpace):
            return "the disk is full"
        default:
            return nil
        }
    }

    /// Names the sysctl or LSM setting that refuses unprivileged user namespaces here.
    public static func userNamespaceBlocker() -> String {
        if readSysctl("kernel/unprivileged_userns_clone") == "0" {
            return "unprivileged user namespaces are disabled: sysctl -w kernel.unprivileged_userns_clone=1"
        }
        if readSysctl("user/max_user_namespaces") == "0" {
            return "user namespaces are disabled: sysctl -w user.max_user_namespaces=15000"
        }
        if readSysctl("kernel/apparmor_restrict_unprivileged_userns") == "1" {
            return "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1); add an AppArmor profile for urun with 'userns,' or set the sysctl to 0"
        }
        return "user namespaces are refused here (a seccomp filter or LSM of the calling environment?)"
    }

    /// A sysctl's value by its /proc/sys path ("user/max_user_namespaces"), nil where the host has none.
    public static func readSysctl(_ name: String) -> String? {
        guard let text = try? readText("/proc/sys/" + name) else { return nil }
        return text.trimmingWhitespace()
    }
}

/// The running kernel's version, from uname(2).
public struct KernelVersion: Comparable, CustomStringConvertible, Sendable {
    public let major: Int
    public let minor: Int

    public init(_ major: Int, _ minor: Int) {
        self.major = major
        self.minor = minor
    }

    public static var running: KernelVersion? {
        var info = utsname()
        guard uname(&info) == 0 else { return nil }
        let release = withUnsafeBytes(of: &info.release) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        let parts = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        guard parts.count == 2 else { return nil }
        return KernelVersion(parts[0], parts[1])
    }

    public static func < (a: KernelVersion, b: KernelVersion) -> Bool {
        (a.major, a.minor) < (b.major, b.minor)
    }

    public var description: String { "\(major).\(minor)" }
}
