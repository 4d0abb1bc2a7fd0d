import Foundation
import Glibc
import Testing
import UrunKernel
import UrunTestSupport
@testable import UrunImage

/// Inputs of the kinds independent testing found defects with: each test
/// takes the class (names as bytes, numbers out of range, repeated paths,
/// repeated index entries, ambiguous tags), not only the one example.
@Suite struct ArchiveClassTests {
    static func tar(_ build: (inout TarWriter) -> Void) -> [UInt8] { ImageArchiveTests.tar(build) }

    static let badName: [UInt8] = Array("bad".utf8) + [0xFF, 0xFE]

    /// Every byte but "/" and NUL may be in a name; such names survive an
    /// unpack, a flattening of many layers, and the removal of the cache.
    @Test func namesThatAreNotUTF8SurviveUnpackAndFlattening() throws {
        let scratch = Scratch()
        var builder = ImageArchiveBuilder()
        builder.layers = [
            Self.tar { t in
                t.add(name: Array("dir".utf8) + [0xC3] + Array("/".utf8), .directory, mode: 0o755)
                t.add(name: Array("dir".utf8) + [0xC3] + Array("/".utf8) + Self.badName, bytes: Array("inside".utf8))
                t.add(name: Self.badName, bytes: Array("top".utf8))
            }
        ]
        for i in 1..<70 { builder.layers.append(Self.tar { t in t.add("file\(i)", content: "\(i)") }) }
        let image = try scratch.store.image(for: scratch.write("tall.tar", builder.dockerSave()))
        #expect(image.layers.count == 1 && image.layers[0].hasPrefix("flat-"), "70 layers are flattened")
        let flat = open(image.layerPaths[0], O_RDONLY | O_DIRECTORY)
        defer { close(flat) }
        var names: [[UInt8]] = []
        try TreeWalk().run(flat, display: "flat") { _, entry in
            names.append(entry.bytes)
            return entry.isDirectory == true
        }
        #expect(names.contains(Self.badName), "the flattened tree keeps the name byte for byte")
        #expect(names.contains(Array("dir".utf8) + [0xC3]))
        #expect(names.filter { $0 == Self.badName }.count == 2, "at the top and inside dir\\xc3")
        #expect(scratch.leftovers.isEmpty)
        // And the cache, such names included, is removed.
        try removeTree(scratch.path + "/cache")
        #expect(fileStatus(scratch.path + "/cache") == nil)
    }

    /// A re-appended file and a whiteout followed by a directory of the same
    /// name (which Docs/images.md promises) replace what came before them.
    @Test func theSamePathTwiceInOneLayer() throws {
        let scratch = Scratch()
        var builder = ImageArchiveBuilder()
        builder.layers = [
            Self.tar { t in
                t.add("etc/", .directory, mode: 0o755)
                t.add("etc/passwd", content: "first")
                t.add("srv/", .directory, mode: 0o755)
                t.add("srv/old", content: "old")
            },
            Self.tar { t in
                t.add("etc/passwd", content: "second")
                t.add("etc/passwd", content: "third")
                t.add(".wh.srv")
                t.add("srv/", .directory, mode: 0o755)
                t.add("srv/new", content: "new")
                t.add("etc/link", .symlink, link: "passwd")
                t.add("etc/link", .symlink, link: "group")
                t.add("etc/hard", .hardlink, link: "etc/passwd")
                t.add("usr/", .directory, mode: 0o755)
                t.add("usr/hard", .hardlink, link: "etc/passwd")
            },
        ]
        for archive in [builder.dockerSave(), builder.ociArchive()] {
            let image = try scratch.store.image(for: scratch.write("twice-\(archive.count).tar", archive))
            let top = image.layerPaths[0]
            #expect(try readText(top + "/etc/passwd") == "third")
            #expect(try readText(top + "/usr/hard") == "third", "a hard link across directories")
            #expect(try readText(top + "/srv/new") == "new")
            #expect(fileStatus(top + "/srv").map(isDirectory) == true)
            var target = [CChar](repeating: 0, count: 64)
            #expect(readlink(top + "/etc/link", &target, 63) == 5)
        }
        #expect(scratch.leftovers.isEmpty)
    }

