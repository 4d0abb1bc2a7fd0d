import CUrunSyscalls
import Glibc
import UrunCgroups
import UrunKernel
import UrunOCI
import UrunProcess
import UrunRootfs
import UrunSecurity
import UrunUserNS

/// A container as the launch sequence applies it: namespaces, id maps, the
/// mount plan, the security policy, the process. Both front ends compile
/// into it — `urun run`'s options (`ContainerPlan.run`) and an OCI bundle's
/// config.json (`init(_:bundle:rootless:)`) — and `Launcher.launch` is the
/// one sequence that runs it; `config()` writes it back as a runtime-spec
/// config.json (`urun run --print-config`). A value: built without touching
/// the kernel (but for reading the host's device nodes, the bundle's root
/// and /etc/subuid), so unit tests build it.
public struct ContainerPlan: Sendable {
    /// Made by the clone (user, PID, mount) and right after it (UTS, IPC, network).
    public var cloned: Namespaces = []
    public var early: Namespaces = []
    /// Namespaces entered by path: (path, CLONE_NEW* flag). The user and PID
    /// ones before the clone (by an intermediate process: a PID namespace is
    /// only ever a child's), the others by the container's init.
    public var entered: [(path: String, type: CInt)] = []
    public var joins: [(path: String, type: CInt)] = []
    public var unshareCgroup = false
    /// A time namespace of the container's own, with these offsets (clock, seconds, nanoseconds).
    public var timeOffsets: [(clock: String, secs: Int64, nanosecs: UInt32)]?
    /// personality(2)'s execution domain: 8 for LINUX32.
    public var personality: UInt?
    public var idMap: IDMap?
    public var mounts: MountPlan
    public var security = SecurityPolicy()
    public var hostname: String?
    public var domainname: String?
    public var process: OCIProcess
    public var environment: [String]
    public var switchTo: ContainerUser?
    public var rlimits: [(resource: CInt, soft: UInt64, hard: UInt64)] = []
    public var resources: [ResourceLimits.Setting] = []
    public var cgroupsPath: String?
    /// Notes for the runtime's log: what the config asks that urun does not do here.
    public var warnings: [String] = []
    /// A new network namespace's loopback comes up.
    public var loopback = false
    /// urun as PID 1 (--init), reaping and passing signals on.
    public var useInit = false
    /// The terminal's size, with process.terminal.
    public var windowSize: WindowSize?
    /// One id mapped: the seccomp profile fakes root's ownership calls (see SecurityPolicy.fakesRoot).
    public var singleMapping = false
    /// Hooks the container's init runs itself (the others are the runtime's).
    public var createContainerHooks: [OCIConfig.Hook] = []
    public var startContainerHooks: [OCIConfig.Hook] = []
    /// What the image gives the rootfs (`urun run`), for the printed config.
    public var annotations: [String: String] = [:]

    /// The parts every plan has; the front ends fill in the rest.
    init(process: OCIProcess, environment: [String], mounts: MountPlan) {
        self.process = process
        self.environment = environment
        self.mounts = mounts
    }

    static let namespaceFlags: [String: CInt] = {
        var flags: [String: CInt] = [:]
        flags["pid"] = CInt(URUN_CLONE_NEWPID)
        flags["network"] = CInt(URUN_CLONE_NEWNET)
        flags["mount"] = CInt(URUN_CLONE_NEWNS)
        flags["ipc"] = CInt(URUN_CLONE_NEWIPC)
        flags["uts"] = CInt(URUN_CLONE_NEWUTS)
        flags["user"] = CInt(URUN_CLONE_NEWUSER)
        flags["cgroup"] = CInt(URUN_CLONE_NEWCGROUP)
        flags["time"] = CInt(URUN_CLONE_NEWTIME)
        return flags
    }()

