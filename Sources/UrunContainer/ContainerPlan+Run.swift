import CUrunSyscalls
import Glibc
import UrunImage
import UrunKernel
import UrunNetwork
import UrunOCI
import UrunProcess
import UrunRootfs
import UrunUserNS

extension ContainerPlan {
    /// `urun run`'s options and the image, compiled: the image's layers under
    /// an overlay, docker's /proc, /sys and /dev, the generated /etc files,
    /// volumes and tmpfs mounts, the user (switched to inside a subordinate
    /// mapping, or mapped directly), the policy, the namespaces. `joined`:
    /// --network container:NAME's container; `helper`: the network helper
    /// that will join the new network namespace.
    static func run(
        _ spec: ContainerSpec, image: Image, directory: ContainerDirectory, ephemeral: Bool, joined: RunningContainer?,
        helper: NetworkHelper.Kind?
    ) throws(UrunError) -> ContainerPlan {
        // keep-id: the caller has a passwd and group entry inside, added when the image lacks one.
        let accounts = spec.userNamespace == .keepID ? KeepIDAccounts(spec: spec, image: image) : nil
        let user = try ContainerUser.resolve(spec.user) { accounts?.file($0) ?? image.readFile($0) }
            .adding(groups: spec.groupAdd) { accounts?.file($0) ?? image.readFile($0) }
        if let joined, let mapped = joined.mappedUID, user.uid != mapped {
            throw .invalid("--network container:\(joined.record.name): only uid \(mapped) is mapped in its user namespace (it has no subordinate ids); run as that user (-u \(mapped))")
        }
        let joinedHostname = joined?.readFile("/etc/hostname")?.split(separator: "\n").first.map(String.init)
        let sharesUTS = spec.hostNamespaces.contains(.uts)
        let hostname = spec.hostname ?? joinedHostname
            ?? (spec.network == .host || sharesUTS ? Self.hostHostname() : String(directory.id.prefix(12)))
        let environment = ContainerEnvironment.build(
            hostname: hostname, home: user.home, image: spec.imageEnvironment, user: spec.environment)
        let workingDirectory = spec.workingDirectory ?? "/"
        // With subordinate ids the caller is root inside and the child
        // switches to the user; with one id, the caller's id is the user's.
        let subordinate = joined == nil ? try spec.subordinateMapping() : nil
        if let subordinate { try Launcher.checkMapped(user, in: subordinate) }
        let singleMapping = joined.map { $0.mappedUID != nil } ?? (subordinate == nil)
        if singleMapping && !spec.groupAdd.isEmpty && !user.keepsHostGroups {
            throw .invalid("--group-add needs subordinate ids: with only your own id mapped, the kernel lets no group be set (setgroups is denied); keep-groups keeps your own")
        }
        var files = EtcFiles.files(hostname: hostname, spec: spec, helper: helper)
        if let joined {
            // The same hosts and resolv.conf as the container whose network this is, as docker does.
            files = files.map { file in joined.readFile(file.target).map { GeneratedFile(target: file.target, content: $0) } ?? file }
        }
        if let accounts { files += accounts.generated }
        if spec.security.fakesRoot(singleMapping: singleMapping) && image.hasDirectory("/etc/apt/apt.conf.d") {
            files.append(EtcFiles.aptStaysRoot)
        }
        var mounts = MountPlan.container(
            scratch: directory.path, lower: image.layers, lowerBase: image.layerBase, upper: directory.upper,
            work: directory.work, volatile: ephemeral, files: files, volumes: spec.volumes,
            tmpfs: spec.tmpfs, readOnlyRoot: spec.readOnly, ownNetwork: spec.network.ownNamespace,
            masked: spec.security.masked, readOnlyPaths: spec.security.readOnly,
            shm: spec.shmSize.map(TmpfsOptions.shm(bytes:)) ?? .shm, sysctls: spec.sysctls, volumeOwner: (user.uid, user.gid))
        mounts.ops.append(.directory(target: workingDirectory))
        // --device: next to the standard nodes, before the volumes.
        let afterDevices = (mounts.ops.lastIndex { if case .device = $0 { return true } else { return false } } ?? -1) + 1
        for device in spec.devices {
            try device.validated()
            mounts.ops.insert(.device(source: device.source, target: device.target), at: afterDevices)
        }
        mounts.shareHostNamespaces(pid: spec.hostNamespaces.contains(.pid), ipc: spec.hostNamespaces.contains(.ipc), cgroup: spec.hostCgroupNamespace)

        var process = OCIProcess(args: spec.effectiveCommand, cwd: workingDirectory)
        process.terminal = spec.tty
        process.env = environment
        process.oomScoreAdj = spec.oomScoreAdj
        (process.uid, process.gid, process.additionalGids) = (user.uid, user.gid, user.groups)
        var plan = ContainerPlan(process: process, environment: environment, mounts: mounts)
        plan.rlimits = spec.ulimits
        // The user, PID and mount namespaces come with the clone (the child is
        // PID 1 from birth); the child makes the others while urun writes the maps.
        // pasta must find the network namespace there as soon as the maps are written.
        // A joined container's user namespace is already there, mapped.
        plan.cloned = joined == nil ? [.user, .pid, .mount] : [.pid, .mount]
        plan.early = [.uts, .ipc]
        if spec.hostNamespaces.contains(.pid) { plan.cloned.remove(.pid) }
        if spec.hostNamespaces.contains(.ipc) { plan.early.remove(.ipc) }
        if sharesUTS { plan.early.remove(.uts) }
        if helper != nil {
            plan.cloned.insert(.network)
        } else if spec.network.createsNamespace {
            plan.early.insert(.network)
        }
        plan.unshareCgroup = !spec.hostCgroupNamespace
        plan.idMap = joined != nil ? nil : subordinate ?? IDMap.single(hostUID: getuid(), hostGID: getgid(), uid: user.uid, gid: user.gid)
        plan.singleMapping = singleMapping
        plan.switchTo = singleMapping ? nil : user
        plan.security = spec.security
        plan.hostname = sharesUTS ? nil : hostname
        plan.domainname = spec.domainname
        plan.loopback = spec.network.createsNamespace
        plan.useInit = spec.useInit
        plan.windowSize = spec.tty ? (WindowSize.of(0) ?? WindowSize.of(1)) : nil
        plan.resources = spec.limits.settings
        plan.annotations["org.urun.image"] = image.id ?? image.names.first ?? spec.image
        plan.annotations["org.urun.rootfs.lowerdir"] = image.layerPaths.joined(separator: ":")
        if let joined { plan.annotations["org.urun.network.container"] = joined.record.name }
        if let helper { plan.annotations["org.urun.network.helper"] = helper.rawValue }
        return plan
    }

