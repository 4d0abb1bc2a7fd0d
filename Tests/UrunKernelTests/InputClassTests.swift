import Glibc
import SystemPackage
import Testing
import UrunKernel

/// Creates `name` (any bytes) in the directory `parent`: a file, or a directory.
private func make(_ parent: CInt, _ name: [UInt8], directory: Bool = false) -> CInt {
    (name + [0]).withUnsafeBufferPointer { buffer in
        buffer.withMemoryRebound(to: CChar.self) { c in
            directory ? mkdirat(parent, c.baseAddress!, 0o755) : openat(parent, c.baseAddress!, O_CREAT | O_WRONLY | O_CLOEXEC, 0o644)
        }
    }
}

/// Walks and removals take names as bytes and work at any depth.
@Suite struct TreeWalkTests {
    static let badName: [UInt8] = Array("bad".utf8) + [0xFF]

    @Test func namesThatAreNotUTF8AreWalkedAndRemoved() throws {
        let dir = TemporaryDirectory()
        dir.file("t/keep", "x")
        let t = open(dir.path + "/t", O_RDONLY | O_DIRECTORY)
        defer { close(t) }
        let file = make(t, Self.badName)
        #expect(file >= 0)
        close(file)
        #expect(make(t, Self.badName + [0x2E], directory: true) == 0)  // "bad\xff."
        let inner = openat(t, "bad\u{FFFD}", O_RDONLY)  // what a lossy decoding would have asked for
        #expect(inner < 0, "the repaired name is another name")
        var seen: [[UInt8]] = []
        try TreeWalk().run(t, display: "t") { _, entry in
            seen.append(entry.bytes)
            return false
        }
        #expect(Set(seen) == [Array("keep".utf8), Self.badName, Self.badName + [0x2E]])
        try removeTree(dir.path + "/t")
        #expect(fileStatus(dir.path + "/t") == nil)
    }

    /// 3,000 levels: a path of 6 KB, beyond PATH_MAX, made and removed
    /// without ever naming it whole.
    @Test func removalWorksBeyondPathMax() throws {
        let dir = TemporaryDirectory()
        dir.file("deep/.keep")
        var fd = open(dir.path + "/deep", O_RDONLY | O_DIRECTORY)
        for _ in 0..<3000 {
            #expect(mkdirat(fd, "a", 0o700) == 0)
            let child = openat(fd, "a", O_RDONLY | O_DIRECTORY)
            close(fd)
            fd = child
        }
        close(make(fd, Self.badName))
        chmod(dir.path + "/deep", 0o500)  // removal makes its way through an unwritable directory too
        close(fd)
        try removeTree(dir.path + "/deep")
        #expect(fileStatus(dir.path + "/deep") == nil)
    }
}

/// Every read is bounded, and a file the user names is one urun can read.
@Suite struct BoundedReadTests {
    @Test func wholeFileReadsStopAtTheirLimit() throws {
        let dir = TemporaryDirectory()
        dir.file("big", String(repeating: "x", count: 5000))
        #expect(try readFile(dir.path + "/big", limit: 5000).count == 5000)
        #expect(throws: UrunError.self) { try readFile(dir.path + "/big", limit: 4999) }
        #expect(throws: UrunError.self) { try readFile("/dev/zero", limit: 1 << 20) }
    }