    /// `rootless`: the caller is not root (euid != 0); a config without a user
    /// namespace then gets one mapping the caller to root, with the
    /// subordinate ids /etc/subuid grants, as crun does.
    public init(_ config: OCIConfig, bundle: String, rootless: Bool) throws(UrunError) {
        guard let process = config.process else { throw .invalid("config.json: process: missing (nothing to run)") }
        self.process = process
        let root = config.root.path.hasPrefix("/") ? config.root.path : bundle + "/" + config.root.path
        guard let st = fileStatus(root, followLinks: true), isDirectory(st) else {
            throw .invalid("config.json: root.path: \(printable(root)) is not a directory")
        }

        // Namespaces.
        var namespaces = config.linux.namespaces
        if rootless && !namespaces.contains(where: { $0.type == "user" }) {
            namespaces.append(OCIConfig.Namespace(type: "user", path: nil))
        }
        guard let mount = namespaces.first(where: { $0.type == "mount" }), mount.path == nil else {
            throw .invalid("config.json: linux.namespaces: urun needs a mount namespace of the container's own")
        }
        for namespace in namespaces {
            guard let flag = Self.namespaceFlags[namespace.type] else { continue }
            if let path = namespace.path {
                switch namespace.type {
                case "user": entered.insert((path, flag), at: 0)
                case "pid": entered.append((path, flag))
                default: joins.append((path, flag))
                }
                continue
            }
            switch namespace.type {
            case "user": cloned.insert(.user)
            case "pid": cloned.insert(.pid)
            case "mount": cloned.insert(.mount)
            case "network": early.insert(.network)
            case "ipc": early.insert(.ipc)
            case "uts": early.insert(.uts)
            case "time": timeOffsets = config.linux.timeOffsets.sorted { $0.key < $1.key }.map { ($0.key, $0.value.secs, $0.value.nanosecs) }
            default: unshareCgroup = true
            }
        }
        let uts = namespaces.contains { $0.type == "uts" }
        if config.hostname.map({ !$0.isEmpty }) == true && !uts {
            throw .invalid("config.json: hostname: needs a uts namespace")
        }
        hostname = config.hostname.flatMap { $0.isEmpty ? nil : $0 }
        domainname = config.domainname.flatMap { $0.isEmpty ? nil : $0 }
        if domainname != nil && !uts { throw .invalid("config.json: domainname: needs a uts namespace") }

        // The id maps: the config's, or the caller as root (with subordinate ids where granted).
        if cloned.contains(.user) {
            if config.linux.uidMappings.isEmpty || config.linux.gidMappings.isEmpty {
                idMap = (try? IDMap.subordinateForCaller(.auto)) ?? IDMap.single(hostUID: getuid(), hostGID: getgid())
            } else {
                func ranges(_ list: [OCIConfig.IDMapping]) -> [IDRange] {
                    list.map { IDRange(inside: $0.containerID, outside: $0.hostID, count: $0.size) }
                }
                idMap = IDMap(uids: ranges(config.linux.uidMappings), gids: ranges(config.linux.gidMappings))
            }
        } else if !config.linux.uidMappings.isEmpty && !entered.contains(where: { $0.type == CInt(URUN_CLONE_NEWUSER) }) {
            throw .invalid("config.json: linux.uidMappings: given without a user namespace")
        }

        // The process: user, environment, capabilities, limits.
        let user = process
        if user.uid != 0 || user.gid != 0 || !user.additionalGids.isEmpty {
            switchTo = ContainerUser(uid: user.uid, gid: user.gid, home: "/", groups: user.additionalGids)
        }
        environment = process.env
        if !environment.contains(where: { $0.hasPrefix("HOME=") }) {
            let home = ContainerUser.readInImage(root, "/etc/passwd").flatMap { text in
                PasswdEntry.parse(text).first { $0.uid == user.uid }?.home
            }
            environment.append("HOME=" + (home ?? "/"))
        }
        for limit in process.rlimits {
            guard let number = OCIProcess.rlimitNames.firstIndex(of: limit.type) else { continue }
            rlimits.append((CInt(number), limit.soft, limit.hard))
        }
        security = try Self.security(for: process, seccomp: config.linux.seccomp, field: "config.json: process")
        // Device rules that deny devices at large, and no user namespace to make mknod(2)
        // of a device useless: without a device cgroup program to enforce them, the
        // container may not make device nodes at all (it keeps those the config gives it).
        let ownUsers = cloned.contains(.user) || entered.contains { $0.type == CInt(URUN_CLONE_NEWUSER) }
        if config.linux.resources?.devicesRestricted == true && !ownUsers, var sets = security.capabilitySets {
            let mknod = ~(UInt64(1) << 27)  // CAP_MKNOD
            for path in [\SecurityPolicy.CapabilitySets.bounding, \.effective, \.permitted, \.inheritable, \.ambient] {
                sets[keyPath: path].mask &= mknod
            }
            security.capabilitySets = sets
        }
        if process.apparmorProfile.map({ !$0.isEmpty }) == true {
            warnings.append("process.apparmorProfile is not applied: urun has no AppArmor support")
        }
        if process.selinuxLabel.map({ !$0.isEmpty }) == true {
            warnings.append("process.selinuxLabel is not applied: urun has no SELinux support")
        }
        if let domain = config.linux.personality { personality = domain == "LINUX32" ? 0x0008 : 0 }
        if !config.linux.timeOffsets.isEmpty && timeOffsets == nil {
            throw .invalid("config.json: linux.timeOffsets: needs a time namespace of the container's own")
        }

        // Resources, for the container's cgroup.
        cgroupsPath = config.linux.cgroupsPath
        resources = (config.linux.resources?.settings ?? []).map {
            ResourceLimits.Setting(flag: "linux.resources." + $0.field, controller: $0.controller, file: $0.file, value: $0.value)
        }

        loopback = early.contains(.network)
        windowSize = process.consoleSize.map { WindowSize(rows: $0.height, columns: $0.width) }
        createContainerHooks = config.hooks.createContainer
        startContainerHooks = config.hooks.startContainer
        mounts = .directory(
            root, readOnly: config.root.readonly,
            propagation: config.linux.rootfsPropagation.flatMap { OCIMount.propagation[$0] },
            ops: try Self.mountOps(
                config, bundle: bundle, ownNetwork: early.contains(.network) || joins.contains { $0.type == CInt(URUN_CLONE_NEWNET) },
                ownCgroup: unshareCgroup, rootless: rootless || cloned.contains(.user)))
    }