    static func hostHostname() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        gethostname(&buffer, buffer.count - 1)
        return String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// --userns keep-id's accounts: the image's /etc/passwd and /etc/group with
/// an entry for the kept uid and gid when they have none (named as the caller
/// on the host, home /home/NAME, as podman adds them), bound over the image's.
struct KeepIDAccounts {
    let passwd: String?
    let group: String?

    init(spec: ContainerSpec, image: Image) {
        let uid = spec.keepID?.uid ?? getuid()
        let gid = spec.keepID?.gid ?? getgid()
        // The caller's name, when it can stand in passwd (no ':', no newline, no blank).
        let name = SubordinateIDs.callerName().flatMap { name in
            name.isEmpty || name.contains(where: { $0 == ":" || $0.isWhitespace || $0.isNewline }) ? nil : name
        } ?? "user"
        let imagePasswd = image.readFile("/etc/passwd") ?? ""
        let imageGroup = image.readFile("/etc/group") ?? ""
        func appending(_ text: String, _ line: String) -> String { text + (text.isEmpty || text.hasSuffix("\n") ? "" : "\n") + line + "\n" }
        passwd = PasswdEntry.parse(imagePasswd).contains { $0.uid == uid } ? nil
            : appending(imagePasswd, "\(name):x:\(uid):\(gid)::/home/\(name):/bin/sh")
        group = GroupEntry.parse(imageGroup).contains { $0.gid == gid } ? nil : appending(imageGroup, "\(name):x:\(gid):")
    }

    func file(_ path: String) -> String? { path == "/etc/passwd" ? passwd : path == "/etc/group" ? group : nil }

    var generated: [GeneratedFile] {
        [passwd.map { GeneratedFile(target: "/etc/passwd", content: $0) }, group.map { GeneratedFile(target: "/etc/group", content: $0) }]
            .compactMap { $0 }
    }
}
