import Glibc
import CUrunSyscalls

/// The namespaces a container gets (namespaces(7)), as clone(2) flags.
public struct Namespaces: OptionSet, Sendable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public static let user = Namespaces(rawValue: UInt64(URUN_CLONE_NEWUSER))
    public static let mount = Namespaces(rawValue: UInt64(URUN_CLONE_NEWNS))
    public static let pid = Namespaces(rawValue: UInt64(URUN_CLONE_NEWPID))
    public static let uts = Namespaces(rawValue: UInt64(URUN_CLONE_NEWUTS))
    public static let ipc = Namespaces(rawValue: UInt64(URUN_CLONE_NEWIPC))
    public static let network = Namespaces(rawValue: UInt64(URUN_CLONE_NEWNET))
    public static let cgroup = Namespaces(rawValue: UInt64(URUN_CLONE_NEWCGROUP))
    public static let time = Namespaces(rawValue: UInt64(URUN_CLONE_NEWTIME))

    /// Flag names as clone(2) spells them, for the narration.
    public var flagNames: String {
        let names: [(Namespaces, String)] = [
            (.user, "CLONE_NEWUSER"), (.mount, "CLONE_NEWNS"), (.pid, "CLONE_NEWPID"), (.uts, "CLONE_NEWUTS"),
            (.ipc, "CLONE_NEWIPC"), (.network, "CLONE_NEWNET"), (.cgroup, "CLONE_NEWCGROUP"), (.time, "CLONE_NEWTIME"),
        ]
        return names.filter { contains($0.0) }.map(\.1).joined(separator: "|")
    }

    /// The file under /proc/PID/ns/ of a single namespace.
    public var procName: String? {
        let names: [(Namespaces, String)] = [
            (.user, "user"), (.mount, "mnt"), (.pid, "pid"), (.uts, "uts"), (.ipc, "ipc"), (.network, "net"), (.cgroup, "cgroup"), (.time, "time"),
        ]
        return names.first { $0.0 == self }?.1
    }

    /// Whether the namespace file `fd` is the one this process is in already:
    /// setns(2) into it would change nothing, yet still demand privilege over
    /// it (a rootless pod "joining" the host's network namespace).
    public static func isCurrent(_ fd: CInt, flags: CInt) -> Bool {
        guard let name = Namespaces(rawValue: UInt64(flags)).procName else { return false }
        var theirs = stat()
        var mine = stat()
        return fstat(fd, &theirs) == 0 && stat("/proc/self/ns/" + name, &mine) == 0
            && theirs.st_ino == mine.st_ino && theirs.st_dev == mine.st_dev
    }
}
