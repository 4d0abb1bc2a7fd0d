import Glibc
import UrunKernel

/// Where the unified cgroup hierarchy is mounted and where urun sits in it,
/// read from /proc/self/mountinfo and /proc/self/cgroup; never assumed.
public struct CgroupHierarchy: Equatable, Sendable {
    public enum Layout: String, Sendable {
        /// Only cgroup2, at /sys/fs/cgroup.
        case unified
        /// v1 controllers plus a cgroup2 (usually at /sys/fs/cgroup/unified).
        case hybrid
    }

    /// Mount point of the cgroup2 file system.
    public let mountPoint: String
    public let layout: Layout
    /// urun's own cgroup, relative to the root of the hierarchy ("/user.slice/...").
    public let ownPath: String

    public init(mountPoint: String, layout: Layout, ownPath: String) {
        self.mountPoint = mountPoint
        self.layout = layout
        self.ownPath = ownPath
    }

    public var own: Cgroup { Cgroup(path: ownPath == "/" ? mountPoint : mountPoint + ownPath) }

    /// nil when no cgroup2 is mounted (a pure v1 host).
    public static func parse(mountinfo: String, procSelfCgroup: String) -> CgroupHierarchy? {
        let mounts = MountInfo.visible(MountInfo.parse(mountinfo))
        // The host's own mount: in a cgroup namespace of its own a mount's root
        // is not "/", and what counts is the hierarchy seen from here.
        guard let unified = mounts.first(where: { $0.fsType == "cgroup2" }) else { return nil }
        let layout: Layout = mounts.contains { $0.fsType == "cgroup" } ? .hybrid : .unified
        guard
            let line = procSelfCgroup.split(separator: "\n").first(where: { $0.hasPrefix("0::") })
        else { return nil }
        var own = String(line.dropFirst(3))
        // A path that the mount's root hides ("/.." from another namespace) cannot be used.
        if own.hasPrefix("/..") { return nil }
        if unified.root != "/" && own.hasPrefix(unified.root) { own = String(own.dropFirst(unified.root.count)) }
        if own.isEmpty { own = "/" }
        return CgroupHierarchy(mountPoint: unified.mountPoint, layout: layout, ownPath: own)
    }

    public static func discover() -> CgroupHierarchy? {
        guard let mountinfo = try? readText("/proc/self/mountinfo"),
            let cgroup = try? readText("/proc/self/cgroup")
        else { return nil }
        return parse(mountinfo: mountinfo, procSelfCgroup: cgroup)
    }
}

extension Cgroup {
    /// Delegated to `uid`: it owns the directory and may write the files a
    /// delegatee needs (systemd's Delegate=yes chowns exactly these).
    public func isDelegated(to uid: uid_t) -> Bool {
        if uid == 0 { return access(path + "/cgroup.procs", W_OK) == 0 }
        guard let st = fileStatus(path), st.st_uid == uid else { return false }
        return ["cgroup.procs", "cgroup.subtree_control", "cgroup.threads"].allSatisfy {
            access(path + "/" + $0, W_OK) == 0
        }
    }
}
