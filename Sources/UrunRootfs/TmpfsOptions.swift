import Glibc
import UrunKernel

/// Flags and data of a tmpfs mount, parsed from docker's `--tmpfs DST[:OPTS]`.
public struct TmpfsOptions: Equatable, Sendable {
    public var flags: UInt
    /// tmpfs(5) data options: size, mode, nr_inodes, uid, gid.
    public var data: String

    public init(flags: UInt, data: String) {
        self.flags = flags
        self.data = data
    }

    /// /dev: devices come in as bind mounts, so the tmpfs itself needs no dev.
    public static let dev = TmpfsOptions(flags: UInt(MS_NOSUID | MS_STRICTATIME), data: "mode=755,size=65536k")
    public static let shm = TmpfsOptions(flags: UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC), data: "mode=1777,size=65536k")

    /// --shm-size: /dev/shm of `bytes` (docker's default is 64 MiB).
    public static func shm(bytes: UInt64) -> TmpfsOptions {
        TmpfsOptions(flags: shm.flags, data: "mode=1777,size=\(bytes)")
    }

    /// docker's default for --tmpfs: rw, noexec, nosuid, nodev; options may lift each.
    public static func parse(_ text: String) throws(UrunError) -> TmpfsOptions {
        var flags = UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC)
        var data: [String] = []
        for option in text.split(separator: ",").map(String.init) {
            let (key, value) = splitOption(option)
            switch key {
            case "rw": flags &= ~UInt(MS_RDONLY)
            case "ro": flags |= UInt(MS_RDONLY)
            case "exec": flags &= ~UInt(MS_NOEXEC)
            case "noexec": flags |= UInt(MS_NOEXEC)
            case "suid": flags &= ~UInt(MS_NOSUID)
            case "nosuid": flags |= UInt(MS_NOSUID)
            case "dev": flags &= ~UInt(MS_NODEV)
            case "nodev": flags |= UInt(MS_NODEV)
            case "noatime": flags |= UInt(MS_NOATIME)
            case "strictatime": flags |= UInt(MS_STRICTATIME)
            case "size", "nr_inodes", "nr_blocks":
                guard let value, !value.isEmpty, value.dropLast().allSatisfy(\.isNumber),
                    value.last!.isNumber || "kKmMgG%".contains(value.last!)
                else { throw .invalid("--tmpfs: invalid \(key) '\(value ?? "")'") }
                data.append(option)
            case "mode":
                guard let value, UInt32(value, radix: 8) != nil else {
                    throw .invalid("--tmpfs: invalid mode '\(value ?? "")' (octal, e.g. 1777)")
                }
                data.append(option)
            case "uid", "gid":
                guard let value, UInt32(value) != nil else { throw .invalid("--tmpfs: invalid \(key) '\(value ?? "")'") }
                data.append(option)
            default:
                throw .invalid("--tmpfs: unknown option '\(option)'")
            }
        }
        return TmpfsOptions(flags: flags, data: data.joined(separator: ","))
    }

    private static func splitOption(_ option: String) -> (String, String?) {
        guard let eq = option.firstIndex(of: "=") else { return (option, nil) }
        return (String(option[..<eq]), String(option[option.index(after: eq)...]))
    }
}

/// `--tmpfs DST[:OPTS]`
public struct TmpfsMount: Equatable, Sendable {
    public let target: String
    public let options: TmpfsOptions

    public init(target: String, options: TmpfsOptions) {
        self.target = target
        self.options = options
    }

    public static func parse(_ spec: String) throws(UrunError) -> TmpfsMount {
        let parts = spec.split(separator: ":", maxSplits: 1).map(String.init)
        guard let target = parts.first, target.hasPrefix("/") else {
            throw .invalid("--tmpfs \(spec): the target must be an absolute path")
        }
        guard !isContainerRoot(target) else {
            throw .invalid("--tmpfs \(spec): cannot mount over the container's root (use --read-only, or a path below /)")
        }
        return TmpfsMount(target: target, options: try TmpfsOptions.parse(parts.count > 1 ? parts[1] : ""))
    }
}

