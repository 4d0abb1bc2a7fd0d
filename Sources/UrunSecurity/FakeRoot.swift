/// Fake root for containers without subordinate ids (charliecloud's and
/// enroot's technique): with only the caller's own id mapped, chown(2) to
/// any other id fails with EINVAL, and package managers stop at their first
/// chown. A seccomp rule makes such calls succeed without doing anything.
/// The price: files keep the caller's id, setuid(2) changes nothing, and a
/// program that checks its own uid after dropping privileges (apt's _apt
/// sandbox) notices; with subordinate ids none of this is needed.
extension SeccompProfile {
    /// Calls that "succeed" under fake root: owners, user and group ids,
    /// supplementary groups. Device nodes are faked by the mknod rules below.
    static let fakedCalls = [
        "chown", "chown32", "fchown", "fchown32", "fchownat", "lchown", "lchown32", "setuid", "setuid32", "setgid",
        "setgid32", "setreuid", "setreuid32", "setregid", "setregid32", "setresuid", "setresuid32", "setresgid",
        "setresgid32", "setfsuid", "setfsuid32", "setfsgid", "setfsgid32", "setgroups", "setgroups32",
    ]

    /// This profile with the fake-root rules: the faked calls taken out of
    /// every other rule, then answered with success (errno 0); mknod(2) of a
    /// character or block device faked, of anything else allowed.
    public func fakingRoot() -> SeccompProfile {
        let taken = Set(Self.fakedCalls + ["mknod", "mknodat"])
        var rules = self.rules.compactMap { rule -> Rule? in
            let names = rule.names.filter { !taken.contains($0) }
            return names.isEmpty ? nil : Rule(names, rule.action, args: rule.args, includes: rule.includes, excludes: rule.excludes)
        }
        rules.append(Rule(Self.fakedCalls, .errno(0)))
        let fileType: UInt64 = 0o170000
        for (call, modeArgument) in [("mknod", UInt32(1)), ("mknodat", UInt32(2))] {
            for device: UInt64 in [0o020000, 0o060000] {
                rules.append(Rule([call], .errno(0), args: [Argument(modeArgument, .maskedEqual, fileType, device)]))
            }
            for other: UInt64 in [0, 0o100000, 0o010000, 0o140000] {
                rules.append(Rule([call], .allow, args: [Argument(modeArgument, .maskedEqual, fileType, other)]))
            }
        }
        return SeccompProfile(defaultAction: defaultAction, architectures: architectures, rules: rules)
    }

    /// Fake root alone, for containers without a filter of their own (--privileged).
    static let fakeRootOnly = SeccompProfile(
        defaultAction: .allow, architectures: SeccompProfile.default.architectures, rules: []
    ).fakingRoot()
}
