import Foundation
import CUrunArchive
import Glibc
import Testing
import UrunKernel
import UrunTestSupport
@testable import UrunImage

/// A scratch directory with a cache in it, removed afterwards.
final class Scratch {
    let path: String
    let store: ImageStore

    init() {
        path = "/tmp/urun-image-test-\(UUID().uuidString)"
        try! makeDirectories(path, mode: 0o755)
        store = ImageStore(directory: path + "/cache")
    }

    deinit { try? removeTree(path) }

    func write(_ name: String, _ bytes: [UInt8]) -> String {
        let file = path + "/" + name
        FileManager.default.createFile(atPath: file, contents: Data(bytes))
        return file
    }

    /// Everything left under the cache's tmp/ (must be empty after any unpack).
    var leftovers: [String] { (try? directoryEntries(path + "/cache/tmp")) ?? [] }
    /// The layer trees in the cache.
    var entries: [String] { ((try? directoryEntries(path + "/cache/layers")) ?? []).filter { !$0.hasSuffix(".size") } }

    /// An archive's single layer: its directory and the image id.
    func unpacked(_ file: String) throws -> Unpacked {
        let image = try store.image(for: file)
        return Unpacked(path: image.layerPaths[0], digest: image.id)
    }
}

struct Unpacked: Equatable {
    let path: String
    let digest: String?
}

func shell(_ command: String) -> (Int32, String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = ["-c", command]
    let pipe = Pipe()
    process.standardOutput = pipe
    try! process.run()
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: output, as: UTF8.self))
}

@Suite struct SHA256Tests {
    @Test func knownVectors() {
        #expect(SHA256.digest(of: []) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.digest(of: Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(
            SHA256.digest(of: Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    @Test func matchesSha256sumAtEveryBlockBoundary() throws {
        let scratch = Scratch()
        var bytes: [UInt8] = []
        for i in 0..<2000 { bytes.append(UInt8(truncatingIfNeeded: i &* 2_654_435_761 >> 7)) }
        for length in [0, 1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 129, 1000, 2000] {
            let file = scratch.write("data-\(length)", Array(bytes.prefix(length)))
            let (status, output) = shell("sha256sum \(file)")
            #expect(status == 0)
            #expect(output.hasPrefix(SHA256.digest(of: bytes.prefix(length))), "length \(length)")
        }
    }

    @Test func streamingEqualsOneShot() {
        let bytes = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 * 31) }
        var hasher = SHA256()
        var offset = 0
        for size in [1, 63, 64, 65, 1000, 4096] + Array(repeating: 7919, count: 20) where offset < bytes.count {
            let end = min(bytes.count, offset + size)
            hasher.update(bytes[offset..<end])
            offset = end
        }
        hasher.update(bytes[offset...])
        #expect(hasher.finalizeHex() == SHA256.digest(of: bytes))
    }
}

@Suite struct UnpackTests {
    func archive(_ build: (inout TarWriter) -> Void) -> [UInt8] {
        var tar = TarWriter()
        build(&tar)
        return tar.archive
    }

    @Test func unpacksAnOrdinaryTree() throws {
        let scratch = Scratch()
        let file = scratch.write("tree.tar", archive { tar in
            tar.add("./", .directory, mode: 0o755)
            tar.add("bin/", .directory, mode: 0o755)
            tar.add("bin/tool", content: "#!/bin/sh\n", mode: 0o4755)
            tar.add("bin/alias", .symlink, link: "tool")
            tar.add("bin/hard", .hardlink, link: "bin/tool")
            tar.add("ro/", .directory, mode: 0o555)
            tar.add("ro/inside", content: "x")
            tar.add("deep/a/b/c", content: "implicit parents")
            tar.add("pipe", .fifo)
        })
        let rootfs = try scratch.unpacked(file)
        #expect(rootfs.digest == SHA256.digest(of: try readFile(file)))
        #expect(rootfs.path == scratch.path + "/cache/layers/" + rootfs.digest!)
        let tool = try #require(fileStatus(rootfs.path + "/bin/tool"))
        #expect(tool.st_mode & 0o7777 == 0o4755)
        #expect(tool.st_nlink == 2)
        #expect(tool.st_mtim.tv_sec == 1_700_000_000)
        #expect(try readText(rootfs.path + "/deep/a/b/c") == "implicit parents")
        #expect(fileStatus(rootfs.path + "/ro")!.st_mode & 0o777 == 0o555)
        #expect(fileStatus(rootfs.path + "/pipe")!.st_mode & S_IFMT == S_IFIFO)
        var target = [CChar](repeating: 0, count: 64)
        #expect(readlink(rootfs.path + "/bin/alias", &target, 63) == 4)
        #expect(scratch.leftovers.isEmpty)
        // A second lookup is a cache hit: same tree, not unpacked again.
        try writeFile(rootfs.path + "/marker", "still here")
        #expect(try scratch.unpacked(file) == rootfs)
        #expect(fileStatus(rootfs.path + "/marker") != nil)
    }

