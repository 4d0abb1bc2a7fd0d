import CUrunSyscalls
import Foundation
import Testing
import UrunKernel
import UrunTestSupport
@testable import UrunImage

/// Image archives (docker save, OCI layouts) built in the test, loaded into a scratch cache.
@Suite struct ImageArchiveTests {
    static func tar(_ build: (inout TarWriter) -> Void) -> [UInt8] {
        var tar = TarWriter()
        build(&tar)
        return tar.archive
    }

    /// A base layer, and one above it that deletes a file, replaces a
    /// directory and makes another opaque.
    static var twoLayers: ImageArchiveBuilder {
        var builder = ImageArchiveBuilder()
        builder.layers = [
            tar { t in
                t.add("etc/", .directory, mode: 0o755)
                t.add("etc/motd", content: "base motd")
                t.add("etc/keep", content: "kept")
                t.add("srv/", .directory, mode: 0o755)
                t.add("srv/old", content: "replaced with its directory")
                t.add("opt/", .directory, mode: 0o755)
                t.add("opt/lower", content: "hidden by the opaque marker")
            },
            tar { t in
                t.add("etc/.wh.motd")
                t.add(".wh.srv")
                t.add("srv/", .directory, mode: 0o755)
                t.add("srv/new", content: "the new srv", uid: 100, gid: 100)
                t.add("opt/.wh..wh..opq")
                t.add("opt/upper", content: "only this")
            },
        ]
        builder.env = ["GREETING=hello", "PATH=/usr/bin:/bin"]
        builder.cmd = ["cat", "/srv/new"]
        builder.workingDir = "/srv"
        builder.user = "1000"
        builder.stopSignal = "SIGINT"
        builder.tags = ["example.org/demo:1.0"]
        return builder
    }

    func isWhiteout(_ path: String) -> Bool {
        guard let st = fileStatus(path) else { return false }
        return st.st_mode & S_IFMT == S_IFCHR && st.st_rdev == 0
    }

