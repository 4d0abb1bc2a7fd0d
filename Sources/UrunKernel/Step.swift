/// Every kernel step urun takes, in the words a user reads in an error or in
/// `--explain`. Errors and narration share these, so they cannot disagree.
/// The raw value travels through the child's error pipe.
public enum Step: UInt16, Sendable, CaseIterable {
    // user namespace and id maps
    case clone = 1
    case unshareNamespaces
    case denySetgroups
    case writeUIDMap
    case writeGIDMap
    case runNewuidmap
    case runNewgidmap
    case releaseChild
    case unshareCgroup
    case joinNamespaces
    case enterTimeNamespace
    // mounts
    case makeRootPrivate = 20
    case mountScratch
    case mountOverlay
    case makeMountpoint
    case mountProc
    case mountSysfs
    case bindSys
    case mountDev
    case bindDevice
    case mountDevpts
    case mountShm
    case mountMqueue
    case linkDevice
    case bindConsole
    case bindEtcFile
    case bindVolume
    case mountTmpfs
    case maskPath
    case readOnlyPath
    case pivotRoot
    case detachOldRoot
    case remountReadOnly
    case mountFilesystem
    case writeSysctl
    case bindRoot
    // the process
    case setHostname = 50
    case loopbackUp
    case openPty
    case setControllingTTY
    case dropPrivileges
    case closeDescriptors
    case changeDirectory
    case lookupCommand
    case exec
    case forkInit
    case dropCapabilities
    case noNewPrivileges
    case loadSeccomp
    case setRlimits
    case waitForStart
    case setOOMScore
    case setDomainname
    case setPersonality
    // outside the container
    case openImage = 70
    case unpackImage
    case createContainerDir
    case removeContainerDir
    case superviseContainer
    case readFile
    case writeFile
    case startNetworkHelper
    case runHook
    case sendConsole
    case registry
    // cgroups
    case createCgroup = 90
    case enableControllers
    case writeLimit
    case moveToCgroup
    case removeCgroup
    case freezeCgroup
    case killCgroup
    case mountCgroup

    public enum Phase: String, Sendable {
        case userNamespace = "user namespace"
        case mounts = "mounts"
        case rootfs = "root filesystem"
        case process = "process"
        case host = "host"
        case cgroups = "cgroups"
    }

    public var phase: Phase {
        switch self {
        case .clone, .unshareNamespaces, .denySetgroups, .writeUIDMap, .writeGIDMap, .runNewuidmap, .runNewgidmap,
            .releaseChild, .unshareCgroup, .joinNamespaces, .enterTimeNamespace:
            return .userNamespace
        case .makeRootPrivate, .mountScratch, .mountOverlay, .makeMountpoint, .mountProc, .mountSysfs, .bindSys,
            .mountDev, .bindDevice, .mountDevpts, .mountShm, .mountMqueue, .linkDevice, .bindConsole,
            .bindEtcFile, .bindVolume, .mountTmpfs, .maskPath, .readOnlyPath:
            return .mounts
        case .mountFilesystem, .writeSysctl:
            return .mounts
        case .pivotRoot, .detachOldRoot, .remountReadOnly, .bindRoot:
            return .rootfs
        case .setHostname, .loopbackUp, .openPty, .setControllingTTY, .dropPrivileges,
            .closeDescriptors, .changeDirectory, .lookupCommand, .exec, .forkInit, .dropCapabilities,
            .noNewPrivileges, .loadSeccomp, .setRlimits, .waitForStart, .setOOMScore, .setDomainname, .setPersonality, .sendConsole:
            return .process
        case .openImage, .unpackImage, .createContainerDir, .removeContainerDir, .superviseContainer,
            .readFile, .writeFile, .startNetworkHelper, .runHook, .registry:
            return .host
        case .createCgroup, .enableControllers, .writeLimit, .moveToCgroup, .removeCgroup, .freezeCgroup,
            .killCgroup:
            return .cgroups
        case .mountCgroup:
            return .mounts
        }
    }

