import CUrunArchive
import CUrunSyscalls
import Glibc
import UrunKernel

/// Reads a tar archive (plain, gzip, xz, zstd or bzip2, recognised by content)
/// with libarchive, while hashing every byte of the file: one pass gives both
/// the entries and the archive's sha256.
final class ArchiveReader {
    let path: String
    private let fd: CInt
    private let archive: OpaquePointer
    private let buffer: UnsafeMutableRawPointer
    private static let bufferSize = 1 << 20
    private(set) var hasher = SHA256()
    private(set) var bytesRead: UInt64 = 0
    let fileSize: UInt64
    var onProgress: ((UInt64) -> Void)?

    init(path: String) throws(UrunError) {
        self.path = path
        fd = try sys(.openImage, path: path) { open(path, O_RDONLY | O_CLOEXEC) }
        var st = stat()
        fstat(fd, &st)
        fileSize = UInt64(st.st_size)
        buffer = .allocate(byteCount: Self.bufferSize, alignment: 64)
        archive = archive_read_new()
        archive_read_support_format_tar(archive)
        archive_read_support_filter_gzip(archive)
        archive_read_support_filter_xz(archive)
        archive_read_support_filter_zstd(archive)
        archive_read_support_filter_bzip2(archive)
        let client = Unmanaged.passUnretained(self).toOpaque()
        let status = archive_read_open(archive, client, nil, { _, client, out in
            Unmanaged<ArchiveReader>.fromOpaque(client!).takeUnretainedValue().fill(out!)
        }, nil)
        if status != ARCHIVE_OK {
            // Every property is set, so deinit frees the archive, the descriptor and the buffer.
            throw .invalid("\(path): not a tar archive (plain, gzip, xz, zstd or bzip2): \(errorString)")
        }
    }

    deinit {
        archive_read_free(archive)
        closeQuietly(fd)
        buffer.deallocate()
    }

    /// libarchive's read callback: the next chunk of the file, hashed on the way.
    private func fill(_ out: UnsafeMutablePointer<UnsafeRawPointer?>) -> Int {
        if urun_interrupted() != 0 { return -1 }
        var n: Int
        repeat { n = read(fd, buffer, Self.bufferSize) } while n < 0 && errno == EINTR
        guard n >= 0 else { return -1 }
        hasher.update(UnsafeRawBufferPointer(start: buffer, count: n))
        bytesRead += UInt64(n)
        onProgress?(bytesRead)
        out.pointee = UnsafeRawPointer(buffer)
        return n
    }

    var errorString: String {
        archive_error_string(archive).map { String(cString: $0) } ?? "unknown error"
    }

    /// The next entry, or nil at the end of the archive.
    func next() throws(UrunError) -> OpaquePointer? {
        var entry: OpaquePointer?
        let status = archive_read_next_header(archive, &entry)
        switch status {
        case ARCHIVE_OK, ARCHIVE_WARN: return entry
        case ARCHIVE_EOF: return nil
        default: throw failure()
        }
    }

    /// Calls `body` with each block of the current entry's data and its offset.
    func readData(_ body: (UnsafeRawBufferPointer, Int64) throws(UrunError) -> Void) throws(UrunError) {
        var block: UnsafeRawPointer?
        var size = 0
        var offset: Int64 = 0
        while true {
            let status = archive_read_data_block(archive, &block, &size, &offset)
            if status == ARCHIVE_EOF { return }
            guard status == ARCHIVE_OK || status == ARCHIVE_WARN else { throw failure() }
            try body(UnsafeRawBufferPointer(start: block, count: size), offset)
        }
    }

    /// Reads what libarchive left after the end-of-archive marker, so the digest
    /// covers the whole file.
    func finishDigest() throws(UrunError) -> String {
        while true {
            var n: Int
            repeat { n = read(fd, buffer, Self.bufferSize) } while n < 0 && errno == EINTR
            guard n >= 0 else { throw .kernel(.unpackImage, path: path, .current) }
            if n == 0 { break }
            hasher.update(UnsafeRawBufferPointer(start: buffer, count: n))
            bytesRead += UInt64(n)
        }
        return hasher.finalizeHex()
    }

    private func failure() -> UrunError {
        if urun_interrupted() != 0 { return .invalid("interrupted") }
        return .invalid("\(path): \(errorString)")
    }
}