    /// Owners beyond 32 bits, negative, or (uid_t)-1 in a PAX header: a clear
    /// error naming the member, never a trap, nothing left in the cache.
    /// Owners are restored only by a process that may give files away (root,
    /// or root of a user namespace with subordinate ids): run as root, as CI does.
    @Test(.requiring(getuid() == 0, "owners are restored (and so read) only by root"), arguments: [
        ("uid", "4294967296"), ("uid", "-1"), ("gid", "18446744073709551615"), ("uid", "4294967295"),
    ])
    func ownersOutOfRangeAreRefused(_ field: String, _ value: String) throws {
        let scratch = Scratch()
        let archive = Self.tar { t in
            t.add("ok", content: "fine")
            t.add(name: Array("owned".utf8), bytes: Array("x".utf8), pax: [(field, value)])
        }
        do {
            _ = try scratch.store.image(for: scratch.write("owners.tar", archive))
            Issue.record("an owner \(field)=\(value) was accepted")
        } catch {
            #expect(error.description.contains("refusing archive member 'owned'"), "\(error)")
            #expect(error.description.contains("out of range"), "\(error)")
        }
        #expect(scratch.entries.isEmpty && scratch.leftovers.isEmpty)
    }

    /// An OCI index that nests and repeats entries: 40 descriptors, each the
    /// same index, 6 levels deep, would be 40^6 (4 billion) paths walked one by
    /// one. Each digest is read once: it loads at once.
    @Test func repeatedIndexEntriesAreVisitedOnce() throws {
        let scratch = Scratch()
        var builder = ImageArchiveBuilder()
        builder.layers = [Self.tar { t in t.add("hello", content: "world") }]
        let base = builder.ociArchive()
        let archive = try Self.nestingIndexes(base, fanout: 40, depth: 6)
        let started = Date()
        let image = try scratch.store.image(for: scratch.write("nested.tar", archive))
        #expect(Date().timeIntervalSince(started) < 5, "visited once, not 40^6 times")
        #expect(try readText(image.layerPaths[0] + "/hello") == "world")
        // Deeper than urun goes, and wider than it reads: refused in one short line.
        for (fanout, depth, expected) in [(2, 9, "nested more than"), (5000, 1, "more than 4096")] {
            let hostile = try Self.nestingIndexes(base, fanout: fanout, depth: depth)
            do {
                _ = try scratch.store.image(for: scratch.write("hostile-\(fanout).tar", hostile))
                Issue.record("fanout \(fanout) depth \(depth) was accepted")
            } catch {
                #expect(error.description.contains(expected), "\(error)")
                #expect(error.description.utf8.count < 400, "a short message: \(error.description.utf8.count) bytes")
            }
        }
    }

    /// Wraps an OCI archive's index: `depth` levels of indexes, each listing
    /// the level below `fanout` times.
    static func nestingIndexes(_ archive: [UInt8], fanout: Int, depth: Int) throws -> [UInt8] {
        let directory = "/tmp/urun-nest-\(UUID().uuidString)"
        defer { try? removeTree(directory) }
        try makeDirectories(directory, mode: 0o755)
        FileManager.default.createFile(atPath: directory + "/in.tar", contents: Data(archive))
        guard shell("tar -C \(directory) -xf \(directory)/in.tar && rm \(directory)/in.tar").0 == 0 else {
            throw UrunError.invalid("cannot unpack the base archive")
        }
        var index = try readText(directory + "/index.json")
        for _ in 0..<depth {
            let bytes = Array(index.utf8)
            let digest = ImageArchiveBuilder.sha256(bytes)
            FileManager.default.createFile(atPath: directory + "/blobs/sha256/" + digest, contents: Data(bytes))
            let entry = "{\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"digest\":\"sha256:\(digest)\",\"size\":\(bytes.count)}"
            index = "{\"schemaVersion\":2,\"manifests\":[" + Array(repeating: entry, count: fanout).joined(separator: ",") + "]}"
        }
        try writeFile(directory + "/index.json", index)
        guard shell("tar -C \(directory) -cf \(directory).tar .").0 == 0 else { throw UrunError.invalid("cannot pack") }
        defer { unlink(directory + ".tar") }
        return Array(try Data(contentsOf: URL(fileURLWithPath: directory + ".tar")))
    }

