/// Entries of passwd(5) and group(5) files, read directly: urun resolves users
/// in the container's own files, and a static binary must not rely on NSS.
public struct PasswdEntry: Equatable, Sendable {
    public let name: String
    public let uid: UInt32
    public let gid: UInt32
    public let home: String
    public let shell: String

    /// Parses passwd(5) text, skipping malformed lines.
    public static func parse(_ text: String) -> [PasswdEntry] {
        text.split(separator: "\n").compactMap { line in
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            guard f.count >= 7, let uid = UInt32(f[2]), let gid = UInt32(f[3]) else { return nil }
            return PasswdEntry(name: String(f[0]), uid: uid, gid: gid, home: String(f[5]), shell: String(f[6]))
        }
    }
}

public struct GroupEntry: Equatable, Sendable {
    public let name: String
    public let gid: UInt32
    public let members: [String]

    public static func parse(_ text: String) -> [GroupEntry] {
        text.split(separator: "\n").compactMap { line in
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            guard f.count >= 4, let gid = UInt32(f[2]) else { return nil }
            return GroupEntry(
                name: String(f[0]), gid: gid, members: f[3].split(separator: ",").map(String.init))
        }
    }
}