    /// A process's own policy: exactly its capability sets, no_new_privs as
    /// it says, the config's seccomp profile (none: unconfined, as runc).
    static func security(for process: OCIProcess, seccomp: JSON?, field: String) throws(UrunError) -> SecurityPolicy {
        var security = SecurityPolicy()
        let caps = process.capabilities
        func set(_ names: [String]?, _ name: String) throws(UrunError) -> Capabilities {
            try Capabilities(parsing: names ?? [], field: field + ".capabilities." + name)
        }
        security.capabilitySets = SecurityPolicy.CapabilitySets(
            bounding: try set(caps.bounding, "bounding"), effective: try set(caps.effective, "effective"),
            permitted: try set(caps.permitted, "permitted"), inheritable: try set(caps.inheritable, "inheritable"),
            ambient: try set(caps.ambient, "ambient"))
        security.noNewPrivileges = process.noNewPrivileges
        security.fakeRoot = false
        security.seccomp = seccomp.map { .profile(source: "config.json linux.seccomp", text: $0.serialized()) } ?? .unconfined
        return security
    }

    /// The config's mounts in order, then the devices and /dev links a
    /// container is owed, the working directory, the sysctls, and last the
    /// masked and read-only paths.
    static func mountOps(_ config: OCIConfig, bundle: String, ownNetwork: Bool, ownCgroup: Bool, rootless: Bool) throws(UrunError) -> [MountOp] {
        var ops: [MountOp] = []
        var freshDev = false
        for (i, mount) in config.mounts.enumerated() {
            let field = "config.json: mounts[\(i)]"
            let options: OCIMountOptions
            do {
                options = try OCIMountOptions(mount.options)
            } catch {
                throw .invalid("\(field).options: \(error)")
            }
            let target = mount.destination
            if mount.isBind {
                guard var source = mount.source, !source.isEmpty else { throw .invalid("\(field).source: a bind mount needs one") }
                if !source.hasPrefix("/") { source = bundle + "/" + source }
                ops.append(.bindPath(source: source, target: target, flags: options.flags, recursive: options.recursive, propagation: options.propagation))
                continue
            }
            switch mount.type ?? "" {
            case "proc":
                ops.append(.proc(target: target))
            case "sysfs":
                // sysfs wants a network namespace of the container's own; else the host's is bound.
                ops.append(ownNetwork ? .filesystem(type: "sysfs", source: "sysfs", target: target, flags: options.flags, data: nil, propagation: 0) : .bindSys(target: target))
            case "cgroup", "cgroup2":
                // A cgroup2 mount shows the container's own cgroup as its root only
                // in a cgroup namespace of its own; without one (and in an engine's
                // user namespace, where mounting it is refused) the host's view is
                // bound in read-only, as runc and crun do.
                ops.append(ownCgroup ? .cgroup2(target: target) : .bindPath(
                    source: "/sys/fs/cgroup", target: target, flags: UInt(MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC), recursive: true, propagation: 0))
            case "":
                throw .invalid("\(field).type: missing")
            default:
                let type = mount.type!
                if target == "/dev" && type == "tmpfs" { freshDev = true }
                ops.append(.filesystem(type: type, source: mount.source ?? type, target: target, flags: options.flags, data: options.dataString, propagation: options.propagation))
            }
        }
        // The devices every container gets (runtime-spec "Default Devices"), and those the config lists.
        var devices: [(path: String, type: String, major: Int64, minor: Int64, mode: UInt32?, uid: UInt32?, gid: UInt32?)] =
            [("/dev/null", "c", 1, 3), ("/dev/zero", "c", 1, 5), ("/dev/full", "c", 1, 7), ("/dev/random", "c", 1, 8),
             ("/dev/urandom", "c", 1, 9), ("/dev/tty", "c", 5, 0)].map { ($0.0, $0.1, $0.2, $0.3, nil, nil, nil) }
        for device in config.linux.devices {
            devices.removeAll { $0.path == device.path }
            devices.append((device.path, device.type, device.major, device.minor, device.fileMode, device.uid, device.gid))
        }
        for device in devices {
            // The host's own node, when it is the same device: binding it works for anyone.
            if let st = fileStatus(device.path, followLinks: true), st.st_rdev == makedev(device.major, device.minor),
                (st.st_mode & S_IFMT == S_IFCHR) == (device.type != "b")
            {
                ops.append(.device(source: device.path, target: device.path))
            } else if !rootless && device.type != "p" {
                guard let major = UInt32(exactly: device.major), let minor = UInt32(exactly: device.minor) else {
                    throw .invalid("config.json: linux.devices: \(printable(device.path)): device number out of range")
                }
                let type: mode_t = device.type == "b" ? S_IFBLK : S_IFCHR
                ops.append(.deviceNode(target: device.path, mode: type | mode_t(device.mode ?? 0o666), device: urun_makedev(major, minor), uid: device.uid ?? 0, gid: device.gid ?? 0))
            } else {
                throw .invalid("config.json: linux.devices: \(printable(device.path)) (\(device.major):\(device.minor)) is not on the host at that path, and an unprivileged user cannot create device nodes")
            }
        }
        if freshDev {
            ops += [
                .symlink(target: "/dev/fd", pointingTo: "/proc/self/fd"), .symlink(target: "/dev/stdin", pointingTo: "/proc/self/fd/0"),
                .symlink(target: "/dev/stdout", pointingTo: "/proc/self/fd/1"), .symlink(target: "/dev/stderr", pointingTo: "/proc/self/fd/2"),
            ]
            if config.mounts.contains(where: { $0.destination == "/dev/pts" }) {
                ops.append(.symlink(target: "/dev/ptmx", pointingTo: "pts/ptmx"))
            }
        }
        if let cwd = config.process?.cwd { ops.append(.directory(target: cwd)) }
        for (name, value) in config.linux.sysctl.sorted(by: { $0.key < $1.key }) {
            guard !name.contains("/"), !name.contains(".."), !hasControlCharacters(name + value) else {
                throw .invalid("config.json: linux.sysctl: \(printable(name, limit: 60)) is not a sysctl name")
            }
            ops.append(.sysctl(name: name, value: value))
        }
        ops += config.linux.maskedPaths.map { .mask(target: $0) } + config.linux.readonlyPaths.map { .readOnly(target: $0) }
        return ops
    }
}

private func makedev(_ major: Int64, _ minor: Int64) -> dev_t {
    guard let major = UInt32(exactly: major), let minor = UInt32(exactly: minor) else { return dev_t.max }
    return urun_makedev(major, minor)
}