    @Test func userNamedFilesAreRegularFilesOrPipesOfBoundedSize() throws {
        let dir = TemporaryDirectory()
        dir.file("env", "A=1\n")
        #expect(try readInputFile(dir.path + "/env", what: "--env-file") == Array("A=1\n".utf8))
        dir.file("huge", String(repeating: "y", count: 2 << 20))
        for (path, expected) in [
            (dir.path + "/huge", "larger than 1 MiB"), ("/dev/zero", "not a regular file or a pipe"),
            (dir.path, "is a directory"), (dir.path + "/none", "no such file"),
        ] {
            do {
                _ = try readInputFile(path, what: "--env-file")
                Issue.record("\(path) was read")
            } catch {
                #expect(error.description.contains(expected), "\(error)")
            }
        }
        // A FIFO that nothing writes to: an error after the wait, not a hang.
        #expect(mkfifo(dir.path + "/fifo", 0o600) == 0)
        let started = monotonicSeconds()
        do {
            _ = try readInputFile(dir.path + "/fifo", what: "--env-file", seconds: 1)
            Issue.record("an empty FIFO was read")
        } catch {
            #expect(error.description.contains("nothing was written to it"), "\(error)")
        }
        #expect(monotonicSeconds() - started < 5)
        // A pipe with a writer, as `--env-file <(...)` gives: read to its end.
        var ends: [CInt] = [0, 0]
        #expect(pipe(&ends) == 0)
        _ = write(ends[1], "B=2\n", 4)
        close(ends[1])
        #expect(try readInputFile("/proc/self/fd/\(ends[0])", what: "--env-file") == Array("B=2\n".utf8))
        close(ends[0])
    }
}

/// Input echoed back is made safe for a terminal and kept short.
@Suite struct PrintableTests {
    @Test func controlCharactersAndInvalidBytesAreEscaped() {
        #expect(printable("a\u{1B}[31mb\nc") == "a\\x1b[31mb\\nc")
        #expect(printable("\u{202E}txt.exe") == "\\u{202e}txt.exe", "a bidi override cannot reorder the line")
        #expect(printable("\u{9B}2J") == "\\x9b2J", "C1 control")
        #expect(printable([0x61, 0xFF, 0xC3, 0xA9]) == "a\\xffé")
        #expect(hasControlCharacters("a\nb") && hasControlCharacters("\u{7F}") && !hasControlCharacters("plain é"))
    }

    @Test func longValuesAreShortened() {
        let long = String(repeating: "n", count: 100_000)
        let shown = printable(long)
        #expect(shown.count < 140)
        #expect(shown.hasSuffix("(100000 bytes)"))
        let message = printableMessage("--name \(long): invalid")
        #expect(message.utf8.count < 300 && message.hasPrefix("--name nnn") && message.hasSuffix(" invalid"))
    }
}

/// Numbers from documents never trap: out of range is nil.
@Suite struct NumberRangeTests {
    @Test func jsonIntegersAreRangeChecked() throws {
        let json = try JSON(parsing: "[4294967296, -1, 1e3, 1.5, 1e400, 2147483647, 18446744073709551616]")
        let values = json.array!
        #expect(values[0].integer(UInt32.self) == nil && values[0].integer(Int64.self) == 4_294_967_296)
        #expect(values[1].integer(UInt32.self) == nil && values[1].integer(Int32.self) == -1)
        #expect(values[2].integer(Int32.self) == 1000)
        #expect(values[3].integer(Int.self) == nil)
        #expect(values[4].integer(Int.self) == nil)
        #expect(values[5].integer(Int32.self) == Int32.max)
        #expect(values[6].uint64 == nil)
    }

    @Test func timesFromTheCommandLineAreRangeChecked() {
        #expect(Timestamp(since: "1e300") == nil)
        #expect(Timestamp(since: "99999999999999999999999s") == nil)
        #expect(Timestamp.duration("9999999999999999h") == nil)
        #expect(Timestamp.duration("1h30m") == 5400)
    }
}

/// ENOSPC means "disk full" from a write, "too many mounts" from mount(2).
@Suite struct HintTests {
    @Test func noSpaceIsExplainedPerStep() {
        #expect(Hint.for(.writeFile, .noSpace) == "the disk is full")
        for step in [Step.mountProc, .bindVolume, .mountOverlay, .mountTmpfs, .pivotRoot] {
            #expect(Hint.for(step, .noSpace)?.contains("fs.mount-max") == true, "\(step)")
        }
        #expect(Hint.for(.clone, .noSpace)?.contains("max_user_namespaces") == true)
        #expect(Hint.for(.unshareNamespaces, .noSpace)?.contains("namespace limit") == true)
        #expect(Hint.for(.writeLimit, .noSpace)?.contains("cgroup") == true)
    }
}