    @Test func absoluteNamesLandInsideTheImage() throws {
        let scratch = Scratch()
        let file = scratch.write("abs.tar", archive { tar in
            tar.add("/etc/urun-absolute-test", content: "inside")
        })
        let rootfs = try scratch.unpacked(file)
        #expect(try readText(rootfs.path + "/etc/urun-absolute-test") == "inside")
        #expect(fileStatus("/etc/urun-absolute-test") == nil)
    }

    @Test func dotDotIsRefusedAndLeavesNothing() throws {
        let scratch = Scratch()
        let file = scratch.write("dotdot.tar", archive { tar in
            tar.add("fine", content: "x")
            tar.add("../../escaped-\(getpid())", content: "pwned")
        })
        #expect(throws: UrunError.self) { try scratch.store.image(for: file) }
        #expect(scratch.leftovers.isEmpty)
        #expect(scratch.entries.isEmpty)
        #expect(fileStatus(scratch.path + "/escaped-\(getpid())") == nil)
        #expect(fileStatus("/tmp/escaped-\(getpid())") == nil)
    }

    @Test func writesThroughPlantedSymlinksStayInside() throws {
        let scratch = Scratch()
        let outside = scratch.path + "/outside"
        try makeDirectories(outside, mode: 0o755)
        let file = scratch.write("planted.tar", archive { tar in
            tar.add("link", .symlink, link: outside)
            tar.add("link/pwned", content: "through an absolute symlink")
            tar.add("up", .symlink, link: "../../../../../../..")
            tar.add("up" + outside + "/pwned2", content: "through ..")
            tar.add("victim", content: "a file")
            tar.add("victim", .symlink, link: outside + "/pwned3")
            tar.add("victim", content: "replaces the symlink, does not follow it")
        })
        let rootfs = try scratch.unpacked(file)
        #expect(try directoryEntries(outside).isEmpty)
        #expect(try readText(rootfs.path + outside + "/pwned") == "through an absolute symlink")
        #expect(try readText(rootfs.path + outside + "/pwned2") == "through ..")
        #expect(try readText(rootfs.path + "/victim") == "replaces the symlink, does not follow it")
        #expect(fileStatus(rootfs.path + "/victim").map(isRegularFile) == true)
    }

    @Test func hardLinksCannotReachHostFiles() throws {
        let scratch = Scratch()
        let before = try #require(fileStatus("/etc/passwd")).st_nlink
        let file = scratch.write("hardlink.tar", archive { tar in
            tar.add("stolen", .hardlink, link: "/etc/passwd")
        })
        // /etc/passwd resolves inside the (empty) image: nothing to link to.
        #expect(throws: UrunError.self) { try scratch.store.image(for: file) }
        #expect(try #require(fileStatus("/etc/passwd")).st_nlink == before)
        #expect(scratch.leftovers.isEmpty && scratch.entries.isEmpty)
    }

    @Test func devicesAreSkippedForUnprivilegedUsers() throws {
        let scratch = Scratch()
        let file = scratch.write("dev.tar", archive { tar in
            tar.add("dev/", .directory, mode: 0o755)
            tar.add("dev/null", .character, mode: 0o666)
            tar.add("after", content: "still unpacked")
        })
        let rootfs = try scratch.unpacked(file)
        #expect(try readText(rootfs.path + "/after") == "still unpacked")
        if getuid() != 0 { #expect(fileStatus(rootfs.path + "/dev/null") == nil) }
    }

    @Test func truncatedArchiveLeavesNoEntry() throws {
        let scratch = Scratch()
        let whole = archive { tar in tar.add("big", content: String(repeating: "x", count: 5000)) }
        let file = scratch.write("truncated.tar", Array(whole.prefix(2048)))
        #expect(throws: UrunError.self) { try scratch.store.image(for: file) }
        #expect(scratch.leftovers.isEmpty && scratch.entries.isEmpty)
        #expect(((try? directoryEntries(scratch.path + "/cache/keys")) ?? []).isEmpty)
    }

    @Test func notAnArchiveIsAClearError() throws {
        let scratch = Scratch()
        let file = scratch.write("notes.txt", Array("just some text, not a tar archive\n".utf8))
        do {
            _ = try scratch.store.image(for: file)
            Issue.record("accepted a text file")
        } catch {
            #expect(error.description.contains("not a tar archive"))
        }
        #expect(throws: UrunError.noSuchImage("/no/such/image.tar")) {
            try scratch.store.image(for: "/no/such/image.tar")
        }
    }

