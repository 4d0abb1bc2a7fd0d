/// One line of /proc/self/mountinfo (proc(5)).
public struct MountInfo: Equatable, Sendable {
    public let id: Int
    public let parent: Int
    public let root: String
    public let mountPoint: String
    public let options: [String]
    public let fsType: String
    public let source: String
    public let superOptions: [String]

    /// Parses mountinfo text; malformed lines are skipped.
    public static func parse(_ text: String) -> [MountInfo] {
        text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: false)
            // Optional fields sit between field 6 and the lone "-".
            guard let separator = fields.firstIndex(of: "-"), separator >= 6, fields.count >= separator + 3,
                let id = Int(fields[0]), let parent = Int(fields[1])
            else { return nil }
            return MountInfo(
                id: id, parent: parent, root: unescape(fields[3]), mountPoint: unescape(fields[4]),
                options: fields[5].split(separator: ",").map(String.init),
                fsType: String(fields[separator + 1]), source: unescape(fields[separator + 2]),
                superOptions: fields.count > separator + 3
                    ? fields[separator + 3].split(separator: ",").map(String.init) : [])
        }
    }

    /// The mounts a path lookup can reach: one mounted later on the same
    /// point or on a directory above it (a cgroup2 over /sys/fs/cgroup in
    /// an engine's private namespace) hides the earlier ones there.
    public static func visible(_ mounts: [MountInfo]) -> [MountInfo] {
        mounts.enumerated().filter { index, mount in
            !mounts[(index + 1)...].contains { later in
                later.mountPoint == mount.mountPoint || mount.mountPoint.hasPrefix(later.mountPoint + "/")
            }
        }.map(\.element)
    }

    /// The mount table of the calling process.
    public static func current() throws(UrunError) -> [MountInfo] {
        parse(try readText("/proc/self/mountinfo"))
    }

    /// mountinfo escapes space, tab, newline and backslash as \ooo.
    static func unescape(_ field: Substring) -> String {
        guard field.contains("\\") else { return String(field) }
        var out: [UInt8] = []
        let bytes = Array(field.utf8)
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "\\"), i + 3 < bytes.count,
                let value = UInt8(String(decoding: bytes[(i + 1)...(i + 3)], as: UTF8.self), radix: 8)
            {
                out.append(value)
                i += 4
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