    func xattr(_ path: String, _ name: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 16)
        let n = urun_fgetxattr(fd, name, &buffer, buffer.count)
        return n > 0 ? String(decoding: buffer.prefix(n), as: UTF8.self) : nil
    }

    @Test(arguments: ["oci", "docker"])
    func layersBecomeOverlayLowerDirectoriesWithWhiteouts(_ format: String) throws {
        let scratch = Scratch()
        let builder = Self.twoLayers
        let file = scratch.write("demo.tar", format == "oci" ? builder.ociArchive() : builder.dockerSave())
        let image = try scratch.store.image(for: file)
        #expect(image.id == ImageArchiveBuilder.sha256(builder.configJSON()))
        #expect(image.names == ["example.org/demo:1.0"])
        #expect(image.layers == builder.layers.reversed().map { ImageArchiveBuilder.sha256($0) }, "top first, named by diff id")
        let top = image.layerPaths[0]
        let base = image.layerPaths[1]
        #expect(try readText(base + "/etc/motd") == "base motd")
        #expect(isWhiteout(top + "/etc/motd"), "a 0/0 character device hides the lower file")
        #expect(fileStatus(top + "/etc/.wh.motd") == nil)
        #expect(xattr(top + "/srv", "user.overlay.opaque") == "y", "a directory replacing a whited-out one is opaque")
        #expect(xattr(top + "/opt", "user.overlay.opaque") == "y")
        #expect(fileStatus(top + "/opt/.wh..wh..opq") == nil)
        if getuid() == 0 { #expect(fileStatus(top + "/srv/new")?.st_uid == 100, "owners kept where the unpacker may chown") }
        // What the container will see, read from the layers.
        #expect(image.readFile("/etc/motd") == nil)
        #expect(image.readFile("/etc/keep") == "kept")
        #expect(image.readFile("/srv/new") == "the new srv")
        let config = try #require(image.config)
        #expect(config.env == ["GREETING=hello", "PATH=/usr/bin:/bin"])
        #expect(config.cmd == ["cat", "/srv/new"] && config.entrypoint == nil)
        #expect(config.workingDir == "/srv" && config.user == "1000" && config.stopSignal == "SIGINT")
        #expect(scratch.leftovers.isEmpty)
        // The record: found by name, by id prefix, listed.
        #expect(scratch.store.find("example.org/demo:1.0")?.id == image.id)
        #expect(scratch.store.find("demo:1.0")?.id == image.id)
        #expect(scratch.store.find(String(image.id!.prefix(8)))?.id == image.id)
        #expect(scratch.store.records().map(\.format) == [format])
    }

    @Test func imagesShareTheirLayers() throws {
        let scratch = Scratch()
        var builder = Self.twoLayers
        let firstID: String?
        do {
            let first = try scratch.store.image(for: scratch.write("a.tar", builder.ociArchive()))
            firstID = first.id
            // A marker in the shared base layer survives: the second image does not unpack it again.
            try writeFile(first.layerPaths[1] + "/marker", "unpacked once")
            builder.layers.append(Self.tar { $0.add("third", content: "3") })
            builder.tags = ["example.org/demo:2.0"]
            let second = try scratch.store.image(for: scratch.write("b.tar", builder.dockerSave()))
            #expect(second.layers.count == 3)
            #expect(Array(second.layers.suffix(2)) == first.layers)
            #expect(try readText(second.layerPaths[2] + "/marker") == "unpacked once")
            #expect(scratch.entries.count == 3)
            // While an image is leased (a container runs it), it cannot be removed.
            #expect(throws: UrunError.self) { try scratch.store.remove(try #require(scratch.store.find("demo:2.0"))) }
        }
        // Removing one image keeps the layers the other uses.
        try scratch.store.remove(try #require(scratch.store.find("demo:2.0")))
        #expect(scratch.entries.count == 2)
        #expect(scratch.store.records().count == 1)
        let pruned = try scratch.store.prune(all: true, inUse: [])
        #expect(pruned.removed == [firstID!])
        #expect(scratch.entries.isEmpty)
    }

    @Test func compressedLayers() throws {
        let scratch = Scratch()
        var builder = Self.twoLayers
        var index = 0
        let archive = builder.ociArchive { layer in
            index += 1
            let path = scratch.write("layer\(index).tar", layer)
            let tool = index == 1 ? ("gzip -n -c", "application/vnd.oci.image.layer.v1.tar+gzip") : ("zstd -q -c", "application/vnd.oci.image.layer.v1.tar+zstd")
            _ = shell("\(tool.0) \(path) > \(path).z")
            return (try! readFile(path + ".z"), tool.1)
        }
        builder.tags = []
        let image = try scratch.store.image(for: scratch.write("compressed.tar", archive))
        #expect(image.readFile("/srv/new") == "the new srv")
        #expect(image.layers[1] == ImageArchiveBuilder.sha256(builder.layers[0]), "named by the uncompressed digest")
    }

    /// A bad archive: one clear error, and nothing in the cache.
    func expectRejected(_ archive: [UInt8], _ message: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let scratch = Scratch()
        let file = scratch.write("bad.tar", archive)
        do {
            _ = try scratch.store.image(for: file)
            Issue.record("accepted a bad archive", sourceLocation: sourceLocation)
        } catch {
            #expect(error.description.contains(message), "\(error)", sourceLocation: sourceLocation)
        }
        #expect(scratch.entries.isEmpty && scratch.leftovers.isEmpty, sourceLocation: sourceLocation)
        #expect(scratch.store.records().isEmpty, sourceLocation: sourceLocation)
    }

    @Test func badArchivesAreRefusedAndLeaveNothing() {
        let builder = Self.twoLayers
        // A layer whose bytes differ from the manifest's digest.
        expectRejected(builder.ociArchive(corrupt: { $0[600] ^= 0xff }), "the manifest says")
        // A configuration whose diff ids do not match the layers.
        let lying = builder.configJSON(diffIDs: [String(repeating: "a", count: 64), String(repeating: "b", count: 64)].map { "sha256:" + $0 })
        expectRejected(builder.dockerSave(config: lying), "the image configuration says")
        // A configuration that is not what its name promises.
        var manifestOnly = ImageArchiveBuilder()
        manifestOnly.layers = builder.layers
        let tampered = Self.tar { t in
            t.add(String(repeating: "c", count: 64) + ".json", bytes: builder.configJSON())
            t.add("manifest.json", content: "[{\"Config\":\"\(String(repeating: "c", count: 64)).json\",\"Layers\":[\"x/layer.tar\",\"y/layer.tar\"]}]")
        }
        expectRejected(tampered, "the manifest says")
        // A manifest naming a layer the archive lacks.
        let config = builder.configJSON()
        let configName = ImageArchiveBuilder.sha256(config) + ".json"
        let missing = Self.tar { t in
            t.add(configName, bytes: config)
            t.add("l1/layer.tar", bytes: builder.layers[0])
            t.add("manifest.json", content: "[{\"Config\":\"\(configName)\",\"Layers\":[\"l1/layer.tar\",\"l2/layer.tar\"]}]")
        }
        expectRejected(missing, "l2/layer.tar, named by the manifest, is not in the archive")
        // Media types urun cannot unpack.
        expectRejected(builder.ociArchive(compress: { ($0, "application/vnd.oci.image.layer.v1.tar+encrypted") }), "unsupported media type")
        // Malformed JSON.
        expectRejected(Self.tar { t in t.add("manifest.json", content: "[{\"Config\": ") }, "manifest.json: not valid JSON")
        // A whiteout that would reach out of its directory.
        var escaping = ImageArchiveBuilder()
        escaping.layers = [Self.tar { t in t.add("etc/.wh..."); t.add("etc/x", content: "x") }]
        expectRejected(escaping.ociArchive(), "a whiteout may only hide a name in its own directory")
        var dotdot = ImageArchiveBuilder()
        dotdot.layers = [Self.tar { t in t.add("../escape", content: "x") }]
        expectRejected(dotdot.dockerSave(), "would leave the image")
    }

    @Test func severalImagesPickByTagOrTakeTheFirst() throws {
        let scratch = Scratch()
        var a = Self.twoLayers
        a.tags = ["demo:a"]
        var b = Self.twoLayers
        b.cmd = ["echo", "b"]
        b.tags = ["demo:b"]
        // Two images in one docker save archive.
        let configA = a.configJSON()
        let configB = b.configJSON()
        let layerNames = a.layers.map { ImageArchiveBuilder.sha256($0) + "/layer.tar" }
        let archive = Self.tar { t in
            for (layer, name) in zip(a.layers, layerNames) { t.add(name, bytes: layer) }
            t.add(ImageArchiveBuilder.sha256(configA) + ".json", bytes: configA)
            t.add(ImageArchiveBuilder.sha256(configB) + ".json", bytes: configB)
            let layers = ImageArchiveBuilder.list(layerNames)
            t.add(
                "manifest.json",
                content: "[{\"Config\":\"\(ImageArchiveBuilder.sha256(configA)).json\",\"RepoTags\":[\"demo:a\"],\"Layers\":\(layers)},{\"Config\":\"\(ImageArchiveBuilder.sha256(configB)).json\",\"RepoTags\":[\"demo:b\"],\"Layers\":\(layers)}]")
        }
        let file = scratch.write("two.tar", archive)
        #expect(try scratch.store.image(for: file + ":b").config?.cmd == ["echo", "b"])
        #expect(try scratch.store.image(for: file + ":demo:a").config?.cmd == ["cat", "/srv/new"])
        #expect(try scratch.store.image(for: file).config?.cmd == ["cat", "/srv/new"], "the first, with a notice")
        #expect(throws: UrunError.self) { try scratch.store.image(for: file + ":nope") }
        #expect(scratch.entries.count == 2, "both images share the two layers")
    }

    @Test func tooManyLayersAreFlattened() throws {
        let scratch = Scratch()
        var builder = ImageArchiveBuilder()
        builder.layers = [Self.tar { t in t.add("base", content: "0"); t.add("gone", content: "deleted later") }]
        for i in 1..<60 { builder.layers.append(Self.tar { t in t.add("file\(i)", content: "\(i)") }) }
        builder.layers.append(Self.tar { t in t.add(".wh.gone"); t.add("file1", content: "overwritten") })
        let image = try scratch.store.image(for: scratch.write("tall.tar", builder.dockerSave()))
        #expect(image.layers.count == 1, "61 layers do not fit one overlay mount's options")
        #expect(image.layers[0].hasPrefix("flat-"))
        let flat = image.layerPaths[0]
        #expect(try readText(flat + "/base") == "0")
        #expect(try readText(flat + "/file59") == "59")
        #expect(try readText(flat + "/file1") == "overwritten")
        #expect(fileStatus(flat + "/gone") == nil, "the whiteout deleted it")
        #expect(scratch.leftovers.isEmpty)
    }

    @Test func nameMatching() {
        #expect(ImageArchive.name("docker.io/library/alpine:3.20", matches: "alpine:3.20"))
        #expect(ImageArchive.name("docker.io/library/alpine:3.20", matches: "3.20"))
        #expect(ImageArchive.name("alpine:latest", matches: "alpine"))
        #expect(!ImageArchive.name("alpine:3.20", matches: "alpine"))
        #expect(!ImageArchive.name("alpine:3.20", matches: "3.2"))
        #expect(Platform.matches("linux/arm64/v8", wanted: "linux/arm64"))
        #expect(!Platform.matches("linux/arm64", wanted: "linux/amd64"))
    }
}
