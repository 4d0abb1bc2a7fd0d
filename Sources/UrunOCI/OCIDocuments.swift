import UrunKernel

/// The runtime-spec documents urun writes: a container's state (`state ID`),
/// a default config (`spec`), and what urun supports (`features`).
public enum OCIDocuments {
    /// The runtime specification version urun implements.
    public static let specVersion = "1.2.0"

    /// runtime.md's state: creating, created, running, stopped (paused is runc's addition).
    public static func state(
        id: String, status: String, pid: Int32, bundle: String, annotations: [String: String], created: Timestamp?,
        owner: String? = nil
    ) -> JSON {
        var object = JSON.object([
            ("ociVersion", .string(specVersion)), ("id", .string(id)), ("status", .string(status)),
            ("pid", .int(status == "stopped" ? 0 : pid)), ("bundle", .string(bundle)),
        ])
        if !annotations.isEmpty {
            object["annotations"] = .object(annotations.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })
        }
        if let created { object["created"] = .string(created.rfc3339) }
        if let owner { object["owner"] = .string(owner) }
        return object
    }

    /// A config.json to start from, as `runc spec` writes it: busybox's `sh`
    /// on a terminal, in `rootfs`. `rootless`: a user namespace mapping the
    /// caller to root, /sys bound rather than mounted, no network namespace.
    public static func spec(rootless: Bool, uid: UInt32, gid: UInt32) -> JSON {
        let caps = JSON.array(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"].map(JSON.string))
        func mount(_ destination: String, _ type: String, _ source: String, _ options: [String]) -> JSON {
            .object([
                ("destination", .string(destination)), ("type", .string(type)), ("source", .string(source)),
                ("options", .array(options.map(JSON.string))),
            ])
        }
        var mounts: [JSON] = [
            .object([("destination", .string("/proc")), ("type", .string("proc")), ("source", .string("proc"))]),
            mount("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
            mount("/dev/pts", "devpts", "devpts", ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"] + (rootless ? [] : ["gid=5"])),
            mount("/dev/shm", "tmpfs", "shm", ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
            mount("/dev/mqueue", "mqueue", "mqueue", ["nosuid", "noexec", "nodev"]),
        ]
        if rootless {
            mounts.append(mount("/sys", "none", "/sys", ["rbind", "nosuid", "noexec", "nodev", "ro"]))
        } else {
            mounts.append(mount("/sys", "sysfs", "sysfs", ["nosuid", "noexec", "nodev", "ro"]))
            mounts.append(mount("/sys/fs/cgroup", "cgroup", "cgroup", ["nosuid", "noexec", "nodev", "relatime", "ro"]))
        }
        var namespaces = ["pid", "ipc", "uts", "mount"]
        if !rootless { namespaces.insert("network", at: 1) } else { namespaces.append("user") }
        var linux = JSON.object([
            ("namespaces", .array(namespaces.map { .object([("type", .string($0))]) })),
            ("maskedPaths", .array([
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
            ].map(JSON.string))),
            ("readonlyPaths", .array(["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"].map(JSON.string))),
        ])
        if rootless {
            func map(_ id: UInt32) -> JSON {
                .array([.object([("containerID", .int(0)), ("hostID", .int(id)), ("size", .int(1))])])
            }
            linux["uidMappings"] = map(uid)
            linux["gidMappings"] = map(gid)
        } else {
            linux["resources"] = .object([("devices", .array([.object([("allow", .bool(false)), ("access", .string("rwm"))])]))])
        }
        return .object([
            ("ociVersion", .string(specVersion)),
            ("process", .object([
                ("terminal", .bool(true)),
                ("user", .object([("uid", .int(0)), ("gid", .int(0))])),
                ("args", .array([.string("sh")])),
                ("env", .array([.string("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"), .string("TERM=xterm")])),
                ("cwd", .string("/")),
                ("capabilities", .object(["bounding", "effective", "permitted"].map { ($0, caps) })),
                ("rlimits", .array([.object([("type", .string("RLIMIT_NOFILE")), ("hard", .int(1024)), ("soft", .int(1024))])])),
                ("noNewPrivileges", .bool(true)),
            ])),
            ("root", .object([("path", .string("rootfs")), ("readonly", .bool(true))])),
            ("hostname", .string("urun")),
            ("mounts", .array(mounts)),
            ("linux", linux),
        ])
    }

    /// features.md: what this runtime understands, for engines that ask.
    public static func features(capabilities: [String]) -> JSON {
        .object([
            ("ociVersionMin", .string("1.0.0")), ("ociVersionMax", .string(specVersion)),
            ("hooks", .array(["prestart", "createRuntime", "poststart", "poststop"].map(JSON.string))),
            ("mountOptions", .array(OCIMountOptions.known.map(JSON.string))),
            ("linux", .object([
                ("namespaces", .array(OCIConfig.namespaceTypes.filter { $0 != "time" }.map(JSON.string))),
                ("capabilities", .array(capabilities.map(JSON.string))),
                ("cgroup", .object([("v1", .bool(false)), ("v2", .bool(true)), ("systemd", .bool(false)), ("systemdUser", .bool(false))])),
                ("seccomp", .object([("enabled", .bool(true))])),
                ("apparmor", .object([("enabled", .bool(false))])),
                ("selinux", .object([("enabled", .bool(false))])),
            ])),
            ("annotations", .object([("org.opencontainers.runtime-spec.features", .string(specVersion))])),
        ])
    }
}
