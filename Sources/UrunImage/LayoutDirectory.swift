import CUrunSyscalls
import Glibc
import UrunKernel

/// An image layout kept as a directory rather than an archive: an OCI image
/// layout (`skopeo copy ... oci:DIR`, `podman save --format oci-dir`) or
/// containers/image's "dir:" layout (`--format docker-dir`). Every file is
/// opened inside the directory (openat2 RESOLVE_IN_ROOT), so a name from a
/// manifest can never lead out of it.
final class LayoutDirectory {
    let path: String
    private let fd: CInt

    init(path: String) throws(UrunError) {
        self.path = path
        fd = try sys(.openImage, path: path) { open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
    }

    deinit { closeQuietly(fd) }

    /// Whether `path` holds an image layout rather than a root filesystem.
    static func holdsLayout(_ path: String) -> Bool {
        func has(_ name: String) -> Bool { fileStatus(path + "/" + name).map(isRegularFile) ?? false }
        return (has("oci-layout") && has("index.json")) || (has("manifest.json") && has("version"))
    }

    /// The layout's own files (its index or manifest): their identity joins
    /// the directory's in the cache key, since rewriting a file in place does
    /// not change the directory's times.
    static func keyFiles(_ path: String) -> [stat] {
        ["index.json", "manifest.json"].compactMap { fileStatus(path + "/" + $0) }
    }

    /// A regular file of the layout, opened for reading; -1 (errno set) when missing.
    private func openFile(_ name: String) -> CInt {
        let fd = urun_openat2(
            self.fd, name, UInt64(O_RDONLY | O_NOFOLLOW | O_CLOEXEC), 0,
            UInt64(URUN_RESOLVE_IN_ROOT | URUN_RESOLVE_NO_MAGICLINKS))
        guard fd >= 0 else { return -1 }
        var st = stat()
        guard fstat(fd, &st) == 0, isRegularFile(st) else {
            closeQuietly(fd)
            errno = EINVAL
            return -1
        }
        return fd
    }

    func hasFile(_ name: String) -> Bool {
        let fd = openFile(name)
        if fd >= 0 { closeQuietly(fd) }
        return fd >= 0
    }

    /// A small file's content, nil when it is not there.
    func read(_ name: String, limit: Int) throws(UrunError) -> [UInt8]? {
        let fd = openFile(name)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw .kernel(.openImage, path: path + "/" + printable(name), .current)
        }
        defer { closeQuietly(fd) }
        do {
            return try readAll(fd, path: path + "/" + printable(name), limit: limit)
        } catch {
            throw .invalid("\(path): \(printable(name)) is too large for metadata")
        }
    }

    /// A blob to unpack, read in chunks.
    func source(_ name: String) throws(UrunError) -> FileSource {
        let fd = openFile(name)
        guard fd >= 0 else { throw .kernel(.openImage, path: path + "/" + printable(name), .current) }
        return FileSource(descriptor: fd, path: path + "/" + name)
    }
}
