import CUrunSyscalls

/// The namespaces a container gets (namespaces(7)), as clone(2) flags.
public struct Namespaces: OptionSet, Sendable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public static let user = Namespaces(rawValue: UInt64(URUN_CLONE_NEWUSER))
    public static let mount = Namespaces(rawValue: UInt64(URUN_CLONE_NEWNS))
    public static let pid = Namespaces(rawValue: UInt64(URUN_CLONE_NEWPID))
    public static let uts = Namespaces(rawValue: UInt64(URUN_CLONE_NEWUTS))
    public static let ipc = Namespaces(rawValue: UInt64(URUN_CLONE_NEWIPC))
    public static let network = Namespaces(rawValue: UInt64(URUN_CLONE_NEWNET))
    public static let cgroup = Namespaces(rawValue: UInt64(URUN_CLONE_NEWCGROUP))

    /// Flag names as clone(2) spells them, for the narration.
    public var flagNames: String {
        let names: [(Namespaces, String)] = [
            (.user, "CLONE_NEWUSER"), (.mount, "CLONE_NEWNS"), (.pid, "CLONE_NEWPID"), (.uts, "CLONE_NEWUTS"),
            (.ipc, "CLONE_NEWIPC"), (.network, "CLONE_NEWNET"), (.cgroup, "CLONE_NEWCGROUP"),
        ]
        return names.filter { contains($0.0) }.map(\.1).joined(separator: "|")
    }
}