/// `-v SRC:DST[:ro|rw]`: a host path bound into the container, or a named
/// volume (`-v cache:/root/.cache`): a SRC without a slash, not starting with
/// "." or "~", is a volume's name, as docker reads it.
public struct Volume: Equatable, Sendable {
    public let source: String
    public let target: String
    public let readOnly: Bool
    /// `source` is a named volume's name, not yet its directory.
    public let named: Bool
    /// A named volume that is still empty gets the image's content at the
    /// target first (docker's rule; `nocopy` turns it off).
    public var populate = false
    /// `:U`: the source's tree is chowned to the container's user first, through the user namespace (podman's).
    public var chownToUser = false

    public init(source: String, target: String, readOnly: Bool, named: Bool = false) {
        self.source = source
        self.target = target
        self.readOnly = readOnly
        self.named = named
    }

    /// docker's rule for a volume's name: a letter or digit, then letters, digits, _ . -
    public static func isName(_ text: String) -> Bool {
        guard let first = text.unicodeScalars.first, text.utf8.count <= 128 else { return false }
        let allowed = { (c: Unicode.Scalar) in c.isASCII && (c.properties.isAlphabetic || ("0"..."9").contains(c)) }
        return allowed(first) && text.unicodeScalars.allSatisfy { allowed($0) || "_.-".unicodeScalars.contains($0) }
    }

    /// Parses and checks a volume: the source must exist (a missing source is
    /// almost always a typo; docker's --mount refuses it too).
    public static func parse(_ spec: String) throws(UrunError) -> Volume {
        let parts = spec.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2 || parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty else {
            throw .invalid("-v \(spec): expected SOURCE:TARGET[:ro]")
        }
        guard parts[1].hasPrefix("/") else { throw .invalid("-v \(spec): the target must be an absolute path") }
        guard !isContainerRoot(parts[1]) else {
            throw .invalid("-v \(spec): cannot mount over the container's root; bind it below /, or use the directory as the IMAGE")
        }
        var readOnly = false
        var copies = true
        var chown = false
        if parts.count == 3 {
            for option in parts[2].split(separator: ",") {
                switch option {
                case "ro": readOnly = true
                case "rw": readOnly = false
                case "nocopy": copies = false
                case "U": chown = true
                case "z", "Z": break  // SELinux relabelling: nothing to do without SELinux
                default: throw .invalid("-v \(spec): unknown option '\(option)' (ro, rw, U, or nocopy for a named volume)")
                }
            }
        }
        var volume: Volume
        if !parts[0].contains("/") && !parts[0].hasPrefix(".") && !parts[0].hasPrefix("~") {
            guard isName(parts[0]) else {
                throw .invalid("-v \(spec): \(printable(parts[0])) is not a volume name (letters, digits, _ . -) nor a path (write ./\(printable(parts[0])) for one)")
            }
            volume = Volume(source: parts[0], target: parts[1], readOnly: readOnly, named: true)
            volume.populate = copies
        } else {
            guard copies else { throw .invalid("-v \(spec): nocopy is for named volumes (a host path is never copied into)") }
            let source = try UrunPaths.absolute(parts[0])
            guard fileStatus(source, followLinks: true) != nil else {
                throw .invalid("-v \(spec): \(source) does not exist")
            }
            volume = Volume(source: source, target: parts[1], readOnly: readOnly)
        }
        volume.chownToUser = chown
        return volume
    }
}

/// Whether `path` names the container's root itself ("/", "//", "/.", "/a/..").
func isContainerRoot(_ path: String) -> Bool {
    var depth = 0
    for part in path.split(separator: "/") where part != "." {
        depth = part == ".." ? max(0, depth - 1) : depth + 1
    }
    return depth == 0
}