    /// What the step does, as a short verb phrase ("write uid_map").
    public var phrase: String {
        switch self {
        case .clone: return "clone into new namespaces"
        case .unshareNamespaces: return "create namespaces"
        case .denySetgroups: return "deny setgroups"
        case .writeUIDMap: return "write uid_map"
        case .writeGIDMap: return "write gid_map"
        case .runNewuidmap: return "run newuidmap"
        case .startNetworkHelper: return "start the network helper"
        case .registry: return "talk to a registry"
        case .joinNamespaces: return "join another container's namespaces"
        case .enterTimeNamespace: return "enter a time namespace of its own"
        case .runNewgidmap: return "run newgidmap"
        case .releaseChild: return "release the child"
        case .unshareCgroup: return "create the cgroup namespace"
        case .makeRootPrivate: return "make / recursively private"
        case .mountScratch: return "mount the scratch tmpfs"
        case .mountOverlay: return "mount overlay"
        case .makeMountpoint: return "create mount point"
        case .mountProc: return "mount proc"
        case .mountSysfs: return "mount sysfs"
        case .bindSys: return "bind /sys"
        case .mountDev: return "mount /dev"
        case .bindDevice: return "bind device"
        case .mountDevpts: return "mount devpts"
        case .mountShm: return "mount /dev/shm"
        case .mountMqueue: return "mount mqueue"
        case .linkDevice: return "create /dev symlink"
        case .bindConsole: return "bind /dev/console"
        case .bindEtcFile: return "bind /etc file"
        case .bindVolume: return "bind volume"
        case .mountTmpfs: return "mount tmpfs"
        case .maskPath: return "mask path"
        case .readOnlyPath: return "make path read-only"
        case .pivotRoot: return "pivot_root"
        case .detachOldRoot: return "detach the old root"
        case .remountReadOnly: return "remount the root read-only"
        case .setHostname: return "set hostname"
        case .loopbackUp: return "bring loopback up"
        case .openPty: return "open pty"
        case .setControllingTTY: return "set controlling terminal"
        case .dropPrivileges: return "switch user"
        case .closeDescriptors: return "close inherited descriptors"
        case .changeDirectory: return "change directory"
        case .lookupCommand: return "look up command"
        case .exec: return "exec"
        case .forkInit: return "fork under init"
        case .dropCapabilities: return "set capabilities"
        case .noNewPrivileges: return "set no_new_privs"
        case .loadSeccomp: return "load the seccomp filter"
        case .openImage: return "open image"
        case .unpackImage: return "unpack image"
        case .createContainerDir: return "create container directory"
        case .removeContainerDir: return "remove container directory"
        case .superviseContainer: return "supervise container"
        case .readFile: return "read"
        case .writeFile: return "write"
        case .createCgroup: return "create cgroup"
        case .enableControllers: return "enable controllers"
        case .writeLimit: return "write limit"
        case .moveToCgroup: return "move into cgroup"
        case .removeCgroup: return "remove cgroup"
        case .freezeCgroup: return "freeze cgroup"
        case .killCgroup: return "kill cgroup"
        case .mountCgroup: return "mount cgroup2"
        case .mountFilesystem: return "mount"
        case .writeSysctl: return "set sysctl"
        case .bindRoot: return "bind the root file system"
        case .setRlimits: return "set rlimit"
        case .waitForStart: return "wait for start"
        case .setOOMScore: return "set oom_score_adj"
        case .setDomainname: return "set domain name"
        case .setPersonality: return "set the execution domain"
        case .runHook: return "run hook"
        case .sendConsole: return "send the console to"
        }
    }

