import CUrunSyscalls
import Glibc
import UrunKernel
import UrunOCI
import UrunRootfs
import UrunSecurity
import UrunUserNS

extension ContainerPlan {
    /// The plan as a runtime-spec config.json: what `urun run --print-config`
    /// shows. Every part of the plan is there, in the spec's own fields where
    /// it has one — the process, the capability sets and the seccomp rules
    /// that would be loaded, each mount in order, the namespaces and id maps,
    /// the cgroup v2 limits as `linux.resources.unified` — and what the spec
    /// has no field for (the image's layers under the overlay root, the
    /// network helper) as `org.urun.*` annotations.
    public func config() throws(UrunError) -> JSON {
        var user: [(String, JSON)] = [("uid", .int(process.uid)), ("gid", .int(process.gid))]
        if !process.additionalGids.isEmpty { user.append(("additionalGids", .array(process.additionalGids.map(JSON.int)))) }
        if let umask = process.umask { user.append(("umask", .int(umask))) }
        let sets = security.capabilitySets ?? {
            let all = security.effectiveCapabilities
            return SecurityPolicy.CapabilitySets(bounding: all, effective: all, permitted: all, inheritable: Capabilities(mask: 0), ambient: Capabilities(mask: 0))
        }()
        func names(_ caps: Capabilities) -> JSON { .array(caps.names.map { .string("CAP_" + $0) }) }
        var processJSON: [(String, JSON)] = [
            ("terminal", .bool(process.terminal)), ("user", .object(user)), ("args", .array(process.args.map(JSON.string))),
            ("env", .array(environment.map(JSON.string))), ("cwd", .string(process.cwd)),
            ("capabilities", .object([
                ("bounding", names(sets.bounding)), ("effective", names(sets.effective)), ("permitted", names(sets.permitted)),
                ("inheritable", names(sets.inheritable)), ("ambient", names(sets.ambient)),
            ])),
            ("noNewPrivileges", .bool(security.noNewPrivileges)),
        ]
        if let size = windowSize { processJSON.insert(("consoleSize", .object([("height", .int(size.rows)), ("width", .int(size.columns))])), at: 1) }
        if !rlimits.isEmpty {
            processJSON.append(("rlimits", .array(rlimits.map { limit in
                .object([("type", .string(OCIProcess.rlimitNames[Int(limit.resource)])), ("hard", .int(limit.hard)), ("soft", .int(limit.soft))])
            })))
        }
        if let score = process.oomScoreAdj { processJSON.append(("oomScoreAdj", .int(score))) }

        var document: [(String, JSON)] = [
            ("ociVersion", .string(OCIDocuments.specVersion)), ("process", .object(processJSON)),
            ("root", .object([("path", .string(mounts.rootfs)), ("readonly", .bool(mounts.readOnlyRoot))])),
        ]
        if let hostname { document.append(("hostname", .string(hostname))) }
        if let domainname { document.append(("domainname", .string(domainname))) }
        document.append(("mounts", .array(mounts.ops.compactMap(Self.mount))))
        var notes = annotations
        if useInit { notes["org.urun.init"] = "true" }
        if !notes.isEmpty {
            document.append(("annotations", .object(notes.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })))
        }
        document.append(("linux", try linux()))
        return .object(document)
    }

    private func linux() throws(UrunError) -> JSON {
        var namespaces: [JSON] = []
        let made: [(Namespaces, String)] = [(.user, "user"), (.pid, "pid"), (.mount, "mount"), (.network, "network"), (.uts, "uts"), (.ipc, "ipc")]
        for (flag, name) in made where cloned.union(early).contains(flag) { namespaces.append(.object([("type", .string(name))])) }
        if unshareCgroup { namespaces.append(.object([("type", .string("cgroup"))])) }
        if timeOffsets != nil { namespaces.append(.object([("type", .string("time"))])) }
        for (path, type) in entered + joins {
            let name = Self.namespaceFlags.first { $0.value == type }?.key ?? "unknown"
            namespaces.append(.object([("type", .string(name)), ("path", .string(path))]))
        }
        var linux: [(String, JSON)] = [("namespaces", .array(namespaces))]
        if let idMap {
            func ranges(_ list: [IDRange]) -> JSON {
                .array(list.map { .object([("containerID", .int($0.inside)), ("hostID", .int($0.outside)), ("size", .int($0.count))]) })
            }
            linux += [("uidMappings", ranges(idMap.uids)), ("gidMappings", ranges(idMap.gids))]
        }
        let devices = mounts.ops.compactMap { op -> JSON? in
            guard case .deviceNode(let target, let mode, let device, let uid, let gid) = op else { return nil }
            return .object([
                ("path", .string(target)), ("type", .string(mode & S_IFMT == S_IFBLK ? "b" : "c")),
                // glibc's encoding of dev_t (sys/sysmacros.h).
                ("major", .int((device >> 8) & 0xfff | (device >> 32) & ~0xfff)), ("minor", .int(device & 0xff | (device >> 12) & ~0xff)),
                ("fileMode", .int(mode & 0o7777)), ("uid", .int(uid)), ("gid", .int(gid)),
            ])
        }
        if !devices.isEmpty { linux.append(("devices", .array(devices))) }
        if !resources.isEmpty {
            linux.append(("resources", .object([("unified", .object(resources.map { ($0.file, .string($0.value)) }))])))
        }
        if let cgroupsPath { linux.append(("cgroupsPath", .string(cgroupsPath))) }
        let sysctls = mounts.ops.compactMap { op -> (String, JSON)? in
            if case .sysctl(let name, let value) = op { return (name, .string(value)) } else { return nil }
        }
        if !sysctls.isEmpty { linux.append(("sysctl", .object(sysctls))) }
        if let (profile, _) = try security.seccompProfile(fakeRoot: security.fakesRoot(singleMapping: singleMapping)) {
            linux.append(("seccomp", profile.json(for: security.effectiveCapabilities)))
        }
        func paths(_ pick: (MountOp) -> String?) -> JSON { .array(mounts.ops.compactMap(pick).map(JSON.string)) }
        linux.append(("maskedPaths", paths { if case .mask(let target) = $0 { return target } else { return nil } }))
        linux.append(("readonlyPaths", paths { if case .readOnly(let target) = $0 { return target } else { return nil } }))
        if let propagation = OCIMountOptions.names(flags: 0, propagation: mounts.rootPropagation).first {
            linux.append(("rootfsPropagation", .string(propagation)))
        }
        if let timeOffsets, !timeOffsets.isEmpty {
            linux.append(("timeOffsets", .object(timeOffsets.map { ($0.clock, .object([("secs", .int($0.secs)), ("nanosecs", .int($0.nanosecs))])) })))
        }
        if let personality { linux.append(("personality", .object([("domain", .string(personality == 0 ? "LINUX" : "LINUX32"))]))) }
        return .object(linux)
    }

    /// One mount op as a config.json mount; nil for what the spec leaves to
    /// the runtime (the /dev links, the working directory) or lists
    /// elsewhere (masked and read-only paths, sysctls, device nodes).
    static func mount(_ op: MountOp) -> JSON? {
        func entry(_ target: String, _ type: String, _ source: String, _ options: [String]) -> JSON {
            .object([
                ("destination", .string(target)), ("type", .string(type)), ("source", .string(source)),
                ("options", .array(options.map(JSON.string))),
            ])
        }
        let hidden = UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC)
        switch op {
        case .proc(let target): return entry(target, "proc", "proc", ["nosuid", "nodev", "noexec"])
        case .sysfs(let target): return entry(target, "sysfs", "sysfs", OCIMountOptions.names(flags: hidden | UInt(MS_RDONLY)))
        case .bindSys(let target): return entry(target, "bind", "/sys", ["rbind"] + OCIMountOptions.names(flags: hidden | UInt(MS_RDONLY)))
        case .cgroup2(let target): return entry(target, "cgroup2", "cgroup2", OCIMountOptions.names(flags: hidden))
        case .tmpfs(let target, let options, _):
            return entry(target, "tmpfs", "tmpfs", OCIMountOptions.names(flags: options.flags) + options.data.split(separator: ",").map(String.init))
        case .device(let source, let target): return entry(target, "bind", source, ["bind"])
        case .devpts(let target): return entry(target, "devpts", "devpts", ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"])
        case .mqueue(let target): return entry(target, "mqueue", "mqueue", OCIMountOptions.names(flags: hidden))
        case .bind(let source, let target, let readOnly, _): return entry(target, "bind", source, ["rbind"] + (readOnly ? ["ro"] : []))
        case .filesystem(let type, let source, let target, let flags, let data, let propagation):
            return entry(target, type, source, OCIMountOptions.names(flags: flags, propagation: propagation) + (data?.split(separator: ",").map(String.init) ?? []))
        case .bindPath(let source, let target, let flags, let recursive, let propagation):
            return entry(target, "bind", source, [recursive ? "rbind" : "bind"] + OCIMountOptions.names(flags: flags, propagation: propagation))
        case .symlink, .directory, .mask, .readOnly, .sysctl, .deviceNode, .populateVolume, .chownTree:
            return nil
        }
    }
}
