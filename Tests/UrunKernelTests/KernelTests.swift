import Glibc
import Testing
import UrunKernel

@Suite struct MountInfoTests {
    @Test func parsesOptionalFieldsAndEscapes() {
        let text = """
            36 35 98:0 /mnt1 /mnt\\040with\\040space rw,noatime master:1 - ext3 /dev/root rw,errors=continue
            41 23 0:38 / /sys/fs/cgroup/unified rw,relatime shared:7 - cgroup2 cgroup2 rw
            garbage line
            """
        let mounts = MountInfo.parse(text)
        #expect(mounts.count == 2)
        #expect(mounts[0].mountPoint == "/mnt with space")
        #expect(mounts[0].fsType == "ext3")
        #expect(mounts[0].root == "/mnt1")
        #expect(mounts[0].options == ["rw", "noatime"])
        #expect(mounts[1].fsType == "cgroup2")
        #expect(mounts[1].superOptions == ["rw"])
    }

    @Test func readsTheRealTable() throws {
        let mounts = try MountInfo.current()
        #expect(mounts.contains { $0.mountPoint == "/" })
        #expect(mounts.contains { $0.fsType == "proc" })
    }
}

@Suite struct ErrorTests {
    @Test(arguments: [
        UrunError.kernel(.mountOverlay, path: "/x,y", .invalidArgument), .kernel(.exec, path: nil, .notPermitted),
        .invalid("bad ünïcode"), .commandNotFound("nope"), .notExecutable("/etc/passwd", .permissionDenied),
        .usage("unknown flag"),
    ])
    func recordRoundTrips(_ error: UrunError) {
        #expect(UrunError(record: error.record()) == error)
    }

    @Test func malformedRecordsAreRejected() {
        #expect(UrunError(record: []) == nil)
        #expect(UrunError(record: [9, 0, 0, 0, 0, 0, 0, 0, 0]) == nil)
        #expect(UrunError(record: [2, 0, 0, 0, 0, 0, 0, 5, 0, 65]) == nil)
    }

    @Test func exitCodesFollowDocker() {
        #expect(UrunError.commandNotFound("x").exitCode == 127)
        #expect(UrunError.notExecutable("x", .permissionDenied).exitCode == 126)
        #expect(UrunError.invalid("x").exitCode == 125)
        #expect(UrunError.kernel(.clone, path: nil, .notPermitted).exitCode == 125)
    }

    @Test func messagesNameStepPathAndErrno() {
        let message = UrunError.kernel(.bindVolume, path: "/data", .noSuchFileOrDirectory).description
        #expect(message == "bind volume /data: no such file or directory (ENOENT)")
    }

    @Test func kernelVersionIsRead() throws {
        let version = try #require(KernelVersion.running)
        #expect(version >= KernelVersion(3, 0))
    }
}

@Suite struct UsersTests {
    @Test func parsesPasswdAndGroup() {
        let users = PasswdEntry.parse("root:x:0:0:root:/root:/bin/sh\nbroken\napp:x:1000:100::/home/app:/bin/sh\n")
        #expect(users.map(\.name) == ["root", "app"])
        #expect(users[1].gid == 100 && users[1].home == "/home/app")
        let groups = GroupEntry.parse("staff:x:50:app,bob\nwheel:x:10:\n")
        #expect(groups[0].members == ["app", "bob"])
        #expect(groups[1].members.isEmpty)
    }
}

@Suite struct HumanSizeTests {
    @Test(arguments: [
        (0, "0B"), (999, "999B"), (1000, "1kB"), (1500, "1.5kB"), (1982256, "1.98MB"),
        (2140160, "2.14MB"), (12_345_678, "12.3MB"), (999_700, "1MB"), (105_000_000, "105MB"),
        (7_800_000_000, "7.8GB"), (1_050_000, "1.05MB"),
    ] as [(UInt64, String)])
    func sizesReadAsDockersDo(bytes: UInt64, text: String) {
        #expect(humanSize(bytes) == text)
    }

    @Test func memoryReadsInBinaryUnits() {
        #expect(humanSize(1536 * 1024, binary: true) == "1.5MiB")
        #expect(humanSize(8 << 30, binary: true) == "8GiB")
        #expect(humanSize(1023, binary: true) == "1023B")
    }
}
