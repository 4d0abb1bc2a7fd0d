import CUrunSecurity
import UrunKernel

/// A set of Linux capabilities (capabilities(7)) as a bit mask.
public struct Capabilities: Equatable, Sendable, CustomStringConvertible {
    public var mask: UInt64

    public init(mask: UInt64) {
        self.mask = mask
    }

    /// Names in number order, as the kernel numbers them.
    public static let names = [
        "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
        "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
        "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
        "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
        "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
        "CHECKPOINT_RESTORE",
    ]

    /// docker's default set.
    public static let dockerDefault = Capabilities(names: [
        "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP", "SETPCAP",
        "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
    ])

    /// Every capability this kernel knows.
    public static var all: Capabilities {
        let last = min(Int(urun_cap_last()), 63)
        return Capabilities(mask: last >= 63 ? .max : (UInt64(1) << UInt64(last + 1)) - 1)
    }

    init(names: [String]) {
        mask = names.reduce(0) { $0 | (UInt64(1) << UInt64(Self.names.firstIndex(of: $1)!)) }
    }

    public func contains(_ name: String) -> Bool {
        guard let number = Self.number(name) else { return false }
        return mask & (UInt64(1) << UInt64(number)) != 0
    }

    /// "CAP_SYS_ADMIN", "sys_admin" or "SYS_ADMIN" → 21.
    public static func number(_ name: String) -> Int? {
        var upper = name.uppercased()
        if upper.hasPrefix("CAP_") { upper.removeFirst(4) }
        if let index = names.firstIndex(of: upper) { return index }
        if let number = Int(upper), (0..<64).contains(number) { return number }
        let value = Int(urun_cap_from_name("cap_" + upper.lowercased()))
        return value >= 0 ? value : nil
    }

    /// docker's --cap-add / --cap-drop: drops first, then adds; "ALL" in either.
    public static func resolve(adding: [String], dropping: [String], base: Capabilities = .dockerDefault)
        throws(UrunError) -> Capabilities
    {
        var result = base
        for name in dropping {
            if name.uppercased() == "ALL" {
                result.mask = 0
                continue
            }
            guard let number = number(name) else { throw .usage("--cap-drop \(name): unknown capability") }
            result.mask &= ~(UInt64(1) << UInt64(number))
        }
        for name in adding {
            if name.uppercased() == "ALL" {
                result = .all
                continue
            }
            guard let number = number(name) else { throw .usage("--cap-add \(name): unknown capability") }
            result.mask |= UInt64(1) << UInt64(number)
        }
        return result
    }

    /// A set named capability by capability ("CAP_CHOWN"), as an OCI config
    /// lists them. A capability this kernel does not know is left out, as runc
    /// and crun leave it (configs name capabilities newer kernels added);
    /// a name that is no capability at all is an error naming `field`.
    public init(parsing list: [String], field: String) throws(UrunError) {
        mask = 0
        let last = Int(urun_cap_last())
        for name in list {
            guard let number = Self.number(name) else {
                throw .invalid("\(field): unknown capability \(printable(name, limit: 40))")
            }
            if number <= last { mask |= UInt64(1) << UInt64(number) }
        }
    }

    /// The names of the capabilities in the set, without "CAP_", in number order.
    public var names: [String] {
        (0..<64).filter { mask & (UInt64(1) << UInt64($0)) != 0 }.map { $0 < Self.names.count ? Self.names[$0] : "\($0)" }
    }

    public var description: String { names.map { "CAP_" + $0 }.joined(separator: ",") }
}
