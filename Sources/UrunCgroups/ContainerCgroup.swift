import Glibc
import UrunKernel

/// Places a container in a cgroup of its own, `<delegated>/urun-<id>`, below
/// the subtree delegated to the user, following the cgroup v2 delegation
/// rules: urun writes only its own cgroups' files (never the delegated top's
/// limits), and keeps no process in a cgroup that hands controllers to its
/// children, moving them to a leaf first.
///
///     <delegated>/                    cgroup.subtree_control: +memory +cpu ...
///         urun.supervisor/            urun itself, and what else was in <delegated>
///         urun-<id>/                  one container: memory.max, cpu.max, pids.max ...
///
/// Every limit asked for is enforced, or the container does not start: a
/// controller that is not delegated is an error that names the fix.
public struct ContainerCgroup: Sendable {
    /// The leaf urun moves itself (and anything else it finds) to.
    public static let supervisorLeaf = "urun.supervisor"
    public static let prefix = "urun-"

    public let cgroup: Cgroup
    public let limits: ResourceLimits

    /// The cgroup below which urun may create containers' cgroups, or why there is none.
    public static func delegated(uid: uid_t = getuid()) -> Result<Cgroup, UrunError> {
        guard let hierarchy = CgroupHierarchy.discover() else {
            return .failure(.invalid("this host has no cgroup v2 hierarchy mounted"))
        }
        var own = hierarchy.own
        // A urun before us moved this shell to its leaf: the delegated cgroup is its parent.
        if own.name == supervisorLeaf { own = own.parent }
        guard own.isDelegated(to: uid) else {
            return .failure(.invalid("your cgroup \(own) is not delegated to you"))
        }
        return .success(own)
    }

    /// Makes the container's cgroup and writes its limits. Returns nil when
    /// no limit was asked for and no delegated cgroup exists: urun then runs
    /// in whatever cgroup it has and says nothing. `abandoned` tells whether
    /// a stale `urun-<id>` cgroup belongs to no live container.
    public static func create(
        id: String, limits: ResourceLimits, abandoned: (String) -> Bool
    ) throws(UrunError) -> ContainerCgroup? {
        let delegated: Cgroup
        switch Self.delegated() {
        case .success(let cgroup): delegated = cgroup
        case .failure(let reason):
            guard let first = limits.settings.first else { return nil }
            throw notDelegated(first, because: reason)
        }
        let available = try delegated.controllers()
        if let missing = limits.settings.first(where: { !available.contains($0.controller) }) {
            throw notDelegated(missing, because: .invalid("\(delegated) offers only: \(available.sorted().joined(separator: " "))"))
        }
        let enabled = try delegated.subtreeControl()
        let needed = limits.controllers.filter { !enabled.contains($0) }
        if !needed.isEmpty { try enable(needed, in: delegated) }
        removeStale(in: delegated, abandoned: abandoned)

        let cgroup = delegated.child(prefix + id)
        // This container's own cgroup, left by a supervisor that was killed:
        // the caller holds the container, so whatever is still in it is an
        // orphan of an earlier run, and goes (remove() kills what is left).
        if fileStatus(cgroup.path) != nil { try cgroup.remove() }
        try cgroup.create()
        do throws(UrunError) {
            for setting in limits.settings {
                try cgroup.write(setting.file, setting.value, step: .writeLimit)
            }
        } catch {
            try? cgroup.remove()
            throw error
        }
        return ContainerCgroup(cgroup: cgroup, limits: limits)
    }

    /// Enables `controllers` for the children of `delegated`. The kernel
    /// refuses (EBUSY) while a process sits in `delegated` itself, so urun
    /// first moves itself, then everything else there, to the supervisor leaf.
    static func enable(_ controllers: [String], in delegated: Cgroup) throws(UrunError) {
        let leaf = delegated.child(supervisorLeaf)
        if mkdir(leaf.path, 0o755) != 0 && errno != EEXIST { throw .kernel(.createCgroup, path: leaf.path, .current) }
        try leaf.add(pid: getpid())
        for controller in controllers {
            do throws(UrunError) {
                try delegated.write("cgroup.subtree_control", "+" + controller, step: .enableControllers)
            } catch {
                guard case .kernel(_, _, .resourceBusy) = error else { throw error }
                for pid in (try? delegated.processes()) ?? [] { try? leaf.add(pid: pid) }
                do throws(UrunError) {
                    try delegated.write("cgroup.subtree_control", "+" + controller, step: .enableControllers)
                } catch {
                    throw .invalid(
                        "cannot enable the \(controller) controller in \(delegated): processes that urun may not move are still in it (did su or runuser start this shell?); start urun from a shell that owns its cgroup, e.g. systemd-run --user --scope -p Delegate=yes --shell"
                    )
                }
            }
        }
    }

    /// Removes empty `urun-<id>` cgroups of containers that are gone (their
    /// urun was killed before it could clean up).
    static func removeStale(in delegated: Cgroup, abandoned: (String) -> Bool) {
        guard let names = try? directoryEntries(delegated.path) else { return }
        for name in names where name.hasPrefix(prefix) {
            let id = String(name.dropFirst(prefix.count))
            let cgroup = delegated.child(name)
            if abandoned(id) && !cgroup.isPopulated { _ = rmdir(cgroup.path) }
        }
    }

    /// The error for a limit the host cannot enforce for this user.
    public static func notDelegated(_ setting: ResourceLimits.Setting, because reason: UrunError) -> UrunError {
        .invalid(
            "\(setting.flag) needs the \(setting.controller) controller, which is not delegated to you here (\(reason)); run inside \"systemd-run --user --scope -p Delegate=yes ...\" or ask the admin for /etc/systemd/system/user@.service.d/delegate.conf" + Hint.seeDoctor
        )
    }

    /// A message when the OOM killer ended the container, else nil.
    public func oomMessage() -> String? {
        guard cgroup.oomKills > 0 else { return nil }
        let limit = limits.memoryMax.map { " of \(Self.size($0))" } ?? ""
        return "the container was killed by the OOM killer: it reached its memory limit\(limit)"
    }

    static func size(_ bytes: UInt64) -> String {
        if bytes >= 1 << 30 && bytes % (1 << 30) == 0 { return "\(bytes >> 30) GiB" }
        if bytes >= 1 << 20 { return "\(bytes >> 20) MiB" }
        return "\(bytes >> 10) KiB"
    }
}
