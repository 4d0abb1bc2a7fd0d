import Glibc
import Testing
import UrunKernel
@testable import UrunOCI

@Suite struct OCIConfigTests {
    func parse(_ text: String) throws(UrunError) -> OCIConfig { try OCIConfig(json: Array(text.utf8), source: "config.json") }

    /// What `urun oci spec` writes is a config urun reads back.
    @Test(arguments: [false, true]) func theDefaultSpecParses(_ rootless: Bool) throws {
        let json = OCIDocuments.spec(rootless: rootless, uid: 1000, gid: 1000)
        let config = try parse(json.pretty())
        #expect(config.process?.args == ["sh"] && config.process?.terminal == true && config.root.path == "rootfs")
        #expect(config.process?.capabilities.bounding == ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"])
        #expect(config.process?.rlimits == [OCIProcess.Rlimit(type: "RLIMIT_NOFILE", soft: 1024, hard: 1024)])
        #expect((config.linux.namespace("user") != nil) == rootless)
        #expect((config.linux.namespace("network") != nil) == !rootless)
        if rootless {
            #expect(config.linux.uidMappings == [OCIConfig.IDMapping(containerID: 0, hostID: 1000, size: 1)])
            #expect(config.mounts.contains { $0.destination == "/sys" && $0.isBind })
        }
    }

    /// crun's own rootless spec, as `crun spec --rootless` writes it.
    @Test func crunsSpecParses() throws {
        let crun = """
            {"ociVersion":"1.0.0","process":{"terminal":true,"user":{"uid":0,"gid":0},"args":["sh"],"env":["PATH=/bin","TERM=xterm"],"cwd":"/",
            "capabilities":{"bounding":["CAP_KILL"],"effective":["CAP_KILL"],"inheritable":[],"permitted":["CAP_KILL"],"ambient":["CAP_KILL"]},
            "rlimits":[{"type":"RLIMIT_NOFILE","hard":1024,"soft":1024}],"noNewPrivileges":true},"root":{"path":"rootfs","readonly":true},
            "hostname":"crun","mounts":[{"destination":"/proc","type":"proc","source":"proc"},
            {"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","strictatime","mode=755","size=65536k"]}],
            "linux":{"resources":{"devices":[{"allow":false,"access":"rwm"}]},"namespaces":[{"type":"pid"},{"type":"network"},{"type":"user"},{"type":"mount"}],
            "maskedPaths":["/proc/kcore"],"readonlyPaths":["/proc/sys"]}}
            """
        let config = try parse(crun)
        #expect(config.process?.capabilities.ambient == ["CAP_KILL"] && config.process?.capabilities.inheritable == [])
        #expect(config.linux.resources?.devicesRestricted == true && config.linux.resources?.settings.isEmpty == true)
        let dev = try OCIMountOptions(config.mounts[1].options)
        #expect(dev.flags == UInt(MS_NOSUID | MS_STRICTATIME) && dev.dataString == "mode=755,size=65536k")
    }