    /// One sentence on why the step is taken, for the teaching narration.
    public var why: String {
        switch self {
        case .clone:
            return "the kernel makes the user namespace first, so the child holds every capability over the PID and mount namespaces that come with it"
        case .unshareNamespaces:
            return "the child makes its UTS, IPC and network namespaces while urun writes the maps: a network namespace takes about a millisecond, and the two sides work at once"
        case .denySetgroups:
            return "an unprivileged process may write a gid_map only after giving up setgroups, so it cannot drop groups that deny it access"
        case .writeUIDMap: return "maps the caller's uid to root inside; the child becomes uid 0 of its namespace"
        case .writeGIDMap: return "maps the caller's gid to group 0 inside"
        case .runNewuidmap: return "the setuid helper maps the subordinate uids that /etc/subuid grants"
        case .startNetworkHelper: return "a user-mode helper (pasta or slirp4netns) joins the container's network namespace and relays its traffic through the host's sockets"
        case .joinNamespaces:
            return "--network container:NAME: a short-lived child enters that container's user namespace, which owns its network namespace, and then the network namespace; it clones the container as urun's own child (CLONE_PARENT)"
        case .runNewgidmap: return "the setuid helper maps the subordinate gids that /etc/subgid grants"
        case .releaseChild: return "the maps are written; the child may now act as root of its namespace"
        case .unshareCgroup: return "the container sees its own cgroup as the root of the hierarchy"
        case .makeRootPrivate: return "no mount made in the container propagates back to the host"
        case .mountScratch:
            return "a tmpfs of the container's own covers its directory: the overlay's mount point and the /etc files live there, and vanish with the mount namespace"
        case .mountOverlay:
            return "the image is the shared read-only lower layer; this container's writes go to its own upper directory"
        case .makeMountpoint: return "a mount needs an existing file or directory to cover"
        case .mountProc: return "a fresh /proc shows only the processes of the new PID namespace"
        case .mountSysfs: return "a read-only /sys for the container's own network namespace"
        case .bindSys: return "sysfs cannot be mounted without an own network namespace, so the host's is bound read-only"
        case .mountDev: return "a private /dev holds only the few devices a container needs"
        case .bindDevice:
            return "an unprivileged user cannot create device nodes, so the host's harmless ones are bound in"
        case .mountDevpts: return "a new devpts instance: the container's terminals are its own"
        case .mountShm: return "POSIX shared memory private to the container"
        case .mountMqueue: return "POSIX message queues of the container's IPC namespace"
        case .linkDevice: return "the usual /dev symlinks that programs expect"
        case .bindConsole: return "the container's terminal is its console"
        case .bindEtcFile: return "hostname, hosts and resolv.conf are the container's own, not the image's"
        case .bindVolume: return "a host path shared into the container"
        case .mountTmpfs: return "a memory-backed directory that vanishes with the container"
        case .maskPath: return "hides a host kernel interface the container has no business reading"
        case .readOnlyPath: return "the container may read this kernel interface but not change it"
        case .pivotRoot:
            return "the overlay becomes / for the container; unlike chroot, the old root can then be detached"
        case .detachOldRoot: return "the host's file system is no longer reachable from the container"
        case .remountReadOnly: return "--read-only: the container cannot write to its root"
        case .setHostname: return "the UTS namespace has its own hostname"
        case .loopbackUp: return "a new network namespace starts with loopback down"
        case .openPty: return "a terminal from the container's own devpts"
        case .setControllingTTY: return "the command's session gets the terminal, so ^C and job control work"
        case .dropPrivileges: return "--user: the command runs as that user"
        case .closeDescriptors: return "no descriptor of urun's reaches the command"
        case .changeDirectory: return "the working directory of the command"
        case .lookupCommand: return "the command is searched in the container's PATH"
        case .exec: return "the command replaces urun's code in the container's PID 1"
        case .forkInit: return "--init: urun stays PID 1, reaps orphans and forwards signals"
        case .dropCapabilities:
            return "root of the user namespace keeps only docker's 14 capabilities (bounding, effective, permitted; none inheritable or ambient)"
        case .noNewPrivileges: return "no setuid binary or file capability can raise the privileges of the command or its children"
        case .loadSeccomp:
            return "the last step before exec: only the syscalls of the profile are allowed, the rest fail with EPERM"
        case .openImage: return "the image is read by content, not by its name"
        case .unpackImage: return "each image is unpacked once into the content-addressed cache"
        case .createContainerDir: return "the container's upper and work directories"
        case .removeContainerDir: return "nothing of an ended container is left behind"
        case .superviseContainer: return "urun stays outside as the container's supervisor"
        case .readFile, .writeFile: return ""
        case .createCgroup: return "each container gets a cgroup of its own, below the subtree delegated to you"
        case .enableControllers:
            return "a cgroup hands controllers to its children through cgroup.subtree_control, and only while no process sits in it"
        case .writeLimit: return "the kernel enforces the limit on every process of the cgroup"
        case .moveToCgroup: return "a process enters a cgroup by writing its pid to cgroup.procs"
        case .removeCgroup: return "an empty cgroup is removed with rmdir"
        case .freezeCgroup: return "cgroup.freeze stops every process of the cgroup at once, and thaws them again"
        case .killCgroup: return "cgroup.kill sends SIGKILL to every process of the cgroup at once"
        case .mountCgroup: return "the container sees its own cgroup as the root of /sys/fs/cgroup"
        case .mountFilesystem: return "a mount the bundle's config.json asks for"
        case .writeSysctl: return "a namespaced kernel setting of the container's own (config.json linux.sysctl)"
        case .bindRoot: return "the bundle's root directory is bound onto itself, so that it is a mount pivot_root can switch to"
        case .setRlimits: return "resource limits of the process (config.json process.rlimits)"
        case .waitForStart: return "create is done: the container waits, ready, until start opens its exec FIFO"
        case .setOOMScore: return "how readily the OOM killer picks this process"
        case .setDomainname: return "the UTS namespace has its own NIS domain name"
        case .enterTimeNamespace: return "CLOCK_MONOTONIC and CLOCK_BOOTTIME read with the config's offsets: unshare(CLONE_NEWTIME) makes the namespace for children, the offsets are written before anyone is in it, and setns(time_for_children) moves the init in itself"
        case .setPersonality: return "LINUX32: uname(2) reports a 32-bit machine, as for a 32-bit userland"
        case .runHook: return "a program the engine asked the runtime to run at this point of the container's life"
        case .sendConsole: return "the engine asked for the container's terminal: its master goes over a unix socket"
        case .registry: return "images come from a registry over HTTPS (distribution-spec), in urun-transfer, a process that never clones a container"
        }
    }

