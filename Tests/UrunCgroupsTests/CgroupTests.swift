import Glibc
import Testing
import UrunTestSupport
import UrunKernel
@testable import UrunCgroups

@Suite struct HierarchyTests {
    let hybrid = """
        31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
        35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
        41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
        """
    let unified = "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"

    @Test func findsTheHybridLayout() throws {
        let h = try #require(CgroupHierarchy.parse(mountinfo: hybrid, procSelfCgroup: "4:memory:/x\n0::/urun-test\n"))
        #expect(h.layout == .hybrid)
        #expect(h.mountPoint == "/sys/fs/cgroup/unified")
        #expect(h.own.path == "/sys/fs/cgroup/unified/urun-test")
    }

    @Test func findsThePureLayoutAndTheRoot() throws {
        let user = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/run-1.scope\n"
        let h = try #require(CgroupHierarchy.parse(mountinfo: unified, procSelfCgroup: user))
        #expect(h.layout == .unified)
        #expect(h.own.path == "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice/run-1.scope")
        let root = try #require(CgroupHierarchy.parse(mountinfo: unified, procSelfCgroup: "0::/\n"))
        #expect(root.own.path == "/sys/fs/cgroup")
    }

    @Test func aHierarchyMountedOverTheHybridOneIsTheOneUsed() throws {
        // containerd's private namespace in the shared notes: cgroup2 over /sys/fs/cgroup hides
        // the hybrid tree, /sys/fs/cgroup/unified included.
        let covered = hybrid + "\n52 31 0:38 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw\n"
        let h = try #require(CgroupHierarchy.parse(mountinfo: covered, procSelfCgroup: "4:memory:/x\n0::/pod\n"))
        #expect(h.mountPoint == "/sys/fs/cgroup")
        #expect(h.layout == .unified)
        #expect(h.own.path == "/sys/fs/cgroup/pod")
    }

    @Test func noCgroup2OrAnUnreachablePathIsNil() {
        #expect(CgroupHierarchy.parse(mountinfo: "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n", procSelfCgroup: "0::/\n") == nil)
        #expect(CgroupHierarchy.parse(mountinfo: unified, procSelfCgroup: "0::/../../elsewhere\n") == nil)
    }

    @Test(.requiring(CgroupHierarchy.discover() != nil, "this host mounts no cgroup v2 hierarchy"))
    func theRealHostIsRead() throws {
        // Whatever this host is, discovery must agree with /proc.
        let h = try #require(CgroupHierarchy.discover())
        #expect(access(h.own.path + "/cgroup.procs", F_OK) == 0)
        #expect((try? h.own.processes())?.contains(getpid()) == true)
    }
}

/// A fake cgroupfs tree: plain files in a temporary directory. This checks
/// the parsing of what the kernel writes; the real cgroups are exercised by
/// the integration tests.
@Suite struct FakeCgroupTests {
    func tree(_ files: [String: String]) throws -> Cgroup {
        var template = Array("/tmp/urun-fake-cgroup-XXXXXX".utf8CString)
        let path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
        for (name, content) in files { try writeFile(path + "/" + name, content) }
        return Cgroup(path: path)
    }

    @Test func readsControllersEventsAndStatistics() throws {
        let cgroup = try tree([
            "cgroup.controllers": "cpuset cpu io memory hugetlb pids\n",
            "cgroup.subtree_control": "memory pids\n",
            "cgroup.events": "populated 1\nfrozen 0\n",
            "memory.events": "low 0\nhigh 0\nmax 12\noom 3\noom_kill 1\noom_group_kill 0\n",
            "memory.current": "33554432\n", "memory.max": "33554432\n",
            "cpu.stat": "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n", "pids.current": "7\n",
            "io.stat": "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n8:16 rbytes=1 wbytes=2 rios=1 wios=1\n",
            "cgroup.procs": "12\n34\n",
        ])
        defer { try? removeTree(cgroup.path) }
        #expect(try cgroup.controllers() == ["cpuset", "cpu", "io", "memory", "hugetlb", "pids"])
        #expect(try cgroup.subtreeControl() == ["memory", "pids"])
        #expect(cgroup.isPopulated && !cgroup.isFrozen)
        #expect(cgroup.oomKills == 1)
        #expect(try cgroup.processes() == [12, 34])
        let stats = cgroup.statistics()
        #expect(stats.memoryBytes == 33_554_432 && stats.memoryLimit == 33_554_432)
        #expect(stats.cpuMicroseconds == 1500 && stats.processes == 7)
        #expect(stats.ioReadBytes == 4097 && stats.ioWrittenBytes == 8194)
        let message = ContainerCgroup(cgroup: cgroup, limits: try { var l = ResourceLimits(); try l.setMemory("32m"); return l }()).oomMessage()
        #expect(message == "the container was killed by the OOM killer: it reached its memory limit of 32 MiB")
    }
}

