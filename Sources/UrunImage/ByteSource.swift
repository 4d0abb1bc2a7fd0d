import CUrunArchive
import CUrunSyscalls
import Glibc
import UrunKernel

/// Where archive bytes come from, one chunk at a time without copying: a
/// file, an entry of an outer archive (a layer inside an image archive), or
/// a decompressor. Sources stack: file → hash → decompress → hash → tar.
protocol ByteSource: AnyObject {
    /// The next chunk, valid until the next call; empty at the end.
    func next() throws(UrunError) -> UnsafeRawBufferPointer
}

/// A file, or a byte range of one (a member of a plain tar), read in 1 MiB
/// chunks; ^C (SIGINT) ends the read.
final class FileSource: ByteSource {
    let path: String
    let size: UInt64
    private let fd: CInt
    /// With a range: where the next read starts, and where the range ends (read with pread).
    private let range: Range<Int64>?
    private var position: Int64
    private let buffer: UnsafeMutableRawPointer
    private static let chunk = 1 << 20

    convenience init(path: String) throws(UrunError) {
        self.init(descriptor: try sys(.openImage, path: path) { open(path, O_RDONLY | O_CLOEXEC) }, path: path)
    }

    /// A file already open (a blob resolved inside a layout directory), or
    /// `range` of it; the source closes it.
    init(descriptor: CInt, path: String, range: Range<Int64>? = nil) {
        self.path = path
        fd = descriptor
        self.range = range
        position = range?.lowerBound ?? 0
        var st = stat()
        fstat(fd, &st)
        size = range.map { UInt64($0.count) } ?? UInt64(max(0, st.st_size))
        buffer = .allocate(byteCount: Self.chunk, alignment: 64)
    }

    deinit {
        closeQuietly(fd)
        buffer.deallocate()
    }

    /// A decompressing child reading this file from its start, when it is
    /// compressed and there is a core for it; nil otherwise.
    func decompressedByChild() throws(UrunError) -> DecompressorProcess? {
        let copy = try sys(.openImage, path: path) { urun_dup_cloexec(fd) }
        return try DecompressorProcess.start(descriptor: copy, path: path, range: range)
    }

    func next() throws(UrunError) -> UnsafeRawBufferPointer {
        if urun_interrupted() != 0 { throw .invalid("interrupted") }
        var n: Int
        if let range {
            let wanted = Int(min(Int64(Self.chunk), range.upperBound - position))
            repeat { n = wanted > 0 ? pread(fd, buffer, wanted, off_t(position)) : 0 } while n < 0 && errno == EINTR
            if n > 0 { position += Int64(n) }
            if n == 0 && position < range.upperBound { throw .invalid("\(path): the file ends inside this member") }
        } else {
            repeat { n = read(fd, buffer, Self.chunk) } while n < 0 && errno == EINTR
        }
        guard n >= 0 else { throw .kernel(.unpackImage, path: path, .current) }
        return UnsafeRawBufferPointer(start: buffer, count: n)
    }
}

/// Passes chunks through while hashing (unless told not to) and counting them.
final class HashingSource: ByteSource {
    private let inner: ByteSource
    private let hashing: Bool
    private var hasher = SHA256()
    private(set) var count: UInt64 = 0
    var onProgress: ((UInt64) -> Void)?

    init(_ inner: ByteSource, hashing: Bool = true) {
        self.inner = inner
        self.hashing = hashing
    }

    func next() throws(UrunError) -> UnsafeRawBufferPointer {
        let chunk = try inner.next()
        if hashing { hasher.update(chunk) }
        count += UInt64(chunk.count)
        onProgress?(count)
        return chunk
    }

    /// Reads what the consumer left (a tar's padding after its end marker),
    /// so that the digest covers every byte; the digest as hex.
    func finish() throws(UrunError) -> String {
        while try !next().isEmpty {}
        return hasher.finalizeHex()
    }
}

/// The data of the current entry of an outer tar.
final class EntrySource: ByteSource {
    private let reader: TarReader

    init(_ reader: TarReader) {
        self.reader = reader
    }

    func next() throws(UrunError) -> UnsafeRawBufferPointer {
        try reader.nextDataBlock()
    }
}

/// The decompressed bytes of bzip2 data: libarchive's raw format over its
/// bzip2 filter (the other formats have a Decoder of their own).
final class DecompressingSource: ByteSource {
    private let input: LibarchiveInput
    private let archive: OpaquePointer
    private let name: String

    init(_ inner: ByteSource, name: String) throws(UrunError) {
        self.name = name
        input = LibarchiveInput(inner)
        archive = archive_read_new()
        archive_read_support_format_raw(archive)
        archive_read_support_filter_bzip2(archive)
        try input.open(archive, name: name, what: "bzip2 data")
        var entry: OpaquePointer?
        guard archive_read_next_header(archive, &entry) == ARCHIVE_OK else {
            throw input.failure(archive, name: name)
        }
    }

    deinit { archive_read_free(archive) }

    func next() throws(UrunError) -> UnsafeRawBufferPointer {
        var block: UnsafeRawPointer?
        var size = 0
        var offset: Int64 = 0
        let status = archive_read_data_block(archive, &block, &size, &offset)
        if status == ARCHIVE_EOF { return UnsafeRawBufferPointer(start: nil, count: 0) }
        guard status == ARCHIVE_OK || status == ARCHIVE_WARN else { throw input.failure(archive, name: name) }
        return UnsafeRawBufferPointer(start: block, count: size)
    }
}

/// libarchive's read callback over a ByteSource; keeps the source's error,
/// which libarchive itself would only report as "read error".
final class LibarchiveInput {
    let source: ByteSource
    var error: UrunError?

    init(_ source: ByteSource) {
        self.source = source
    }

    func open(_ archive: OpaquePointer, name: String, what: String) throws(UrunError) {
        let client = Unmanaged.passUnretained(self).toOpaque()
        let status = archive_read_open(archive, client, nil, { _, client, out in
            let input = Unmanaged<LibarchiveInput>.fromOpaque(client!).takeUnretainedValue()
            do throws(UrunError) {
                let chunk = try input.source.next()
                out!.pointee = chunk.baseAddress
                return chunk.count
            } catch {
                input.error = error
                return -1
            }
        }, nil)
        if status != ARCHIVE_OK {
            if let error { throw error }
            throw .invalid("\(name): not \(what): \(Self.message(archive))")
        }
    }

    func failure(_ archive: OpaquePointer, name: String) -> UrunError {
        if let error { return error }
        return .invalid("\(name): \(Self.message(archive))")
    }

    static func message(_ archive: OpaquePointer) -> String {
        archive_error_string(archive).map { String(cString: $0) } ?? "unknown error"
    }
}
