import Glibc
import UrunKernel

/// The ranges /etc/subuid and /etc/subgid grant a user (subuid(5)): lines
/// `name:start:count`, or `uid:start:count`.
public struct SubordinateIDs: Equatable, Sendable {
    public struct Range: Equatable, Sendable {
        public let start: UInt32
        public let count: UInt32
    }

    public let uids: [Range]
    public let gids: [Range]

    /// The ranges of the user `name`/`uid` in the two files' text; nil unless both grant some.
    public static func parse(subuid: String, subgid: String, name: String?, uid: UInt32) -> SubordinateIDs? {
        let uids = ranges(in: subuid, name: name, id: uid)
        let gids = ranges(in: subgid, name: name, id: uid)
        guard !uids.isEmpty, !gids.isEmpty else { return nil }
        return SubordinateIDs(uids: uids, gids: gids)
    }

    static func ranges(in text: String, name: String?, id: UInt32) -> [Range] {
        text.split(separator: "\n").compactMap { line in
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            guard f.count == 3, f[0] == String(id) || (name != nil && f[0] == name!),
                let start = UInt32(f[1]), let count = UInt32(f[2]), count > 0,
                !start.addingReportingOverflow(count).overflow
            else { return nil }
            return Range(start: start, count: count)
        }
    }

    /// The calling user's ranges, read from /etc/subuid and /etc/subgid.
    public static func ofCaller() -> SubordinateIDs? {
        guard let subuid = try? readText("/etc/subuid"), let subgid = try? readText("/etc/subgid") else { return nil }
        return parse(subuid: subuid, subgid: subgid, name: callerName(), uid: getuid())
    }

    /// The caller's login name, from /etc/passwd (a static binary has no NSS).
    public static func callerName() -> String? {
        let entries = (try? readText("/etc/passwd")).map(PasswdEntry.parse) ?? []
        return entries.first { $0.uid == getuid() }?.name
    }

    /// newuidmap/newgidmap (Debian's uidmap package), found in the usual places.
    public static func helper(_ name: String) -> String? {
        for directory in ["/usr/bin", "/bin", "/usr/local/bin", "/usr/sbin"] {
            let path = directory + "/" + name
            if access(path, X_OK) == 0 { return path }
        }
        return nil
    }
}

/// How a container's user namespace maps ids (`--userns`).
public enum UserNamespaceMode: String, Sendable, CaseIterable {
    /// Subordinate ranges when /etc/subuid grants some and newuidmap is
    /// installed; otherwise the caller's own id only.
    case auto
    /// Subordinate ranges, or an error that says how to get them.
    case subids
    /// The caller's own uid and gid only.
    case single
    /// podman's keep-id: the caller's uid and gid are the same numbers inside
    /// (or the ones given), subordinate ids are everyone else, root included.
    case keepID = "keep-id"
}

extension IDMap {
    /// Root inside is the caller; ids 1 and up are the subordinate ranges, in order.
    public static func subordinate(hostUID: UInt32, hostGID: UInt32, _ ids: SubordinateIDs) -> IDMap {
        func lines(_ own: UInt32, _ ranges: [SubordinateIDs.Range]) -> [IDRange] {
            var inside: UInt32 = 1
            var result = [IDRange(inside: 0, outside: own, count: 1)]
            for range in ranges {
                // The ids inside end below 2^32 - 1 ((uid_t)-1 means "no id"): later ranges are left out.
                let (end, overflow) = inside.addingReportingOverflow(range.count)
                guard !overflow, end < UInt32.max else { break }
                result.append(IDRange(inside: inside, outside: range.start, count: range.count))
                inside = end
            }
            return result
        }
        return IDMap(uids: lines(hostUID, ids.uids), gids: lines(hostGID, ids.gids))
    }

    /// keep-id: inside ids 0 to `inside` - 1 are the first subordinate ids,
    /// `inside` is the caller's own id, and the rest of the subordinate ids
    /// follow; nil when the ranges hold fewer than `inside` ids.
    static func keepingID(_ own: UInt32, inside target: UInt32, _ ranges: [SubordinateIDs.Range]) -> [IDRange]? {
        var result: [IDRange] = []
        var inside: UInt32 = 0
        for range in ranges {
            var start = range.start
            var left = range.count
            while left > 0 && inside < UInt32.max - 1 {
                if inside == target {
                    result.append(IDRange(inside: target, outside: own, count: 1))
                    inside += 1
                    continue
                }
                let room = inside < target ? target - inside : UInt32.max - 1 - inside
                let n = min(left, room)
                result.append(IDRange(inside: inside, outside: start, count: n))
                (inside, start, left) = (inside + n, start + n, left - n)
            }
        }
        if inside == target { result.append(IDRange(inside: target, outside: own, count: 1)) }
        return inside >= target ? result : nil
    }

    /// The map for the caller in `mode`: nil means the single mapping (whose
    /// inside id depends on the container's user). `keepID`: keep-id's ids inside (default the caller's).
    public static func subordinateForCaller(_ mode: UserNamespaceMode, keepID: (uid: UInt32, gid: UInt32)? = nil) throws(UrunError) -> IDMap? {
        if mode == .keepID {
            let (uid, gid) = keepID ?? (getuid(), getgid())
            guard let ids = SubordinateIDs.ofCaller(), SubordinateIDs.helper("newuidmap") != nil, SubordinateIDs.helper("newgidmap") != nil else {
                throw .invalid("--userns keep-id needs subordinate ids (for the container's root and other users) and newuidmap/newgidmap; see urun doctor")
            }
            guard let uids = keepingID(getuid(), inside: uid, ids.uids), let gids = keepingID(getgid(), inside: gid, ids.gids) else {
                throw .invalid("--userns keep-id: your subordinate ranges hold fewer ids than \(uid):\(gid), the ids kept inside")
            }
            return IDMap(uids: uids, gids: gids)
        }
        // Real root maps ids itself and needs no ranges: it keeps the single map unless asked.
        if mode == .single || (mode == .auto && getuid() == 0) { return nil }
        let ids = SubordinateIDs.ofCaller()
        let helpers = getuid() == 0 || (SubordinateIDs.helper("newuidmap") != nil && SubordinateIDs.helper("newgidmap") != nil)
        if let ids, helpers { return .subordinate(hostUID: getuid(), hostGID: getgid(), ids) }
        guard mode == .subids else { return nil }
        let who = SubordinateIDs.callerName() ?? String(getuid())
        if ids == nil {
            throw .invalid(
                "--userns subids: /etc/subuid and /etc/subgid grant \(who) no range; as root: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 \(who)" + Hint.seeDoctor)
        }
        throw .invalid("--userns subids: newuidmap and newgidmap are not installed (Debian: apt-get install uidmap)" + Hint.seeDoctor)
    }

    /// Whether the map has more than the caller's own id: ids other than root
    /// exist inside, and a process switches to them with setuid(2).
    public var hasSubordinateIDs: Bool { uids.count > 1 || gids.count > 1 || uids.first.map { $0.count > 1 } ?? false }

    /// A short name for the map, for cache entries unpacked under it.
    public var identity: String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in (Self.text(uids) + "/" + Self.text(gids)).utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        return String(hash, radix: 16)
    }
}
