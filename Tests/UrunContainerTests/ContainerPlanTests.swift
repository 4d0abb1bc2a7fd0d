import Glibc
import Testing
import UrunCgroups
import UrunImage
import UrunKernel
import UrunOCI
import UrunRootfs
import UrunSecurity
import UrunUserNS
@testable import UrunContainer

/// The plan both front ends compile into, built as a value: from `urun
/// run`'s options and from a config.json, and written back as one.
@Suite struct ContainerPlanTests {
    /// A one-layer "image" directory with the files user lookup reads.
    func image() -> Image {
        var template = Array("/tmp/urun-plan-XXXXXX".utf8CString)
        let layer = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
        mkdir(layer + "/etc", 0o755)
        try? writeFile(layer + "/etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
        try? writeFile(layer + "/etc/group", "root:x:0:\napp:x:1000:\n")
        return Image(id: "abc", names: ["test"], layers: [layer], layerBase: nil, config: nil, lease: nil)
    }

    func runSpec() throws -> ContainerSpec {
        var spec = ContainerSpec(image: "test.tar")
        spec.command = ["sh", "-c", "echo hi"]
        spec.hostname = "box"
        spec.environment = ["GREETING=hi"]
        spec.workingDirectory = "/work"
        spec.volumes = [Volume(source: "/srv/data", target: "/data", readOnly: true)]
        spec.network = .none
        spec.userNamespace = .single
        try spec.limits.setMemory("64m")
        return spec
    }

    @Test func urunRunsOptionsCompileIntoAPlan() throws {
        let image = image()
        defer { try? removeTree(image.layers[0]) }
        let directory = ContainerDirectory(in: "/tmp/urun-plan-containers")
        let plan = try ContainerPlan.run(try runSpec(), image: image, directory: directory, ephemeral: true, joined: nil, helper: nil)
        #expect(plan.process.args == ["sh", "-c", "echo hi"])
        #expect(plan.process.cwd == "/work")
        #expect(plan.environment.contains("GREETING=hi") && plan.environment.contains("HOSTNAME=box"))
        #expect(plan.hostname == "box")
        #expect(plan.cloned == [.user, .pid, .mount] && plan.early == [.uts, .ipc, .network])
        #expect(plan.unshareCgroup && plan.loopback && plan.singleMapping)
        #expect(plan.idMap?.uids.count == 1, "--userns single: the caller's own id")
        #expect(plan.mounts.ops.contains(.bind(source: "/srv/data", target: "/data", readOnly: true, step: .bindVolume)))
        #expect(plan.mounts.ops.contains(.directory(target: "/work")))
        #expect(plan.resources.map(\.file) == ["memory.max"])
        #expect(plan.annotations["org.urun.rootfs.lowerdir"] == image.layers[0])
    }

    /// What --print-config shows: the spec's fields, read back by urun's own
    /// config.json reader, and compiled again into the same plan.
    @Test func thePrintedConfigIsAConfigUrunRunsTheSame() throws {
        let image = image()
        defer { try? removeTree(image.layers[0]) }
        let directory = ContainerDirectory(in: "/tmp/urun-plan-containers")
        let plan = try ContainerPlan.run(try runSpec(), image: image, directory: directory, ephemeral: true, joined: nil, helper: nil)
        let json = try plan.config()
        #expect(json["process"]?["args"] == .array(["sh", "-c", "echo hi"].map(JSON.string)))
        #expect(json["hostname"] == .string("box"))
        #expect(json["linux"]?["resources"]?["unified"]?["memory.max"] == .string("67108864"))
        #expect(json["linux"]?["seccomp"]?["defaultAction"] == .string("SCMP_ACT_ERRNO"))
        #expect(json["linux"]?["maskedPaths"]?.strings?.contains("/proc/kcore") == true)
        let mounts = json["mounts"]?.array ?? []
        #expect(mounts.contains { $0["destination"] == .string("/data") && $0["options"]?.strings == ["rbind", "ro"] })

        // Read back (with a real directory as its root) and compiled again.
        var text = json
        text["root"] = .object([("path", .string(image.layers[0])), ("readonly", .bool(false))])
        let config = try OCIConfig(json: Array(text.serialized().utf8), source: "printed")
        let again = try ContainerPlan(config, bundle: "/", rootless: false)
        #expect(again.process.args == plan.process.args && again.process.cwd == plan.process.cwd)
        #expect(again.environment == plan.environment)
        #expect(again.hostname == plan.hostname)
        #expect(again.cloned.union(again.early) == plan.cloned.union(plan.early) && again.unshareCgroup)
        #expect(again.resources.map(\.file) == ["memory.max"] && again.resources.map(\.value) == ["67108864"])
        #expect(again.security.capabilitySets?.bounding == plan.security.effectiveCapabilities)
        #expect(again.security.noNewPrivileges)
        #expect(again.mounts.ops.contains(.bindPath(source: "/srv/data", target: "/data", flags: UInt(MS_RDONLY), recursive: true, propagation: 0)))
        let masked = { (plan: ContainerPlan) in plan.mounts.ops.filter { if case .mask = $0 { return true } else { return false } } }
        #expect(masked(again) == masked(plan))
    }

    /// A config.json's own plan survives the round trip too.
    @Test func aBundlesPlanPrintsBackToItself() throws {
        let root = image().layers[0]
        defer { try? removeTree(root) }
        var spec = OCIDocuments.spec(rootless: false, uid: 0, gid: 0)
        spec["root"] = .object([("path", .string(root)), ("readonly", .bool(true))])
        let config = try OCIConfig(json: Array(spec.serialized().utf8), source: "config.json")
        let plan = try ContainerPlan(config, bundle: "/", rootless: false)
        let printed = try OCIConfig(json: Array(try plan.config().serialized().utf8), source: "printed")
        let again = try ContainerPlan(printed, bundle: "/", rootless: false)
        #expect(again.process.args == plan.process.args && again.environment == plan.environment)
        #expect(again.security == plan.security)
        #expect(again.cloned == plan.cloned && again.early == plan.early)
        #expect(again.mounts.readOnlyRoot && again.mounts.rootDirectory == root)
        #expect(again.rlimits.map(\.resource) == plan.rlimits.map(\.resource))
    }
}