    /// Where to read more (man page section references).
    public var manPage: String {
        switch self {
        case .clone: return "clone(2), namespaces(7)"
        case .unshareNamespaces: return "unshare(2), network_namespaces(7)"
        case .denySetgroups, .writeUIDMap, .writeGIDMap: return "user_namespaces(7)"
        case .runNewuidmap: return "newuidmap(1)"
        case .startNetworkHelper: return "pasta(1), slirp4netns(1)"
        case .joinNamespaces: return "setns(2), user_namespaces(7)"
        case .enterTimeNamespace: return "time_namespaces(7)"
        case .runNewgidmap: return "newgidmap(1)"
        case .releaseChild: return "pipe(2)"
        case .unshareCgroup: return "cgroup_namespaces(7)"
        case .makeRootPrivate: return "mount_namespaces(7)"
        case .mountOverlay: return "mount(2), overlayfs"
        case .makeMountpoint: return "mkdir(2)"
        case .mountProc: return "proc(5), pid_namespaces(7)"
        case .mountSysfs, .bindSys: return "sysfs(5)"
        case .mountScratch, .mountDev, .mountShm, .mountTmpfs: return "tmpfs(5)"
        case .bindDevice, .bindConsole, .bindEtcFile, .bindVolume: return "mount(2)"
        case .mountDevpts: return "pts(4)"
        case .mountMqueue: return "mq_overview(7)"
        case .linkDevice: return "symlink(2)"
        case .maskPath, .readOnlyPath, .remountReadOnly: return "mount(2)"
        case .pivotRoot: return "pivot_root(2)"
        case .detachOldRoot: return "umount(2)"
        case .setHostname: return "uts_namespaces(7)"
        case .loopbackUp: return "network_namespaces(7)"
        case .openPty, .setControllingTTY: return "pty(7)"
        case .dropPrivileges: return "setresuid(2)"
        case .closeDescriptors: return "close_range(2)"
        case .changeDirectory: return "chdir(2)"
        case .lookupCommand, .exec: return "execve(2)"
        case .forkInit: return "fork(2)"
        case .dropCapabilities: return "capabilities(7)"
        case .noNewPrivileges: return "prctl(2) PR_SET_NO_NEW_PRIVS"
        case .loadSeccomp: return "seccomp(2)"
        case .openImage, .unpackImage: return "libarchive(3)"
        case .createContainerDir, .removeContainerDir: return "overlayfs"
        case .superviseContainer: return "signalfd(2)"
        case .readFile, .writeFile: return ""
        case .createCgroup, .enableControllers, .writeLimit, .moveToCgroup, .removeCgroup, .freezeCgroup,
            .killCgroup:
            return "cgroups(7)"
        case .mountCgroup: return "cgroup_namespaces(7)"
        case .mountFilesystem, .bindRoot: return "mount(2)"
        case .writeSysctl: return "sysctl(8)"
        case .setRlimits: return "setrlimit(2)"
        case .waitForStart: return "fifo(7)"
        case .setOOMScore: return "proc(5)"
        case .setDomainname: return "setdomainname(2)"
        case .setPersonality: return "personality(2)"
        case .runHook: return "runtime-spec config.md"
        case .sendConsole: return "unix(7) SCM_RIGHTS"
        case .registry: return "distribution-spec"
        }
    }
}