    /// Device rules apply in order, as the device cgroup applies them: only
    /// the last rule over every device says whether devices at large are denied.
    @Test func deviceRulesAreReadInOrder() throws {
        func restricted(_ rules: String) throws -> Bool {
            try parse(#"{"ociVersion":"1.0.0","root":{"path":"r"},"linux":{"resources":{"devices":"# + rules + "}}}").linux.resources?.devicesRestricted == true
        }
        #expect(try restricted(#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}]"#))
        #expect(try !restricted(#"[{"allow":false,"access":"rwm"},{"allow":true,"access":"rwm"}]"#))
        #expect(try !restricted(#"[{"allow":false,"access":"m"}]"#), "mknod alone denied: reading and writing are not")
        #expect(try !restricted(#"[{"allow":false,"type":"b","access":"rwm"}]"#), "block devices only")
        #expect(throws: UrunError.self) { try restricted(#"[{"allow":false,"access":"rwx"}]"#) }
        #expect(throws: UrunError.self) { try restricted(#"[{"access":"rw"}]"#) }
    }

    /// Every field is checked, and the error names the file and the field.
    @Test(arguments: [
        (#"{"ociVersion":"2.0.0","root":{"path":"r"}}"#, "ociVersion: 2.0.0 is not a 1.x"),
        (#"{"ociVersion":"1.0.2"}"#, "root: missing"),
        (#"{"ociVersion":"1.0.2","root":{"path":"r"},"process":{"cwd":"/"}}"#, "process.args: missing"),
        (#"{"ociVersion":"1.0.2","root":{"path":"r"},"process":{"args":["x"],"cwd":"rel"}}"#, "process.cwd: must be an absolute path"),
        (#"{"ociVersion":"1.0.2","root":{"path":"r"},"process":{"args":["x"],"cwd":"/","user":{"uid":4294967296,"gid":0}}}"#, "process.user.uid: expected a whole number"),
        (#"{"ociVersion":"1.0.2","root":{"path":"r"},"process":{"args":["x"],"cwd":"/","user":{"uid":-1,"gid":0}}}"#, "process.user.uid"),
        (#"{"ociVersion":"1.0.2","root":{"path":"r"},"process":{"args":["x"],"cwd":"/","rlimits":[{"type":"RLIMIT_NOFILE","soft":9,"hard":1}]}}"#, "soft: is above hard"),
        (#"{"ociVersion":"1.0.2","root":{"path":"r"},"process":{"args":["x"],"cwd":"/","rlimits":[{"type":"RLIMIT_BOGUS","soft":1,"hard":1}]}}"#, "unknown rlimit"),
        (#"{"ociVersion":"1.0.2","root":{"path":"r"},"process":{"args":["x"],"cwd":"/","oomScoreAdj":5000}}"#, "oomScoreAdj"),
        (#"{"ociVersion":"1.0.2","root":{"path":"r"},"process":{"args":["x"],"cwd":"/","env":["NOEQUALS"]}}"#, "env[0]"),
        (#"{"ociVersion":"1.0.2","root":{"path":"r"},"linux":{"namespaces":[{"type":"pid"},{"type":"pid"}]}}"#, "listed twice"),
        (#"{"ociVersion":"1.0.2","root":{"path":"r"},"linux":{"namespaces":[{"type":"bogus"}]}}"#, "unknown namespace"),
        (#"{"ociVersion":"1.0.2","root":{"path":"r"},"linux":{"uidMappings":[{"containerID":0,"hostID":4294967295,"size":2}]}}"#, "passes 2^32"),
        (#"{"ociVersion":"1.0.2","root":{"path":"r"},"linux":{"rootfsPropagation":"sideways"}}"#, "unknown propagation"),
        (#"{"ociVersion":"1.0.2","root":{"path":"r"},"linux":{"resources":{"memory":{"limit":-5}}}}"#, "memory.limit"),
        (#"{"ociVersion":"1.0.2","root":{"path":"r"},"linux":{"resources":{"cpu":{"cpus":"0-99999999999"}}}}"#, "cpu.cpus"),
        (#"{"ociVersion":"1.0.2","root":{"path":"r"},"linux":{"resources":{"unified":{"../../x":"1"}}}}"#, "unified"),
        (#"{"ociVersion":"1.0.2","root":{"path":"r"},"mounts":[{"destination":"rel"}]}"#, "mounts[0].destination"),
        (#"{"ociVersion":"1.0.2","root":{"path":"r"},"hooks":{"prestart":[{"path":"/x","timeout":0}]}}"#, "hooks.prestart[0].timeout"),
    ])
    func badFieldsAreNamed(_ text: String, _ expected: String) {
        do {
            _ = try parse(text)
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.description.hasPrefix("config.json: "), "\(error)")
            #expect(error.description.contains(expected), "\(error)")
        }
    }

    /// linux.resources become the v2 files runc and crun write.
    @Test func resourcesTranslateToCgroupV2() throws {
        let config = try parse(#"""
            {"ociVersion":"1.1.0","root":{"path":"r"},"linux":{"resources":{
              "memory":{"limit":33554432,"reservation":16777216,"swap":67108864},
              "cpu":{"shares":1024,"quota":50000,"period":100000,"cpus":"0-1","mems":"0"},
              "pids":{"limit":20},"blockIO":{"weight":500,"throttleWriteBpsDevice":[{"major":8,"minor":0,"rate":1048576}]},
              "unified":{"memory.high":"30000000"}}}}
            """#)
        let files = Dictionary((config.linux.resources?.settings ?? []).map { ($0.file, $0.value) }, uniquingKeysWith: { $1 })
        #expect(files["memory.max"] == "33554432" && files["memory.low"] == "16777216" && files["memory.swap.max"] == "33554432")
        #expect(files["cpu.weight"] == "39" && files["cpu.max"] == "50000 100000")
        #expect(files["cpuset.cpus"] == "0-1" && files["cpuset.mems"] == "0" && files["pids.max"] == "20")
        #expect(files["io.weight"] == "default 4950" && files["io.max"] == "8:0 wbps=1048576" && files["memory.high"] == "30000000")
    }

    @Test func mountOptionsSplitIntoFlagsPropagationAndData() throws {
        let o = try OCIMountOptions(["rbind", "ro", "nosuid", "rslave", "size=1m", "tmpcopyup", "exec", "noexec"])
        #expect(o.bind && o.recursive && o.readOnly)
        #expect(o.flags == UInt(MS_RDONLY | MS_NOSUID | MS_NOEXEC))
        #expect(o.propagation == OCIMount.propagation["rslave"] && o.data == ["size=1m"])
        #expect(throws: UrunError.self) { try OCIMountOptions(["idmap"]) }
        #expect(throws: UrunError.self) { try OCIMountOptions(["size=1m,uid=0"]) }
    }

    @Test func theStateDocumentIsTheSpecsShape() throws {
        let state = OCIDocuments.state(id: "c1", status: "stopped", pid: 42, bundle: "/b", annotations: ["a": "b"], created: nil)
        #expect(state["ociVersion"]?.string == OCIDocuments.specVersion && state["status"]?.string == "stopped")
        #expect(state["pid"]?.int == 0, "a stopped container has no pid")
        #expect(state["annotations"]?["a"]?.string == "b")
    }
}
