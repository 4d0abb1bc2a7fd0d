import Glibc
import UrunKernel

/// A mount's `options` (mount(8)'s words) split into what mount(2) takes:
/// flags to set, the propagation to apply after, and the file system's own
/// data ("mode=755,size=64k").
public struct OCIMountOptions: Equatable, Sendable {
    public var flags: UInt = 0
    public var propagation: UInt = 0
    public var data: [String] = []
    public var bind = false
    public var recursive = false

    public var readOnly: Bool { flags & UInt(MS_RDONLY) != 0 }
    public var dataString: String? { data.isEmpty ? nil : data.joined(separator: ",") }

    /// option → (flags set, flags cleared).
    static let table: [String: (set: Int, clear: Int)] = [
        "ro": (MS_RDONLY, 0), "rw": (0, MS_RDONLY), "nosuid": (MS_NOSUID, 0), "suid": (0, MS_NOSUID),
        "nodev": (MS_NODEV, 0), "dev": (0, MS_NODEV), "noexec": (MS_NOEXEC, 0), "exec": (0, MS_NOEXEC),
        "sync": (MS_SYNCHRONOUS, 0), "async": (0, MS_SYNCHRONOUS), "dirsync": (MS_DIRSYNC, 0),
        "remount": (MS_REMOUNT, 0), "mand": (MS_MANDLOCK, 0), "nomand": (0, MS_MANDLOCK),
        "atime": (0, MS_NOATIME), "noatime": (MS_NOATIME, 0), "diratime": (0, MS_NODIRATIME),
        "nodiratime": (MS_NODIRATIME, 0), "relatime": (MS_RELATIME, 0), "norelatime": (0, MS_RELATIME),
        "strictatime": (MS_STRICTATIME, 0), "nostrictatime": (0, MS_STRICTATIME), "silent": (MS_SILENT, 0),
        "loud": (0, MS_SILENT), "defaults": (0, 0),
    ]

    /// Engines' own words that are no mount option: SELinux relabelling and
    /// crun's tmpfs copy-up, which urun does not do.
    static let ignored: Set<String> = ["z", "Z", "tmpcopyup", "notmpcopyup", "copy-symlink", "U"]

    /// Options a mount may have (the features document).
    public static var known: [String] {
        (Array(table.keys) + Array(OCIMount.propagation.keys) + ["bind", "rbind"]).sorted()
    }

    public init(_ options: [String]) throws(UrunError) {
        for option in options {
            if let (set, clear) = Self.table[option] {
                flags = (flags | UInt(set)) & ~UInt(clear)
            } else if let propagation = OCIMount.propagation[option] {
                self.propagation = propagation
            } else if option == "bind" || option == "rbind" {
                bind = true
                recursive = recursive || option == "rbind"
            } else if Self.ignored.contains(option) {
                continue
            } else if option == "idmap" || option == "ridmap" || option == "rro" {
                throw .invalid("mount option \(option) is not supported by urun")
            } else if hasControlCharacters(option) || option.contains(",") {
                throw .invalid("mount option \(printable(option, limit: 60)): not one option")
            } else {
                data.append(option)
            }
        }
    }

    public init() {}

    /// mount(2) flags and a propagation written back as options (the
    /// inverse of `init`), in a stable order.
    public static func names(flags: UInt, propagation: UInt = 0) -> [String] {
        var names = table.filter { $0.value.set != 0 && flags & UInt($0.value.set) == UInt($0.value.set) }.map(\.key).sorted()
        if propagation != 0, let name = OCIMount.propagation.filter({ $0.value == propagation }).map(\.key).sorted().first {
            names.append(name)
        }
        return names
    }
}