    @Test(arguments: ["gzip -c", "xz -c", "zstd -q -c", "bzip2 -c"])
    func compressionIsRecognisedByContent(_ compressor: String) throws {
        let scratch = Scratch()
        let plain = scratch.write("plain.tar", archive { tar in tar.add("hello", content: "compressed") })
        let (status, _) = shell("\(compressor) \(plain) > \(scratch.path)/image.bin")
        try #require(status == 0, "\(compressor) is not installed")
        let rootfs = try scratch.unpacked(scratch.path + "/image.bin")
        #expect(try readText(rootfs.path + "/hello") == "compressed")
    }

    /// The decompressing child's decoders write into memory of any size and
    /// read what the command-line tools read: xz of many blocks (`xz -T`,
    /// decoded on threads), and two streams, frames or members one after the
    /// other, split in the middle of the data. Cut short or damaged, they fail.
    @Test(arguments: ["xz -T2 --block-size=64KiB -c", "xz -c", "zstd -q -c", "gzip -c", "bzip2 -c"])
    func decodersReadWhatTheirToolsRead(_ compressor: String) throws {
        let scratch = Scratch()
        var bytes: [UInt8] = []
        var state: UInt32 = 1
        for _ in 0..<(1 << 20) {
            state = state &* 1_103_515_245 &+ 12_345
            bytes.append(97 + UInt8((state >> 16) % 20))
        }
        let plain = scratch.write("plain", bytes)
        let joined = scratch.path + "/joined"
        let third = bytes.count / 3
        let (status, _) = shell(
            "head -c \(third) \(plain) | \(compressor) > \(joined) && tail -c +\(third + 1) \(plain) | \(compressor) >> \(joined)")
        try #require(status == 0, "\(compressor) is not installed")
        let data = try [UInt8](Data(contentsOf: URL(fileURLWithPath: joined)))
        let compression = try #require(Compression(magic: data.prefix(6)))

        func decoded(_ file: String, chunk: Int, threads: Int = 2) throws(UrunError) -> [UInt8] {
            let decoder = try compression.decoder(of: FileSource(path: file), name: file, threads: threads)
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
            defer { buffer.deallocate() }
            var out: [UInt8] = []
            while true {
                let n = try decoder.decode(into: buffer)
                if n == 0 { return out }
                out += buffer[..<n]
            }
        }
        // One thread: what urun itself uses, where it may start none.
        for (chunk, threads) in [(7, 2), (4097, 2), (1 << 20, 2), (4097, 1)] {
            let out = try decoded(joined, chunk: chunk, threads: threads)
            let same = out == bytes
            #expect(same, "\(compressor), \(chunk)-byte buffers, \(threads) threads: \(out.count) bytes")
        }
        var damaged = data
        damaged[data.count / 6] ^= 0xFF
        for (name, broken) in [("cut", Array(data.prefix(data.count / 6))), ("damaged", damaged)] {
            let file = scratch.write(name, broken)
            for threads in [1, 2] {
                #expect(throws: UrunError.self, "\(compressor): \(name)") { _ = try decoded(file, chunk: 4097, threads: threads) }
            }
        }
    }

