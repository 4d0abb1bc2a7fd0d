import Glibc
import UrunKernel

/// The user a container's command runs as, resolved in the image's own
/// /etc/passwd and /etc/group (docker's `--user` semantics).
public struct ContainerUser: Equatable, Sendable {
    public let uid: UInt32
    public let gid: UInt32
    public let home: String
    /// Supplementary groups as initgroups(3) sets them: the primary group,
    /// then those /etc/group lists the user in (with subordinate ids only).
    public var groups: [UInt32] = []
    /// --group-add keep-groups: the caller's own supplementary groups stay
    /// (unmapped ones show as the overflow gid), as crun's keep_original_groups.
    public var keepsHostGroups = false

    public static let root = ContainerUser(uid: 0, gid: 0, home: "/root")

    /// Resolves `spec` ("1000", "1000:100", "app", "app:staff") against the
    /// image's passwd and group files, which `readFile` reads from the image
    /// (never following a symlink out of it).
    public static func resolve(_ spec: String?, readFile: (String) -> String?) throws(UrunError) -> ContainerUser {
        let passwd = readFile("/etc/passwd").map(PasswdEntry.parse) ?? []
        let groupFile = readFile("/etc/group").map(GroupEntry.parse) ?? []
        guard let spec, !spec.isEmpty else {
            let entry = passwd.first(where: { $0.uid == 0 })
            return ContainerUser(
                uid: 0, gid: 0, home: entry?.home ?? "/root", groups: groups(of: entry?.name ?? "root", gid: 0, in: groupFile))
        }
        let parts = spec.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let entry: PasswdEntry?
        let uid: UInt32
        if let number = UInt32(parts[0]) {
            uid = number
            entry = passwd.first { $0.uid == number }
        } else {
            guard let found = passwd.first(where: { $0.name == parts[0] }) else {
                throw .invalid("unable to find user \(parts[0]): no matching entries in the image's /etc/passwd")
            }
            entry = found
            uid = found.uid
        }
        var gid = entry?.gid ?? 0
        if parts.count == 2 {
            if let number = UInt32(parts[1]) {
                gid = number
            } else {
                guard let group = groupFile.first(where: { $0.name == parts[1] }) else {
                    throw .invalid("unable to find group \(parts[1]): no matching entries in the image's /etc/group")
                }
                gid = group.gid
            }
        }
        return ContainerUser(
            uid: uid, gid: gid, home: entry?.home ?? "/", groups: groups(of: entry?.name, gid: gid, in: groupFile))
    }

    /// With --group-add's groups (gids, or names from the image's /etc/group),
    /// or `keep-groups` alone.
    public func adding(groups added: [String], readFile: (String) -> String?) throws(UrunError) -> ContainerUser {
        var user = self
        if added == ["keep-groups"] {
            user.keepsHostGroups = true
            return user
        }
        let groupFile = added.contains { UInt32($0) == nil } ? readFile("/etc/group").map(GroupEntry.parse) ?? [] : []
        for name in added {
            guard name != "keep-groups" else { throw .usage("--group-add keep-groups cannot be combined with other groups") }
            guard let gid = UInt32(name) ?? groupFile.first(where: { $0.name == name })?.gid else {
                throw .invalid("--group-add \(printable(name)): no such group in the image's /etc/group (give a number, or a name it lists)")
            }
            if !user.groups.contains(gid) { user.groups.append(gid) }
        }
        return user
    }

    /// Resolves `spec` in the root directory `rootfs` (a running container's "/").
    public static func resolve(_ spec: String?, rootfs: String) throws(UrunError) -> ContainerUser {
        try resolve(spec) { readInImage(rootfs, $0) }
    }

    static func groups(of name: String?, gid: UInt32, in entries: [GroupEntry]) -> [UInt32] {
        guard let name else { return [gid] }
        return [gid] + entries.filter { $0.members.contains(name) && $0.gid != gid }.map(\.gid)
    }

    /// A small file of the image, read through an in-root resolution of its
    /// directory (and not through /proc/self, which `urun exec` cannot use
    /// once it has entered the container's mount namespace).
    static func readInImage(_ rootfs: String, _ path: String) -> String? {
        let root = open(rootfs, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard root >= 0 else { return nil }
        defer { closeQuietly(root) }
        guard let directory = try? openInRoot(root, parentDirectory(of: path)) else { return nil }
        defer { closeQuietly(directory) }
        return try? readText(baseName(of: path), at: directory)
    }
}
