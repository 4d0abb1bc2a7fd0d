import Glibc
import Testing
import UrunKernel

/// A temporary directory removed at the end of the test.
final class TemporaryDirectory {
    let path: String

    init() {
        var template = Array("/tmp/urun-unit-XXXXXX".utf8CString)
        path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    }

    deinit { try? removeTree(path) }

    func file(_ relative: String, _ content: String = "") {
        try! makeDirectories(parentDirectory(of: path + "/" + relative), mode: 0o755)
        try! writeFile(path + "/" + relative, content)
    }

    func link(_ relative: String, to target: String) {
        try! makeDirectories(parentDirectory(of: path + "/" + relative), mode: 0o755)
        #expect(symlink(target, path + "/" + relative) == 0)
    }
}

@Suite struct InRootTests {
    /// The real path an O_PATH descriptor refers to.
    func resolved(_ fd: CInt) -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/fd/\(fd)", &buffer, 4095)
        return String(cString: Array(buffer[0..<max(n, 0)]) + [0])
    }

    @Test func symlinksResolveInsideTheRoot() throws {
        let dir = TemporaryDirectory()
        dir.file("root/etc/real", "inside")
        dir.link("root/abs", to: "/etc/real")
        dir.link("root/up", to: "../../../../etc/real")
        dir.link("root/loop", to: "loop")
        let root = open(dir.path + "/root", O_RDONLY | O_DIRECTORY)
        defer { close(root) }
        for path in ["/abs", "up", "/../../etc/real", "etc/../../etc/real"] {
            let fd = try openInRoot(root, path)
            #expect(resolved(fd) == dir.path + "/root/etc/real", "\(path)")
            close(fd)
        }
        #expect(throws: UrunError.kernel(.makeMountpoint, path: "/loop", .tooManySymbolicLinkLevels)) {
            try openInRoot(root, "/loop")
        }
    }

    @Test func creationNeverFollowsASymlinkOut() throws {
        let dir = TemporaryDirectory()
        dir.file("outside/keep", "host file")
        dir.link("root/etc/resolv.conf", to: dir.path + "/outside/created")
        dir.link("root/proc", to: dir.path + "/outside")
        let root = open(dir.path + "/root", O_RDONLY | O_DIRECTORY)
        defer { close(root) }
        // The dangling absolute symlink resolves inside the root: the file appears there.
        close(try openInRoot(root, "/etc/resolv.conf", create: .file))
        #expect(fileStatus(dir.path + "/outside/created") == nil)
        #expect(fileStatus(dir.path + "/root" + dir.path + "/outside/created") != nil)
        // A directory symlink to a host path also stays inside.
        close(try openInRoot(root, "/proc/sub", create: .directory))
        #expect(fileStatus(dir.path + "/outside/sub") == nil)
        #expect(fileStatus(dir.path + "/root" + dir.path + "/outside/sub").map(isDirectory) == true)
    }

    @Test func missingPathsFailWithoutCreate() throws {
        let dir = TemporaryDirectory()
        dir.file("root/a", "x")
        let root = open(dir.path + "/root", O_RDONLY | O_DIRECTORY)
        defer { close(root) }
        #expect(throws: UrunError.kernel(.makeMountpoint, path: "/nope", .noSuchFileOrDirectory)) {
            try openInRoot(root, "/nope")
        }
        #expect(throws: UrunError.kernel(.makeMountpoint, path: "/a/b", .notDirectory)) {
            try openInRoot(root, "/a/b", create: .directory)
        }
    }
}

@Suite struct RemoveTreeTests {
    @Test func removesUnreadableAndUnwritableDirectories() throws {
        let dir = TemporaryDirectory()
        dir.file("t/locked/inner/file", "x")
        dir.file("t/noexec/file", "y")
        dir.link("t/link", to: "/etc")
        chmod(dir.path + "/t/locked/inner", 0o555)
        chmod(dir.path + "/t/locked", 0o000)
        chmod(dir.path + "/t/noexec", 0o600)
        try removeTree(dir.path + "/t")
        #expect(fileStatus(dir.path + "/t") == nil)
        #expect(fileStatus("/etc/passwd") != nil)  // the symlink was removed, not followed
    }

    @Test func missingPathIsFine() throws {
        try removeTree("/tmp/urun-unit-does-not-exist/x")
    }
}

@Suite struct PathsTests {
    @Test func rootOverridesEverything() throws {
        let paths = try UrunPaths.resolve(root: "/srv/u")
        #expect(paths.cache == "/srv/u/cache")
        #expect(paths.containers == "/srv/u/data/containers")
        #expect(paths.runtime == "/srv/u/run")
    }
}
