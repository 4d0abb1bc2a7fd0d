import CUrunSecurity
import CUrunSyscalls
import Glibc
import UrunKernel

/// A container's security settings, docker's defaults unless the user says
/// otherwise: docker's 14 capabilities, no_new_privs, the default seccomp
/// profile, and the masked and read-only kernel paths.
public struct SecurityPolicy: Equatable, Sendable {
    public enum Seccomp: Equatable, Sendable {
        case `default`
        case unconfined
        /// A docker-format profile: where it came from, and its JSON text.
        case profile(source: String, text: String)
    }

    public var capabilities: Capabilities = .dockerDefault
    public var noNewPrivileges = true
    public var seccomp: Seccomp = .default
    /// Paths to leave visible (`--security-opt unmask=PATH`), or ["ALL"].
    public var unmasked: [String] = []
    public var privileged = false
    /// --fake-root (see FakeRoot.swift): nil means "when only the caller's id is mapped".
    public var fakeRoot: Bool?
    /// An OCI config's five sets, applied as given; nil: `capabilities` is the
    /// bounding, effective and permitted set of root (docker's way).
    public var capabilitySets: CapabilitySets?

    /// The five capability sets of a process (capabilities(7)).
    public struct CapabilitySets: Equatable, Sendable {
        public var bounding: Capabilities
        public var effective: Capabilities
        public var permitted: Capabilities
        public var inheritable: Capabilities
        public var ambient: Capabilities

        public init(
            bounding: Capabilities, effective: Capabilities, permitted: Capabilities, inheritable: Capabilities,
            ambient: Capabilities
        ) {
            self.bounding = bounding
            self.effective = effective
            self.permitted = permitted
            self.inheritable = inheritable
            self.ambient = ambient
        }
    }

    public init() {}

    /// Kernel interfaces hidden from containers: a file gets /dev/null bound
    /// over it, a directory an empty read-only tmpfs.
    public static let maskedPaths = [
        "/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
        "/proc/sched_debug", "/proc/scsi", "/proc/timer_list", "/proc/timer_stats", "/sys/firmware",
        "/sys/devices/virtual/powercap", "/sys/devices/system/cpu/cpu*/thermal_throttle",
    ]

    /// Kernel interfaces a container may read but not change.
    public static let readOnlyPaths = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

    public var masked: [String] { privileged ? [] : Self.maskedPaths.filter(isMasked) }
    public var readOnly: [String] { privileged ? [] : Self.readOnlyPaths.filter(isMasked) }

    private func isMasked(_ path: String) -> Bool {
        !unmasked.contains("ALL") && !unmasked.contains(path)
    }

    /// The capability set the command gets (the bounding set, with an OCI config's sets).
    public var effectiveCapabilities: Capabilities { privileged ? .all : capabilitySets?.bounding ?? capabilities }

    /// The profile, parsed; nil when unconfined (or privileged) without fake root.
    public func seccompProfile(fakeRoot: Bool = false) throws(UrunError) -> (profile: SeccompProfile, identity: String)? {
        guard let (profile, identity) = try ownProfile() else {
            return fakeRoot ? (.fakeRootOnly, SeccompProfile.defaultIdentity + "-fakeonly") : nil
        }
        return fakeRoot ? (profile.fakingRoot(), identity + "-fake") : (profile, identity)
    }

    private func ownProfile() throws(UrunError) -> (profile: SeccompProfile, identity: String)? {
        if privileged { return nil }
        switch seccomp {
        case .unconfined: return nil
        case .default: return (.default, SeccompProfile.defaultIdentity)
        case .profile(let source, let text):
            let json: JSON
            do {
                json = try JSON(parsing: text)
            } catch {
                throw .invalid("seccomp profile \(source): not valid JSON: \(error)")
            }
            return (try SeccompProfile(json: json, source: source), "custom-" + String(fnv1a(text), radix: 16))
        }
    }

    /// Whether chown and setuid are faked: as asked, else when only the
    /// caller's own id is mapped.
    public func fakesRoot(singleMapping: Bool) -> Bool { fakeRoot ?? singleMapping }

