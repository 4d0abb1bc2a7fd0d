import CUrunSyscalls
import Glibc
import UrunKernel

/// A small file urun writes for the container (/etc/hostname, ...).
public struct GeneratedFile: Equatable, Sendable {
    /// Where it appears inside the container.
    public let target: String
    public let content: String

    public init(target: String, content: String) {
        self.target = target
        self.content = content
    }
}

/// One step of building a container's file system, inside its root. Targets
/// are paths inside the container; sources are host paths.
public enum MountOp: Equatable, Sendable {
    case proc(target: String)
    case sysfs(target: String)
    /// cgroup2, seen from the container's cgroup namespace: its own cgroup is the root.
    case cgroup2(target: String)
    /// The host's /sys, bound read-only (no own network namespace: sysfs refuses).
    case bindSys(target: String)
    case tmpfs(target: String, options: TmpfsOptions, step: Step)
    /// A host device node bound onto an empty file (unprivileged users cannot mknod).
    case device(source: String, target: String)
    case devpts(target: String)
    case mqueue(target: String)
    case symlink(target: String, pointingTo: String)
    /// A host file or directory bound in: /etc files and volumes.
    case bind(source: String, target: String, readOnly: Bool, step: Step)
    /// A directory that must exist (the working directory), made before the
    /// root may become read-only.
    case directory(target: String)
    /// Hides a kernel interface: /dev/null bound over a file, an empty
    /// read-only tmpfs over a directory. One `*` per component matches as a
    /// shell glob; what does not exist on this kernel is skipped.
    case mask(target: String)
    /// Binds a path onto itself, read-only.
    case readOnly(target: String)
    /// Any file system, as an OCI config's mount asks: type, source, mount(2)
    /// flags and data, then `propagation` (MS_SHARED, MS_SLAVE... | MS_REC) if any.
    case filesystem(type: String, source: String, target: String, flags: UInt, data: String?, propagation: UInt)
    /// A host path bound in with mount(2) flags (MS_RDONLY, MS_NOSUID, MS_NODEV,
    /// MS_NOEXEC become mount attributes of the whole tree), recursive or not.
    case bindPath(source: String, target: String, flags: UInt, recursive: Bool, propagation: UInt)
    /// A namespaced sysctl, written through the container's /proc/sys before
    /// the read-only paths close it.
    case sysctl(name: String, value: String)
    /// A device node made with mknod(2) (real root only), owned as asked.
    case deviceNode(target: String, mode: mode_t, device: dev_t, uid: uid_t, gid: gid_t)
    /// A named volume still empty gets the image's content at `target`
    /// (owners, modes, times; the directory's own too), before it is bound there.
    case populateVolume(source: String, target: String)
    /// `-v SRC:DST:U`: SRC's tree chowned to the container's user, from inside
    /// the user namespace, so its owners are ids the container maps.
    case chownTree(path: String, uid: UInt32, gid: UInt32)
}

/// The whole file system of a container as data: built first, narrated and
/// tested as values, then applied top to bottom in the child (bubblewrap's
/// SetupOp list is the model).
///
/// The container's directory on the host holds only `upper` and `work`. In
/// the child's own mount namespace a small tmpfs covers that directory: it is
/// the overlay's mount point and holds the generated /etc files, so neither
/// costs a directory on disk, and all of it vanishes with the namespace.
/// (overlayfs reaches `upper` and `work` through descriptors opened before.)
public struct MountPlan: Equatable, Sendable {
    /// The container's directory, covered by its scratch tmpfs.
    public var scratch: String
    /// Read-only layers, the top one first: names inside `lowerBase`, or absolute paths.
    public var lower: [String]
    /// The directory the layers are in. The overlay is mounted from there,
    /// with short relative names, so that more layers fit in its options.
    public var lowerBase: String?
    public var upper: String
    public var work: String
    /// Skip every sync of the upper layer: for containers whose upper layer is
    /// thrown away anyway, whose unmount would otherwise flush the whole file
    /// system underneath.
    public var volatile: Bool
    /// Files written to the scratch tmpfs; `ops` binds them into place.
    public var files: [GeneratedFile]
    /// Everything mounted inside the new root, in order.
    public var ops: [MountOp]
    /// --read-only: the root itself is remounted read-only after pivot_root.
    public var readOnlyRoot: Bool
    /// A directory that is the root as it is (an OCI bundle's rootfs): bound
    /// onto itself instead of an overlay in a scratch tmpfs.
    public var rootDirectory: String?
    /// The propagation of every mount at the start: private unless a config says otherwise.
    public var rootPropagation = UInt(MS_REC | MS_PRIVATE)