    /// A tag that matches images of two repositories picks neither.
    @Test func anAmbiguousTagIsAnError() throws {
        let scratch = Scratch()
        var one = ImageArchiveBuilder()
        one.layers = [Self.tar { t in t.add("which", content: "one") }]
        one.tags = ["example.org/one:latest"]
        var two = one
        two.layers = [Self.tar { t in t.add("which", content: "two") }]
        two.tags = ["example.org/two:latest"]
        let archive = ImageArchiveBuilder.dockerSave(images: [one, two])
        let file = scratch.write("two.tar", archive)
        for ambiguous in [":latest", ":example.org/one:latest"].prefix(1) {
            do {
                _ = try scratch.store.image(for: file + ambiguous)
                Issue.record("\(ambiguous) picked an image")
            } catch {
                #expect(error.description.contains("ambiguous"), "\(error)")
                #expect(error.description.contains("example.org/one:latest") && error.description.contains("example.org/two:latest"))
            }
        }
        let named = try scratch.store.image(for: file + ":example.org/two:latest")
        #expect(try readText(named.layerPaths[0] + "/which") == "two")
        let short = try scratch.store.image(for: file + ":one")
        #expect(try readText(short.layerPaths[0] + "/which") == "one", "one:latest is unambiguous")
    }

    /// FILE:TAG of a plain root filesystem tarball names nothing: an error, not ignored.
    @Test func aRootfsTarballHasNoTags() throws {
        let scratch = Scratch()
        let file = scratch.write("rootfs.tar", Self.tar { t in t.add("./", .directory, mode: 0o755); t.add("./bin/", .directory) })
        #expect(throws: UrunError.self) { try scratch.store.image(for: file + ":nosuchtag") }
        #expect(scratch.entries.isEmpty, "refused before anything is unpacked")
        _ = try scratch.store.image(for: file)
    }

    /// Archives whose first member is a layer or "./" (podman's and skopeo's
    /// docker archives, `tar -C layout -cf x.tar .`), layout directories and
    /// skopeo's transport prefixes: recognised by what they contain.
    @Test func archivesAreRecognisedByContentNotTheirFirstMember() throws {
        let scratch = Scratch()
        var builder = ImageArchiveBuilder()
        builder.layers = [Self.tar { t in t.add("hello", content: "world") }]
        builder.tags = ["example.org/hello:1"]
        let layout = scratch.path + "/layout"
        try makeDirectories(layout, mode: 0o755)
        FileManager.default.createFile(atPath: layout + "/x.tar", contents: Data(builder.ociArchive()))
        #expect(shell("cd \(layout) && tar -xf x.tar && rm x.tar && tar -cf ../dot.tar .").0 == 0)
        let layerFirst = shell(
            "cd \(scratch.path) && mkdir -p d && cd d && tar -xf ../\(baseName(of: scratch.write("plain.tar", builder.dockerSave()))) && tar -cf ../layer-first.tar $(ls -d */ | tr -d /) *.json manifest.json")
        #expect(layerFirst.0 == 0)
        for reference in [
            scratch.path + "/dot.tar", scratch.path + "/layer-first.tar", layout, "oci:" + layout, "oci:" + layout + ":1",
            "oci-archive:" + scratch.path + "/dot.tar:example.org/hello:1", "docker-archive:" + scratch.path + "/layer-first.tar",
        ] {
            let image = try scratch.store.image(for: reference)
            #expect(image.id == ImageArchiveBuilder.sha256(builder.configJSON()), "\(reference)")
            #expect(try readText(image.layerPaths[0] + "/hello") == "world", "\(reference)")
        }
        #expect(throws: UrunError.self) { try scratch.store.image(for: "oci:" + scratch.path + "/dot.tar") }
        #expect(throws: UrunError.self) { try scratch.store.image(for: "oci-archive:" + layout) }
        #expect(throws: UrunError.self) { try scratch.store.image(for: scratch.path + "/dot.tar:nosuchtag") }
    }
}