    /// The compiled filter, from the cache when possible. Done in the parent,
    /// before the clone: the child only loads it.
    public func seccompProgram(cache: String, singleMapping: Bool) throws(UrunError) -> [UInt8]? {
        let fakeRoot = fakesRoot(singleMapping: singleMapping)
        guard let (profile, identity) = try seccompProfile(fakeRoot: fakeRoot) else { return nil }
        return try profile.program(for: effectiveCapabilities, identity: identity, cache: cache)
    }

    /// Applies the policy to this process: the last steps before exec.
    /// `becomeUser` switches to the container's user where that takes
    /// setuid(2) (with subordinate ids): after the bounding set is cut, while
    /// CAP_SETUID is still held. Leaving uid 0 clears the effective and
    /// permitted sets, so a non-root user keeps none.
    ///
    /// With no_new_privs the filter is loaded last; without it, loading a
    /// filter needs CAP_SYS_ADMIN, so it comes before the capabilities go.
    public func apply(program: [UInt8]?, becomeUser: () throws(UrunError) -> Void = {}) throws(UrunError) {
        let caps = effectiveCapabilities
        if noNewPrivileges {
            try sys(.noNewPrivileges, explain: "prctl(PR_SET_NO_NEW_PRIVS, 1)") { urun_set_no_new_privs() }
        }
        try sys(.dropCapabilities, explain: "prctl(PR_CAPBSET_DROP) for each capability but \(describe(caps))") {
            urun_caps_bound(caps.mask)
        }
        if !noNewPrivileges, let program { try SeccompProfile.load(program) }
        if let sets = capabilitySets {
            // The config's sets hold whoever the process becomes: permitted survives the switch.
            _ = urun_set_keepcaps(1)
            try becomeUser()
            _ = urun_set_keepcaps(0)
            try sys(
                .dropCapabilities,
                explain: "capset(effective \(describe(sets.effective)), permitted \(describe(sets.permitted)), inheritable \(describe(sets.inheritable))) + ambient \(describe(sets.ambient))"
            ) { urun_caps_set_sets(sets.effective.mask, sets.permitted.mask, sets.inheritable.mask, sets.ambient.mask) }
        } else {
            try becomeUser()
            let kept = geteuid() == 0 ? caps : Capabilities(mask: 0)
            try sys(.dropCapabilities, explain: "capset(\(describe(kept)))") { urun_caps_set(kept.mask) }
        }
        if noNewPrivileges, let program { try SeccompProfile.load(program) }
    }

    private func describe(_ caps: Capabilities) -> String {
        caps.mask == Capabilities.all.mask ? "all" : caps.mask == 0 ? "none" : caps.description
    }

    /// `--security-opt` values: no-new-privileges[=true|false],
    /// seccomp=unconfined|PROFILE.json, unmask=PATH|ALL.
    public mutating func apply(option: String, readFile: (String) throws(UrunError) -> String) throws(UrunError) {
        let parts = option.split(separator: "=", maxSplits: 1).map(String.init)
        let key = parts[0]
        let value = parts.count > 1 ? parts[1] : nil
        switch key {
        case "no-new-privileges":
            switch value {
            case nil, "true": noNewPrivileges = true
            case "false": noNewPrivileges = false
            default: throw .usage("--security-opt no-new-privileges=\(value!): expected true or false")
            }
        case "seccomp":
            guard let value, !value.isEmpty else { throw .usage("--security-opt seccomp needs =unconfined or =PROFILE.json") }
            if value == "unconfined" {
                seccomp = .unconfined
            } else {
                seccomp = .profile(source: value, text: try readFile(value))
                _ = try seccompProfile()  // a malformed profile fails now, naming the field
            }
        case "unmask":
            guard let value, !value.isEmpty else { throw .usage("--security-opt unmask needs =PATH or =ALL") }
            unmasked += value.split(separator: ":").map(String.init)
        case "label", "apparmor":
            throw .usage("--security-opt \(key): urun has no SELinux or AppArmor support")
        default:
            throw .usage("--security-opt \(option): expected no-new-privileges, seccomp=... or unmask=...")
        }
    }
}

/// A 64-bit FNV-1a hash: a cache key for a custom profile's text.
func fnv1a(_ text: String) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 {
        hash ^= UInt64(byte)
        hash = hash &* 0x100_0000_01b3
    }
    return hash
}