    /// The new root: the bundle's directory, or the overlay inside the scratch tmpfs.
    public var rootfs: String { rootDirectory ?? scratch + "/rootfs" }

    /// An OCI bundle's plan: `root` as it is, then `ops`.
    public static func directory(_ root: String, readOnly: Bool, propagation: UInt?, ops: [MountOp]) -> MountPlan {
        var plan = MountPlan(
            scratch: root, lower: [], lowerBase: nil, upper: "", work: "", volatile: false, files: [], ops: ops,
            readOnlyRoot: readOnly)
        plan.rootDirectory = root
        if let propagation { plan.rootPropagation = propagation }
        return plan
    }

    /// The standard plan: /proc, /sys, a minimal /dev, the /etc files, then
    /// the user's volumes and tmpfs mounts in the order given.
    public static func container(
        scratch: String, lower: [String], lowerBase: String? = nil, upper: String, work: String, volatile: Bool,
        files: [GeneratedFile],
        volumes: [Volume], tmpfs: [TmpfsMount], readOnlyRoot: Bool, ownNetwork: Bool, masked: [String] = [],
        readOnlyPaths: [String] = [], shm: TmpfsOptions = .shm, sysctls: [(name: String, value: String)] = [],
        volumeOwner: (uid: UInt32, gid: UInt32) = (0, 0)
    ) -> MountPlan {
        var ops: [MountOp] = [
            .proc(target: "/proc"),
            ownNetwork ? .sysfs(target: "/sys") : .bindSys(target: "/sys"),
            .cgroup2(target: "/sys/fs/cgroup"),
            .tmpfs(target: "/dev", options: .dev, step: .mountDev),
        ]
        for device in ["null", "zero", "full", "random", "urandom", "tty"] {
            ops.append(.device(source: "/dev/" + device, target: "/dev/" + device))
        }
        ops += [
            .devpts(target: "/dev/pts"),
            .tmpfs(target: "/dev/shm", options: shm, step: .mountShm),
            .mqueue(target: "/dev/mqueue"),
            .symlink(target: "/dev/fd", pointingTo: "/proc/self/fd"),
            .symlink(target: "/dev/stdin", pointingTo: "/proc/self/fd/0"),
            .symlink(target: "/dev/stdout", pointingTo: "/proc/self/fd/1"),
            .symlink(target: "/dev/stderr", pointingTo: "/proc/self/fd/2"),
            .symlink(target: "/dev/ptmx", pointingTo: "pts/ptmx"),
        ]
        for file in files {
            ops.append(.bind(source: scratch + "/" + baseName(of: file.target), target: file.target, readOnly: false, step: .bindEtcFile))
        }
        for volume in volumes {
            if volume.populate { ops.append(.populateVolume(source: volume.source, target: volume.target)) }
            if volume.chownToUser { ops.append(.chownTree(path: volume.source, uid: volumeOwner.uid, gid: volumeOwner.gid)) }
            ops.append(.bind(source: volume.source, target: volume.target, readOnly: volume.readOnly, step: .bindVolume))
        }
        for mount in tmpfs {
            ops.append(.tmpfs(target: mount.target, options: mount.options, step: .mountTmpfs))
        }
        // Before /proc/sys turns read-only.
        ops += sysctls.map { .sysctl(name: $0.name, value: $0.value) }
        // Last, as docker does: a volume cannot uncover a masked path.
        ops += masked.map { .mask(target: $0) } + readOnlyPaths.map { .readOnly(target: $0) }
        return MountPlan(
            scratch: scratch, lower: lower, lowerBase: lowerBase, upper: upper, work: work, volatile: volatile,
            files: files, ops: ops, readOnlyRoot: readOnlyRoot)
    }