@Suite struct LimitTests {
    @Test(arguments: [
        ("512m", UInt64(512) << 20), ("2g", UInt64(2) << 30), ("10mb", UInt64(10) << 20), ("64MiB", UInt64(64) << 20),
        ("1048576", UInt64(1_048_576)), ("1024k", UInt64(1) << 20), ("100b", UInt64(100)),
    ])
    func sizes(_ text: String, _ bytes: UInt64) throws {
        #expect(try ResourceLimits.bytes(text, flag: "--memory") == bytes)
    }

    @Test(arguments: ["12qq", "-5m", "", "m", "0", "1.5g", "99999999999999999999t"])
    func badSizesAreRejected(_ text: String) {
        #expect(throws: UrunError.self) { try ResourceLimits.bytes(text, flag: "--memory") }
    }

    @Test func eachFlagMapsToItsFile() throws {
        var limits = ResourceLimits()
        try limits.setMemory("32m")
        try limits.setMemorySwap("64m")
        try limits.setMemoryReservation("16m")
        try limits.setCPUs("0.5", available: 4)
        try limits.setCPUShares("1024")
        try limits.setCPUSet("0-1,3", mems: false, available: 4)
        try limits.setCPUSet("0", mems: true, available: 4)
        try limits.setPidsLimit("20")
        try limits.setBlkioWeight("500")
        let files = Dictionary(uniqueKeysWithValues: limits.settings.map { ($0.file, $0.value) })
        #expect(files["memory.max"] == "33554432")
        #expect(files["memory.swap.max"] == "33554432")
        #expect(files["memory.low"] == "16777216")
        #expect(files["cpu.max"] == "50000 100000")
        #expect(files["cpu.weight"] == "39")  // docker's default 1024 shares is weight 39, as runc and crun convert
        #expect(files["cpuset.cpus"] == "0-1,3")
        #expect(files["cpuset.mems"] == "0")
        #expect(files["pids.max"] == "20")
        #expect(files["io.weight"] == "default 4950")
        #expect(limits.controllers == ["memory", "cpu", "cpuset", "pids", "io"])
    }

    @Test func valuesAreCheckedBeforeAnythingIsCreated() {
        var limits = ResourceLimits()
        #expect(throws: UrunError.usage("--memory 1m: the minimum is 6m")) { try limits.setMemory("1m") }
        #expect(throws: UrunError.usage("--cpus 64: this machine has 4 CPUs")) { try limits.setCPUs("64", available: 4) }
        #expect(throws: UrunError.self) { try limits.setCPUs("-1", available: 4) }
        #expect(throws: UrunError.self) { try limits.setCPUSet("0-9", mems: false, available: 4) }
        #expect(throws: UrunError.self) { try limits.setCPUSet("3-1", mems: false, available: 4) }
        // A range is bounded before it is expanded: no array of 10^13 numbers.
        #expect(throws: UrunError.self) { try limits.setCPUSet("0-9999999999999", mems: true, available: 4) }
        #expect(throws: UrunError.self) { try limits.setCPUSet("0-99999999999999999999", mems: false, available: 4) }
        #expect(throws: UrunError.self) { try limits.setCPUShares("1") }
        #expect(throws: UrunError.self) { try limits.setPidsLimit("lots") }
        #expect(throws: UrunError.self) { try limits.setMemorySwap("64m") }  // without --memory
        #expect(throws: UrunError.self) { try limits.setDeviceLimit("/etc/passwd:1m", .readBPS) }
        #expect(limits.isEmpty)
    }

    @Test func unlimitedValues() throws {
        var limits = ResourceLimits()
        try limits.setPidsLimit("-1")
        try limits.setMemorySwap("-1")
        #expect(limits.settings.map(\.value) == ["max", "max"])
    }

    /// The first block device node in /dev, found through /sys/class/block.
    static let blockDevice: String? = {
        let names = (try? directoryEntries("/sys/class/block")) ?? []
        return names.sorted().map { "/dev/" + $0 }.first { fileStatus($0, followLinks: true).map { $0.st_mode & S_IFMT == S_IFBLK } ?? false }
    }()

    @Test(.requiring(blockDevice != nil, "this host has no block device node in /dev"))
    func deviceLimitsNameTheDeviceNumbers() throws {
        let device = try #require(Self.blockDevice)
        var limits = ResourceLimits()
        try limits.setDeviceLimit(device + ":1mb", .writeBPS)
        var st = stat()
        stat(device, &st)
        let major = (st.st_rdev >> 8) & 0xfff
        #expect(limits.settings.first?.value.hasPrefix("\(major):") == true)
        #expect(limits.settings.first?.value.hasSuffix(" wbps=1048576") == true)
    }
}
