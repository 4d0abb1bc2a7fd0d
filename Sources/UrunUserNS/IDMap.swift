import Glibc
import UrunKernel

/// One line of uid_map or gid_map: `count` ids from `inside` map to `outside`.
public struct IDRange: Equatable, Sendable {
    public let inside: UInt32
    public let outside: UInt32
    public let count: UInt32

    public init(inside: UInt32, outside: UInt32, count: UInt32) {
        self.inside = inside
        self.outside = outside
        self.count = count
    }
}

/// The id mapping of a container's user namespace (user_namespaces(7)).
///
/// An unprivileged user may write a map with exactly one line that maps its
/// own id; anything wider (subordinate ranges from /etc/subuid) needs the
/// setuid helpers newuidmap/newgidmap. `write(for:)` picks the way.
public struct IDMap: Equatable, Sendable {
    public var uids: [IDRange]
    public var gids: [IDRange]

    public init(uids: [IDRange], gids: [IDRange]) {
        self.uids = uids
        self.gids = gids
    }

    /// The caller's own uid and gid as `uid`/`gid` inside (root by default).
    public static func single(hostUID: UInt32, hostGID: UInt32, uid: UInt32 = 0, gid: UInt32 = 0) -> IDMap {
        IDMap(
            uids: [IDRange(inside: uid, outside: hostUID, count: 1)],
            gids: [IDRange(inside: gid, outside: hostGID, count: 1)])
    }

    /// The kernel's text format for uid_map/gid_map.
    public static func text(_ ranges: [IDRange]) -> String {
        ranges.map { "\($0.inside) \($0.outside) \($0.count)\n" }.joined()
    }

    /// True when the map names only the caller's own ids, which it may write itself.
    public func isWritableByCaller(uid: UInt32, gid: UInt32) -> Bool {
        uids.count == 1 && uids[0].outside == uid && uids[0].count == 1
            && gids.count == 1 && gids[0].outside == gid && gids[0].count == 1
    }

    /// The host uid that `inside` maps to, if any.
    public func hostUID(for inside: UInt32) -> UInt32? { Self.host(inside, in: uids) }
    public func hostGID(for inside: UInt32) -> UInt32? { Self.host(inside, in: gids) }

    /// Whether the host's uid `id` has a name inside.
    public func mapsHostUID(_ id: UInt32) -> Bool { uids.contains { id >= $0.outside && id - $0.outside < $0.count } }
    public func mapsHostGID(_ id: UInt32) -> Bool { gids.contains { id >= $0.outside && id - $0.outside < $0.count } }

    static func host(_ inside: UInt32, in ranges: [IDRange]) -> UInt32? {
        for range in ranges where inside >= range.inside && inside - range.inside < range.count {
            return range.outside + (inside - range.inside)
        }
        return nil
    }

    /// Writes the maps of the process `pid`, which sits in a new user namespace
    /// and waits for us. A map of the caller's own ids (or any map, for real
    /// root) is written directly: setgroups "deny" first, which the kernel
    /// requires before an unprivileged gid_map. Subordinate ranges go through
    /// the setuid helpers newuidmap and newgidmap, run side by side; they
    /// leave setgroups allowed, so that su and apt can use groups inside.
    /// The helpers take milliseconds: the caller may work meanwhile, and
    /// learns that the maps are in place from `MapWriting.finish()`.
    public func startWriting(for pid: pid_t) throws(UrunError) -> MapWriting {
        let proc = "/proc/\(pid)"
        if getuid() == 0 || isWritableByCaller(uid: getuid(), gid: getgid()) {
            if gids.count == 1 && getuid() != 0 {
                try writeProcFile(proc + "/setgroups", "deny", step: .denySetgroups)
            }
            try writeProcFile(proc + "/uid_map", Self.text(uids), step: .writeUIDMap)
            try writeProcFile(proc + "/gid_map", Self.text(gids), step: .writeGIDMap)
            return MapWriting(helpers: [])
        }
        guard let newuidmap = SubordinateIDs.helper("newuidmap"), let newgidmap = SubordinateIDs.helper("newgidmap") else {
            throw .invalid("mapping subordinate ids needs newuidmap and newgidmap (Debian: apt-get install uidmap)")
        }
        func arguments(_ ranges: [IDRange]) -> [String] {
            ranges.flatMap { [String($0.inside), String($0.outside), String($0.count)] }
        }
        let uidHelper = try HelperProcess(.runNewuidmap, [newuidmap, String(pid)] + arguments(uids))
        do throws(UrunError) {
            let gidHelper = try HelperProcess(.runNewgidmap, [newgidmap, String(pid)] + arguments(gids))
            return MapWriting(helpers: [uidHelper, gidHelper])
        } catch {
            _ = uidHelper.wait()
            throw error
        }
    }

    /// Writes the maps and returns once they are in place.
    public func write(for pid: pid_t) throws(UrunError) {
        try startWriting(for: pid).finish()
    }

    private func writeProcFile(_ path: String, _ text: String, step: Step) throws(UrunError) {
        let shown = text.split(separator: "\n").joined(separator: "\\n")
        let fd = try sys(step, explain: "write \(path) \"\(shown)\"", path: path) {
            open(path, O_WRONLY | O_CLOEXEC)
        }
        defer { closeQuietly(fd) }
        // One write(2): the kernel accepts a map only in a single write.
        try writeAll(fd, text, step: step, path: path)
    }
}

/// Maps being written by helpers that still run.
public struct MapWriting {
    let helpers: [HelperProcess]

    /// Waits for every helper; the first failure, if any.
    public func finish() throws(UrunError) {
        let results = helpers.map { $0.wait() }
        for result in results { try result.get() }
    }
}