    /// With the host's PID namespace no proc of its own can be mounted (the
    /// host's user namespace owns it): the host's /proc is bound, as podman
    /// does. With the host's IPC namespace, its /dev/shm and /dev/mqueue.
    /// Without a cgroup namespace, the host's /sys/fs/cgroup, read-only.
    public mutating func shareHostNamespaces(pid: Bool, ipc: Bool, cgroup: Bool = false) {
        let flags = UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC)
        ops = ops.compactMap { op in
            switch op {
            case .proc(let target) where pid:
                return .bindPath(source: "/proc", target: target, flags: flags, recursive: true, propagation: 0)
            case .tmpfs(let target, _, .mountShm) where ipc:
                return .bindPath(source: "/dev/shm", target: target, flags: UInt(MS_NOSUID | MS_NODEV), recursive: false, propagation: 0)
            case .cgroup2(let target) where cgroup:
                return .bindPath(source: "/sys/fs/cgroup", target: target, flags: flags | UInt(MS_RDONLY), recursive: true, propagation: 0)
            case .mqueue(let target) where ipc:
                return fileStatus("/dev/mqueue").map { _ in .bindPath(source: "/dev/mqueue", target: target, flags: flags, recursive: false, propagation: 0) }
            default:
                return op
            }
        }
    }

    /// Applies the plan in the child, which is root of its user namespace and
    /// owns a fresh mount namespace: / private, scratch and overlay, every op,
    /// then pivot_root.
    /// `beforePivot` runs once everything is mounted and the host's paths
    /// still resolve (an OCI config's createContainer hooks).
    public func apply(beforePivot: () throws(UrunError) -> Void = {}) throws(UrunError) {
        try sys(.makeRootPrivate, explain: "mount(NULL, \"/\", NULL, \(propagationNames(rootPropagation)))") {
            mount(nil, "/", nil, rootPropagation, nil)
        }
        let root: CInt
        if let rootDirectory { root = try bindRoot(rootDirectory) } else { root = try mountRoot() }
        defer { closeQuietly(root) }
        for op in ops { try apply(op, root: root) }
        try beforePivot()
        try pivotRoot(to: rootfs)
        if readOnlyRoot {
            try sys(.remountReadOnly, explain: "mount(NULL, \"/\", NULL, MS_REMOUNT|MS_BIND|MS_RDONLY)", path: "/") {
                mount(nil, "/", nil, UInt(MS_REMOUNT | MS_BIND | MS_RDONLY), nil)
            }
        }
    }

    /// The bundle's root bound onto itself (pivot_root needs a mount); a
    /// descriptor of it.
    private func bindRoot(_ directory: String) throws(UrunError) -> CInt {
        try sys(.bindRoot, explain: "mount(\"\(directory)\", \"\(directory)\", NULL, MS_BIND|MS_REC)", path: directory) {
            mount(directory, directory, nil, UInt(MS_BIND | MS_REC), nil)
        }
        return try sys(.bindRoot, path: directory) { open(directory, CInt(URUN_O_PATH) | O_DIRECTORY | O_CLOEXEC) }
    }

    /// The scratch tmpfs with its files, then the overlay in it; returns a
    /// descriptor of the overlay's root.
    private func mountRoot() throws(UrunError) -> CInt {
        let upperFD = try sys(.mountOverlay, path: upper) { open(upper, CInt(URUN_O_PATH) | O_DIRECTORY | O_CLOEXEC) }
        defer { closeQuietly(upperFD) }
        let workFD = try sys(.mountOverlay, path: work) { open(work, CInt(URUN_O_PATH) | O_DIRECTORY | O_CLOEXEC) }
        defer { closeQuietly(workFD) }
        try sys(
            .mountScratch, explain: "mount(\"tmpfs\", \"\(scratch)\", \"tmpfs\", MS_NOSUID|MS_NODEV, \"size=1m,mode=755\")",
            path: scratch
        ) { mount("tmpfs", scratch, "tmpfs", UInt(MS_NOSUID | MS_NODEV), "size=1m,mode=755") }
        try sys(.mountScratch, path: rootfs) { mkdir(rootfs, 0o755) }
        for file in files { try writeFile(scratch + "/" + baseName(of: file.target), file.content) }

        // userxattr: overlayfs keeps its metadata in user.* xattrs, which an
        // unprivileged mounter may write (Linux 5.11).
        var data = "lowerdir=\(lower.map(escapeOverlayPath).joined(separator: ":")),upperdir=\(procFDPath(upperFD)),workdir=\(procFDPath(workFD)),userxattr"
        if volatile { data += ",volatile" }
        if let lowerBase {
            try sys(.mountOverlay, explain: "chdir(\"\(lowerBase)\")  [lowerdir names are relative to it]", path: lowerBase) {
                chdir(lowerBase)
            }
        }
        try sys(
            .mountOverlay,
            explain: "mount(\"overlay\", \"\(rootfs)\", \"overlay\", 0, \"\(data)\")  [upperdir = \(upper), workdir = \(work)]",
            path: rootfs
        ) { mount("overlay", rootfs, "overlay", 0, data) }
        return try sys(.mountOverlay, path: rootfs) { open(rootfs, CInt(URUN_O_PATH) | O_DIRECTORY | O_CLOEXEC) }
    }

    private func apply(_ op: MountOp, root: CInt) throws(UrunError) {
        let nosuidNodevNoexec = UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC)
        switch op {
        case .proc(let target):
            try mountFilesystem(.mountProc, "proc", "proc", target, root, nosuidNodevNoexec, nil)
        case .sysfs(let target):
            try mountFilesystem(.mountSysfs, "sysfs", "sysfs", target, root, nosuidNodevNoexec | UInt(MS_RDONLY), nil)
        case .cgroup2(let target):
            try mountFilesystem(.mountCgroup, "cgroup2", "cgroup2", target, root, nosuidNodevNoexec | UInt(MS_RDONLY), nil)
        case .bindSys(let target):
            let fd = try openInRoot(root, target, create: .directory, step: .bindSys)
            defer { closeQuietly(fd) }
            try bindTree("/sys", onto: fd, target: target, readOnly: true, step: .bindSys)
        case .tmpfs(let target, let options, let step):
            try mountFilesystem(step, "tmpfs", "tmpfs", target, root, options.flags, options.data)
        case .device(let source, let target):
            let fd = try openInRoot(root, target, create: .file, step: .bindDevice)
            defer { closeQuietly(fd) }
            try sys(.bindDevice, explain: "mount(\"\(source)\", \"\(target)\", NULL, MS_BIND)", path: target) {
                mount(source, procFDPath(fd), nil, UInt(MS_BIND), nil)
            }
        case .devpts(let target):
            // newinstance: a devpts of our own; ptmxmode so that pts/ptmx is usable.
            try mountFilesystem(
                .mountDevpts, "devpts", "devpts", target, root, UInt(MS_NOSUID | MS_NOEXEC),
                "newinstance,ptmxmode=0666,mode=0620")
        case .mqueue(let target):
            try mountFilesystem(.mountMqueue, "mqueue", "mqueue", target, root, nosuidNodevNoexec, nil)
        case .symlink(let target, let destination):
            let parent = try openInRoot(root, parentDirectory(of: target), create: .directory, step: .linkDevice)
            defer { closeQuietly(parent) }
            try sys(.linkDevice, explain: "symlink(\"\(destination)\", \"\(target)\")", path: target) {
                symlinkat(destination, parent, baseName(of: target))
            }
        case .directory(let target):
            closeQuietly(try openInRoot(root, target, create: .directory, step: .changeDirectory))
        case .bind(let source, let target, let readOnly, let step):
            guard let st = fileStatus(source, followLinks: true) else {
                throw .kernel(step, path: source, .current)
            }
            let fd = try openInRoot(root, target, create: isDirectory(st) ? .directory : .file, step: step)
            defer { closeQuietly(fd) }
            try bindTree(source, onto: fd, target: target, readOnly: readOnly, step: step)
        case .mask(let pattern):
            for target in try expandGlob(pattern, root: root) {
                guard let fd = try openIfPresent(root, target, step: .maskPath) else { continue }
                defer { closeQuietly(fd) }
                var st = stat()
                try sys(.maskPath, path: target) { fstat(fd, &st) }
                if isDirectory(st) {
                    try sys(.maskPath, explain: "mount(\"tmpfs\", \"\(target)\", \"tmpfs\", MS_RDONLY, \"size=0\")", path: target) {
                        mount("tmpfs", procFDPath(fd), "tmpfs", nosuidNodevNoexec | UInt(MS_RDONLY), "size=0,mode=555")
                    }
                } else {
                    try sys(.maskPath, explain: "mount(\"/dev/null\", \"\(target)\", NULL, MS_BIND)", path: target) {
                        mount("/dev/null", procFDPath(fd), nil, UInt(MS_BIND), nil)
                    }
                }
            }
        case .readOnly(let target):
            guard let fd = try openIfPresent(root, target, step: .readOnlyPath) else { return }
            defer { closeQuietly(fd) }
            try bindTree(procFDPath(fd), shown: target, onto: fd, target: target, readOnly: true, step: .readOnlyPath)
        case .filesystem(let type, let source, let target, let flags, let data, let propagation):
            try mountFilesystem(.mountFilesystem, source, type, target, root, flags, data)
            if propagation != 0 { try setPropagation(propagation, target, root) }
        case .bindPath(let source, let target, let flags, let recursive, let propagation):
            guard let st = fileStatus(source, followLinks: true) else { throw .kernel(.bindVolume, path: source, .current) }
            let fd = try openInRoot(root, target, create: isDirectory(st) ? .directory : .file, step: .bindVolume)
            defer { closeQuietly(fd) }
            try bindTree(source, onto: fd, target: target, attributes: mountAttributes(flags), recursive: recursive, step: .bindVolume)
            if propagation != 0 { try setPropagation(propagation, target, root) }
        case .sysctl(let name, let value):
            let path = "/proc/sys/" + String(name.map { $0 == "." ? "/" : $0 })
            let fd = try openInRoot(root, parentDirectory(of: path), step: .writeSysctl)
            defer { closeQuietly(fd) }
            let file = try sys(.writeSysctl, explain: "write \(path) \"\(value)\"", path: path) {
                openat(fd, baseName(of: path), O_WRONLY | O_CLOEXEC | O_NOFOLLOW)
            }
            defer { closeQuietly(file) }
            try writeAll(file, value, step: .writeSysctl, path: path)
        case .populateVolume(let source, let target):
            try populate(source, from: target, root: root)
        case .chownTree(let path, let uid, let gid):
            try chownTree(path, uid: uid, gid: gid)
        case .deviceNode(let target, let mode, let device, let uid, let gid):
            let parent = try openInRoot(root, parentDirectory(of: target), create: .directory, step: .bindDevice)
            defer { closeQuietly(parent) }
            unlinkat(parent, baseName(of: target), 0)
            try sys(.bindDevice, explain: "mknod(\"\(target)\")", path: target) { mknodat(parent, baseName(of: target), mode, device) }
            try sys(.bindDevice, path: target) { fchownat(parent, baseName(of: target), uid, gid, AT_SYMLINK_NOFOLLOW) }
        }
    }

    /// mount(2) with a propagation flag on the in-root target.
    private func setPropagation(_ flags: UInt, _ target: String, _ root: CInt) throws(UrunError) {
        let fd = try openInRoot(root, target, step: .mountFilesystem)
        defer { closeQuietly(fd) }
        try sys(.mountFilesystem, explain: "mount(NULL, \"\(target)\", NULL, \(propagationNames(flags)))", path: target) {
            mount(nil, procFDPath(fd), nil, flags, nil)
        }
    }

    /// docker's rule for a new volume: what the image has at `target` is
    /// copied in, as long as the volume is empty (later runs find it filled).
    private func populate(_ source: String, from target: String, root: CInt) throws(UrunError) {
        let volume = try sys(.bindVolume, path: source) { open(source, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
        defer { closeQuietly(volume) }
        guard try directoryEntries(volume, path: source).isEmpty, let found = try openIfPresent(root, target, step: .bindVolume) else { return }
        defer { closeQuietly(found) }
        var st = stat()
        guard fstat(found, &st) == 0, isDirectory(st) else { return }
        Explain.step(.bindVolume, "copy the image's \(target) into the new volume \(source)")
        let image = try sys(.bindVolume, path: target) { open(procFDPath(found), O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        defer { closeQuietly(image) }
        var size: UInt64 = 0
        do throws(UrunError) {
            try TreeMerge(step: .bindVolume, keepsOwners: true).merge(image, display: target, into: volume, size: &size)
        } catch {
            // Half a copy would pass for a filled volume next time: empty again.
            try? removeContents(of: volume, displayPath: source)
            throw error
        }
        _ = fchown(volume, st.st_uid, st.st_gid)
        _ = fchmod(volume, st.st_mode & 0o7777)
    }

    /// `:U`: every entry of the tree at `path` owned by uid:gid; `path` itself
    /// is followed as the bind follows it, nothing below it is.
    private func chownTree(_ path: String, uid: UInt32, gid: UInt32) throws(UrunError) {
        Explain.step(.bindVolume, "chown -R \(uid):\(gid) \(path)")
        let top = try sys(.bindVolume, path: path) { open(path, O_RDONLY | O_CLOEXEC) }
        defer { closeQuietly(top) }
        if fchown(top, uid, gid) != 0 {
            let error = Errno.current
            guard error == .notPermitted else { throw .kernel(.bindVolume, path: path, error) }
            throw .invalid("-v \(path):…:U: cannot chown it to \(uid):\(gid): it belongs to ids the container does not map (its owner or group is neither yours nor a subordinate id)")
        }
        var st = stat()
        guard fstat(top, &st) == 0, isDirectory(st) else { return }
        try TreeWalk().run(top, display: path) { (directory, entry) throws(UrunError) in
            try sys(.bindVolume, path: path + "/…/" + entry.printableName) {
                entry.withCName { fchownat(directory, $0, uid, gid, AT_SYMLINK_NOFOLLOW) }
            }
            return entry.isDirectory ?? true
        }
    }

    /// An in-root descriptor for `target`, or nil when it does not exist.
    private func openIfPresent(_ root: CInt, _ target: String, step: Step) throws(UrunError) -> CInt? {
        do {
            return try openInRoot(root, target, step: step)
        } catch {
            if case .kernel(_, _, let errno) = error, errno == .noSuchFileOrDirectory { return nil }
            throw error
        }
    }

    /// The in-root paths that `pattern` names: components with `*` are
    /// matched (fnmatch(3)) against the directory's entries.
    private func expandGlob(_ pattern: String, root: CInt) throws(UrunError) -> [String] {
        var paths = [""]
        for component in pattern.split(separator: "/").map(String.init) {
            guard component.contains("*") else {
                paths = paths.map { $0 + "/" + component }
                continue
            }
            var matches: [String] = []
            for parent in paths {
                guard let found = try openIfPresent(root, parent.isEmpty ? "/" : parent, step: .maskPath) else { continue }
                // The O_PATH descriptor cannot be read; opening "." through it can.
                let fd = openat(found, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                closeQuietly(found)
                guard fd >= 0 else { continue }
                defer { closeQuietly(fd) }
                let listing = (try? directoryListing(fd, path: parent)) ?? []
                for entry in listing where fnmatch(component, entry.name, 0) == 0 {
                    matches.append(parent + "/" + entry.name)
                }
            }
            paths = matches.sorted()
        }
        return paths
    }

    /// mount(2) of a fresh file system onto an in-root target, reached through
    /// its descriptor so no symlink can redirect it.
    private func mountFilesystem(
        _ step: Step, _ source: String, _ type: String, _ target: String, _ root: CInt, _ flags: UInt, _ data: String?
    ) throws(UrunError) {
        let fd = try openInRoot(root, target, create: .directory, step: step)
        defer { closeQuietly(fd) }
        try sys(
            step,
            explain: "mount(\"\(source)\", \"\(target)\", \"\(type)\", \(mountFlagNames(flags))\(data.map { ", \"\($0)\"" } ?? ""))",
            path: target
        ) { mount(source, procFDPath(fd), type, flags, data) }
    }

    /// A bind mount of a whole tree, its attributes set before it is attached:
    /// open_tree(2) clones the tree, mount_setattr(2) sets the attributes
    /// (MOUNT_ATTR_RDONLY, NOSUID, NODEV, NOEXEC) on every mount in it,
    /// move_mount(2) attaches it onto the target descriptor.
    private func bindTree(
        _ source: String, shown: String? = nil, onto fd: CInt, target: String, readOnly: Bool, step: Step
    ) throws(UrunError) {
        try bindTree(source, shown: shown, onto: fd, target: target, attributes: readOnly ? UInt64(URUN_MOUNT_ATTR_RDONLY) : 0, recursive: true, step: step)
    }

    private func bindTree(
        _ source: String, shown: String? = nil, onto fd: CInt, target: String, attributes: UInt64, recursive: Bool, step: Step
    ) throws(UrunError) {
        let recursion = recursive ? UInt32(URUN_AT_RECURSIVE) : 0
        let call = "open_tree(\"\(shown ?? source)\", OPEN_TREE_CLONE\(recursive ? "|AT_RECURSIVE" : ""))"
            + (attributes != 0 ? " + mount_setattr(\(attributeNames(attributes)))" : "") + " + move_mount(→ \"\(target)\")"
        let tree = try sys(step, explain: call, path: source) {
            urun_open_tree(AT_FDCWD, source, UInt32(URUN_OPEN_TREE_CLONE) | UInt32(O_CLOEXEC) | recursion)
        }
        defer { closeQuietly(tree) }
        if attributes != 0 {
            try sys(step, path: target) {
                urun_mount_setattr(tree, "", UInt32(URUN_AT_EMPTY_PATH) | recursion, attributes, 0)
            }
        }
        try sys(step, path: target) {
            urun_move_mount(tree, "", fd, "", UInt32(URUN_MOVE_MOUNT_F_EMPTY_PATH | URUN_MOVE_MOUNT_T_EMPTY_PATH))
        }
    }
}

/// mount(2)'s MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC as mount_setattr(2)'s attributes.
func mountAttributes(_ flags: UInt) -> UInt64 {
    var attributes: UInt64 = 0
    if flags & UInt(MS_RDONLY) != 0 { attributes |= UInt64(URUN_MOUNT_ATTR_RDONLY) }
    if flags & UInt(MS_NOSUID) != 0 { attributes |= UInt64(URUN_MOUNT_ATTR_NOSUID) }
    if flags & UInt(MS_NODEV) != 0 { attributes |= UInt64(URUN_MOUNT_ATTR_NODEV) }
    if flags & UInt(MS_NOEXEC) != 0 { attributes |= UInt64(URUN_MOUNT_ATTR_NOEXEC) }
    return attributes
}

func attributeNames(_ attributes: UInt64) -> String {
    [(URUN_MOUNT_ATTR_RDONLY, "MOUNT_ATTR_RDONLY"), (URUN_MOUNT_ATTR_NOSUID, "MOUNT_ATTR_NOSUID"),
     (URUN_MOUNT_ATTR_NODEV, "MOUNT_ATTR_NODEV"), (URUN_MOUNT_ATTR_NOEXEC, "MOUNT_ATTR_NOEXEC")]
        .filter { attributes & UInt64($0.0) != 0 }.map(\.1).joined(separator: "|")
}

func propagationNames(_ flags: UInt) -> String {
    let names: [(Int, String)] = [(MS_REC, "MS_REC"), (MS_PRIVATE, "MS_PRIVATE"), (MS_SLAVE, "MS_SLAVE"), (MS_SHARED, "MS_SHARED"), (MS_UNBINDABLE, "MS_UNBINDABLE")]
    return names.filter { flags & UInt($0.0) != 0 }.map(\.1).joined(separator: "|")
}

/// overlayfs splits its options at ',' and lowerdir at ':'; both are escaped with '\'.
public func escapeOverlayPath(_ path: String) -> String {
    var out = ""
    for c in path {
        if c == "," || c == ":" || c == "\\" { out.append("\\") }
        out.append(c)
    }
    return out
}

func mountFlagNames(_ flags: UInt) -> String {
    let names: [(Int, String)] = [
        (MS_RDONLY, "MS_RDONLY"), (MS_NOSUID, "MS_NOSUID"), (MS_NODEV, "MS_NODEV"), (MS_NOEXEC, "MS_NOEXEC"),
        (MS_STRICTATIME, "MS_STRICTATIME"), (MS_NOATIME, "MS_NOATIME"), (MS_SYNCHRONOUS, "MS_SYNCHRONOUS"),
    ]
    let set = names.filter { flags & UInt($0.0) != 0 }.map(\.1)
    return set.isEmpty ? "0" : set.joined(separator: "|")
}
