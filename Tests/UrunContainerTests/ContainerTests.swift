import Glibc
import Testing
import UrunKernel
import UrunProcess
@testable import UrunContainer

@Suite struct EnvironmentTests {
    @Test func cleanEnvironmentWithOverrides() {
        let env = ContainerEnvironment.build(
            hostname: "box", home: "/root", user: ["PATH=/custom", "A=1", "A=2"])
        #expect(env.first == "HOSTNAME=box")
        #expect(env.contains("PATH=/custom"))
        #expect(env.contains("TERM=xterm") && env.contains("container=urun"))
        #expect(env.filter { $0.hasPrefix("A=") } == ["A=2"])
        #expect(!env.contains { $0.hasPrefix("USER=") })
    }

    @Test func bareNamesComeFromUrunsEnvironment() throws {
        setenv("URUN_TEST_VALUE", "from host", 1)
        #expect(try ContainerEnvironment.fromFlags(["URUN_TEST_VALUE", "URUN_TEST_UNSET_X", "K=v"]) == ["URUN_TEST_VALUE=from host", "K=v"])
    }

    @Test func envFile() throws {
        let env = try ContainerEnvironment.parseFile("# comment\n\nA=1\nB=two words\n", path: "f")
        #expect(env == ["A=1", "B=two words"])
        #expect(throws: UrunError.self) { try ContainerEnvironment.parseFile("bad key=1\n", path: "f") }
    }

    /// docker refuses these names too: no program could read them back.
    @Test(arguments: ["=x", "A B=1", "A\tB=1", "A\nB=1", "\u{1B}[31m=x", ""])
    func badNamesAreRefused(_ entry: String) {
        #expect(throws: UrunError.self) { try ContainerEnvironment.fromFlags([entry]) }
    }

    @Test func valuesMayHoldAnything() throws {
        // A value may span lines (a certificate, a script): only names are checked.
        #expect(try ContainerEnvironment.fromFlags(["CERT=a\nb", "EMPTY="]) == ["CERT=a\nb", "EMPTY="])
    }
}

@Suite struct EtcFilesTests {
    let host = "search example.com\nnameserver 127.0.0.53\nnameserver 10.0.0.1\noptions edns0\n"

    @Test func loopbackNameserversAreDroppedInAPrivateNetwork() {
        let text = EtcFiles.resolvConf(network: .none, helper: nil, host: host, dns: [], search: [], options: [])
        #expect(!text.contains("127.0.0.53"))
        #expect(text.contains("nameserver 10.0.0.1"))
        #expect(text.contains("search example.com"))
        #expect(EtcFiles.resolvConf(network: .host, helper: nil, host: host, dns: [], search: [], options: []) == host)
    }

    @Test func theHelperForwardsDNSAndFlagsReplaceTheDefaults() {
        let connected = EtcFiles.resolvConf(network: .auto, helper: .pasta, host: host, dns: [], search: [], options: [])
        #expect(connected.split(separator: "\n").filter { $0.hasPrefix("nameserver") } == ["nameserver 169.254.1.1"])
        #expect(connected.contains("search example.com") && connected.contains("options edns0"))
        let slirp = EtcFiles.resolvConf(network: .slirp4netns, helper: .slirp4netns, host: host, dns: [], search: [], options: [])
        #expect(slirp.split(separator: "\n").filter { $0.hasPrefix("nameserver") } == ["nameserver 10.0.2.3"])
        #expect(EtcFiles.hostAddress(.slirp4netns) == "10.0.2.2")
        let flags = EtcFiles.resolvConf(
            network: .private, helper: .pasta, host: host, dns: ["9.9.9.9", "1.1.1.1"], search: ["a.test", "b.test"], options: ["ndots:2"])
        #expect(flags == "search a.test b.test\noptions ndots:2\nnameserver 9.9.9.9\nnameserver 1.1.1.1\n")
    }

    @Test func hostsNamesTheContainerTheHostAndExtraHosts() {
        #expect(EtcFiles.hosts(hostname: "box", network: .none, gateway: nil, extra: []).contains("127.0.1.1\tbox"))
        let connected = EtcFiles.hosts(hostname: "box", network: .private, gateway: "192.0.2.1", extra: ["db:10.1.2.3", "v6:fd00::9"])
        #expect(connected.contains("192.0.2.1\thost.containers.internal"))
        #expect(connected.hasSuffix("10.1.2.3\tdb\nfd00::9\tv6\n"))
    }
}

@Suite struct ContainerUserTests {
    @Test func resolvesNamesAndNumbersInTheImage() throws {
        let root = "/tmp/urun-unit-user-\(getpid())"
        try makeDirectories(root + "/etc", mode: 0o755)
        defer { try? removeTree(root) }
        try writeFile(root + "/etc/passwd", "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
        try writeFile(root + "/etc/group", "root:x:0:\nstaff:x:50:app\n")
        let root0 = try ContainerUser.resolve(nil, rootfs: root)
        #expect(root0.uid == 0 && root0.gid == 0 && root0.home == "/root" && root0.groups == [0])
        let app = try ContainerUser.resolve("app", rootfs: root)
        #expect(app.uid == 1000 && app.gid == 1000 && app.home == "/home/app")
        #expect(app.groups == [1000, 50], "initgroups: the primary group, then the ones that list app")
        #expect(try ContainerUser.resolve("app:staff", rootfs: root).gid == 50)
        #expect(try ContainerUser.resolve("app:staff", rootfs: root).groups == [50])
        let number = try ContainerUser.resolve("4242", rootfs: root)
        #expect(number.uid == 4242 && number.gid == 0 && number.home == "/" && number.groups == [0])
        #expect(try ContainerUser.resolve("4242:7", rootfs: root).gid == 7)
        #expect(throws: UrunError.self) { try ContainerUser.resolve("nobody", rootfs: root) }
        #expect(throws: UrunError.self) { try ContainerUser.resolve("app:nogroup", rootfs: root) }
    }
}

/// A state file is read back, whatever numbers it holds, without a trap.
@Suite struct StateRecordTests {
    @Test func outOfRangeNumbersAreDropped() throws {
        let json = try JSON(parsing: #"{"status":"running","pid":99999999999,"exitCode":-99999999999,"pidStartTime":-1,"monitorPid":1,"monitorStartTime":2}"#)
        let state = ContainerState(json: json)
        #expect(state.pid == 0 && state.exitCode == nil && state.pidStartTime == 0)
        #expect(state.monitor == ProcessIdentity(pid: 1, startTime: 2))
        #expect(ContainerState(json: state.json).monitor == state.monitor, "the supervisor survives a round trip")
    }
}