    /// gzip's CRC-32 is checked (libarchive's reader does not check it): a
    /// tarball whose deflate data is intact but whose checksum is wrong is
    /// refused, through the decompressing child and in this process alike,
    /// though the tar ends before the checksum is read, and leaves nothing.
    @Test func aWrongGzipChecksumIsRefused() throws {
        let scratch = Scratch()
        let plain = scratch.write("plain.tar", archive { tar in tar.add("hello", content: "checked") })
        let (status, _) = shell("gzip -c \(plain) > \(scratch.path)/good.tar.gz")
        try #require(status == 0)
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: scratch.path + "/good.tar.gz")))
        bytes[bytes.count - 8] ^= 0x01
        let file = scratch.write("bad.tar.gz", bytes)
        #expect(throws: UrunError.self) { _ = try scratch.unpacked(file) }
        #expect(scratch.entries.isEmpty && scratch.leftovers.isEmpty)
        #expect(throws: UrunError.self) {
            let source = try decompressed(FileSource(path: file), name: file)
            while try !source.next().isEmpty {}
        }
        #expect(try readText(scratch.unpacked(scratch.path + "/good.tar.gz").path + "/hello") == "checked")
    }

    /// Bytes after the last gzip member that do not start another (zeros
    /// padding a file) are ignored, as gzip -d and libarchive ignore them;
    /// another member after them is read.
    @Test func bytesAfterTheLastGzipMemberAreIgnored() throws {
        let scratch = Scratch()
        let file = scratch.path + "/padded.gz"
        let (status, _) = shell("printf first | gzip -c > \(file) && printf second | gzip -c >> \(file) && head -c 512 /dev/zero >> \(file)")
        try #require(status == 0)
        let source = try decompressed(FileSource(path: file), name: file)
        var out: [UInt8] = []
        while case let chunk = try source.next(), !chunk.isEmpty { out += chunk }
        #expect(String(decoding: out, as: UTF8.self) == "firstsecond")
    }

    @Test func directoryImagesAreUsedInPlace() throws {
        let scratch = Scratch()
        try makeDirectories(scratch.path + "/tree/bin", mode: 0o755)
        #expect(try scratch.unpacked(scratch.path + "/tree") == Unpacked(path: scratch.path + "/tree", digest: nil))
    }

    @Test func concurrentFirstUnpacksShareOneEntry() async throws {
        let scratch = Scratch()
        let file = scratch.write("shared.tar", archive { tar in
            for i in 0..<200 { tar.add("f\(i)", content: String(repeating: "y", count: 3000)) }
        })
        let store = scratch.store
        let results = try await withThrowingTaskGroup(of: Unpacked.self) { group in
            for _ in 0..<4 { group.addTask { let image = try store.image(for: file); return Unpacked(path: image.layerPaths[0], digest: image.id) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(Set(results.map(\.path)).count == 1)
        #expect(scratch.entries.count == 1)
        #expect(scratch.leftovers.isEmpty)
    }
}

/// A member of a plain tar is found as a range of the file (how a layer of a
/// docker-save archive goes to the decompressing child) behind the headers
/// GNU tar writes for long names and pax attributes.
@Suite struct TarMemberRangeTests {
    @Test(arguments: ["gnu", "pax", "ustar"])
    func theDataBehindLongNameAndPaxHeaders(format: String) throws {
        let scratch = Scratch()
        let long = format == "ustar" ? "short" : String(repeating: "n", count: 150) + "-é"
        let content = Array((0..<5000).map { UInt8($0 % 251) })
        try makeDirectories(scratch.path + "/in", mode: 0o755)
        _ = scratch.write("in/first", Array("first\n".utf8))
        _ = scratch.write("in/" + long, content)
        let archive = scratch.path + "/x.tar"
        let made = Process()
        made.executableURL = URL(fileURLWithPath: "/usr/bin/tar")
        made.arguments = ["--format=" + format, "-C", scratch.path + "/in", "-cf", archive, "first", long]
        try made.run()
        made.waitUntilExit()
        try #require(made.terminationStatus == 0)

        let fd = open(archive, O_RDONLY | O_CLOEXEC)
        defer { close(fd) }
        var st = stat()
        fstat(fd, &st)
        let reader = try TarReader(FileSource(path: archive), name: archive)
        var found: [String: [UInt8]] = [:]
        while let entry = try reader.next() {
            let name = String(cString: archive_entry_pathname(entry))
            let range = try #require(TarReader.dataRange(in: fd, header: reader.headerPosition, size: archive_entry_size(entry), fileSize: Int64(st.st_size)), "\(name)")
            var bytes = [UInt8](repeating: 0, count: range.count)
            #expect(pread(fd, &bytes, bytes.count, off_t(range.lowerBound)) == bytes.count)
            found[name] = bytes
        }
        #expect(found["first"] == Array("first\n".utf8))
        #expect(found[long] == content, "\(format): the long-named member's bytes")
    }

    @Test func headersThatLeadNowhereGiveNoRange() throws {
        let scratch = Scratch()
        let file = scratch.write("junk.tar", [UInt8](repeating: UInt8(ascii: "7"), count: 2048))
        let fd = open(file, O_RDONLY | O_CLOEXEC)
        defer { close(fd) }
        #expect(TarReader.dataRange(in: fd, header: 0, size: 10, fileSize: 2048) == nil)
        #expect(TarReader.dataRange(in: fd, header: 4096, size: 10, fileSize: 2048) == nil)
        #expect(TarReader.dataRange(in: fd, header: -512, size: 10, fileSize: 2048) == nil)
    }
}
