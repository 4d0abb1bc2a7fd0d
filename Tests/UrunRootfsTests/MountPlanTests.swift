import Glibc
import Testing
import UrunKernel
@testable import UrunRootfs

@Suite struct MountPlanTests {
    func plan(ownNetwork: Bool = true, readOnly: Bool = false) -> MountPlan {
        MountPlan.container(
            scratch: "/c", lower: ["/cache/x"], upper: "/c/upper", work: "/c/work", volatile: true,
            files: [GeneratedFile(target: "/etc/hostname", content: "h\n")],
            volumes: [Volume(source: "/home/u/src", target: "/src", readOnly: true)],
            tmpfs: [TmpfsMount(target: "/run", options: TmpfsOptions(flags: 0, data: "size=1m"))],
            readOnlyRoot: readOnly, ownNetwork: ownNetwork)
    }

    @Test func procSysDevComeFirst() {
        let plan = plan()
        #expect(plan.rootfs == "/c/rootfs")
        #expect(plan.ops[0] == .proc(target: "/proc"))
        #expect(plan.ops[1] == .sysfs(target: "/sys"))
        #expect(plan.ops[2] == .cgroup2(target: "/sys/fs/cgroup"))
        #expect(plan.ops[3] == .tmpfs(target: "/dev", options: .dev, step: .mountDev))
    }

    @Test func minimalDevHasTheUsualDevicesAndLinks() {
        let ops = plan().ops
        for device in ["null", "zero", "full", "random", "urandom", "tty"] {
            #expect(ops.contains(.device(source: "/dev/" + device, target: "/dev/" + device)))
        }
        #expect(ops.contains(.devpts(target: "/dev/pts")))
        #expect(ops.contains(.symlink(target: "/dev/ptmx", pointingTo: "pts/ptmx")))
        #expect(ops.contains(.symlink(target: "/dev/fd", pointingTo: "/proc/self/fd")))
        #expect(ops.contains(.mqueue(target: "/dev/mqueue")))
    }

    @Test func userMountsComeAfterTheDefaultsInOrder() {
        let ops = plan().ops
        let volume = ops.firstIndex(of: .bind(source: "/home/u/src", target: "/src", readOnly: true, step: .bindVolume))!
        let tmpfs = ops.firstIndex { if case .tmpfs(target: "/run", _, _) = $0 { return true } else { return false } }!
        let files = ops.firstIndex(of: .bind(source: "/c/hostname", target: "/etc/hostname", readOnly: false, step: .bindEtcFile))!
        #expect(files < volume && volume < tmpfs)
    }

    @Test func maskedAndReadOnlyPathsComeLast() {
        let plan = MountPlan.container(
            scratch: "/c", lower: ["/l"], upper: "/c/upper", work: "/c/work", volatile: false, files: [],
            volumes: [Volume(source: "/v", target: "/proc/keys", readOnly: false)], tmpfs: [], readOnlyRoot: false,
            ownNetwork: true, masked: ["/proc/keys", "/sys/devices/system/cpu/cpu*/thermal_throttle"],
            readOnlyPaths: ["/proc/sys"])
        // After the volumes: a volume cannot uncover a masked path.
        #expect(Array(plan.ops.suffix(3)) == [
            .mask(target: "/proc/keys"), .mask(target: "/sys/devices/system/cpu/cpu*/thermal_throttle"),
            .readOnly(target: "/proc/sys"),
        ])
    }

    @Test func hostNetworkBindsSysInstead() {
        #expect(plan(ownNetwork: false).ops[1] == .bindSys(target: "/sys"))
    }

    @Test func overlayPathsAreEscaped() {
        #expect(escapeOverlayPath("/a,b:c\\d") == "/a\\,b\\:c\\\\d")
    }
}

@Suite struct OptionParsingTests {
    @Test func tmpfsDefaultsAreDockers() throws {
        let mount = try TmpfsMount.parse("/run")
        #expect(mount.options.flags == UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC))
        #expect(mount.options.data == "")
    }

    @Test func tmpfsOptionsLiftAndSet() throws {
        let mount = try TmpfsMount.parse("/scratch:size=64m,mode=1777,exec,ro")
        #expect(mount.options.flags & UInt(MS_NOEXEC) == 0)
        #expect(mount.options.flags & UInt(MS_RDONLY) != 0)
        #expect(mount.options.data == "size=64m,mode=1777")
    }

    @Test(arguments: ["run", "/run:size=lots", "/run:mode=999", "/run:bogus", "/run:uid=x"])
    func badTmpfsIsRejected(_ spec: String) {
        #expect(throws: UrunError.self) { try TmpfsMount.parse(spec) }
    }

    @Test func volumesNeedAnExistingSourceAndAbsoluteTarget() throws {
        let volume = try Volume.parse("/etc:/host-etc:ro")
        #expect(volume == Volume(source: "/etc", target: "/host-etc", readOnly: true))
        #expect(try Volume.parse("/tmp:/t").readOnly == false)
        #expect(throws: UrunError.self) { try Volume.parse("/no/such/dir:/x") }
        #expect(throws: UrunError.self) { try Volume.parse("/etc:relative") }
        #expect(throws: UrunError.self) { try Volume.parse("/etc") }
        #expect(throws: UrunError.self) { try Volume.parse("/etc:/x:rx") }
        // Nothing is mounted over the container's root, however the target is spelt.
        for root in ["/", "//", "/.", "/tmp/..", "/./x/../"] {
            #expect(throws: UrunError.self, "\(root)") { try Volume.parse("/tmp:" + root) }
            #expect(throws: UrunError.self, "\(root)") { try TmpfsMount.parse(root) }
        }
        #expect(try Volume.parse("/tmp:/x/..y").target == "/x/..y")
    }
}
