import CUrunArchive
import CUrunSyscalls
import Glibc
import UrunKernel

/// Writes a directory tree as a tar stream (pax, through libarchive): an
/// image layer (`commit`, `save`, `push`), or a root filesystem (`export`,
/// `cp`). Names are bytes; hard links stay links; sizes, modes, owners,
/// times, symlinks, devices and FIFOs are kept. Runs where the owners read
/// as the container sees them (inside the user namespace with subordinate
/// ids), or maps the caller's own files to root when there is none.
///
/// A layer is a changeset as the OCI image spec writes it: an overlay
/// whiteout (a 0/0 character device) becomes an empty `.wh.NAME`, and an
/// opaque directory (user.overlay.opaque=y) gets a `.wh..wh..opq` in it.
public struct LayerWriter {
    public enum Form {
        /// An image layer: whiteouts and opaque directories written as OCI's.
        case layer
        /// A plain tree (a merged root filesystem has no whiteouts).
        case tree
    }

    public struct Written: Sendable {
        /// sha256 of the tar (a layer's diff id).
        public let diffID: String
        /// sha256 and size of what went to the output (gzip'd, or the tar itself).
        public let digest: String
        public let size: Int64
    }

    public let form: Form
    public let gzip: Bool
    /// An owner as the tar records it: the caller's own ids are root's when
    /// urun maps only the caller (no subordinate ids).
    public let owner: (uid_t, gid_t) -> (uid_t, gid_t)
    /// A path prefix for every entry ("" for a layer; the copied name for `cp`).
    public let prefix: [UInt8]

    public init(form: Form, gzip: Bool, prefix: [UInt8] = [], owner: @escaping (uid_t, gid_t) -> (uid_t, gid_t) = { ($0, $1) }) {
        self.form = form
        self.gzip = gzip
        self.prefix = prefix
        self.owner = owner
    }

    /// Writes the entry `entry` of `parent` as `prefix`: a file alone, a
    /// directory with everything below it.
    public func write(entry: DirectoryEntry, in parent: CInt, display: String, to output: CInt) throws(UrunError) -> Written {
        var st = stat()
        guard entry.withCName({ fstatat(parent, $0, &st, AT_SYMLINK_NOFOLLOW) }) == 0 else {
            throw .kernel(.readFile, path: display, .current)
        }
        if st.st_mode & Glibc.S_IFMT == Glibc.S_IFDIR {
            let directory = entry.withCName { openat(parent, $0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
            guard directory >= 0 else { throw .kernel(.readFile, path: display, .current) }
            defer { closeQuietly(directory) }
            return try write(directory, display: display, to: output)
        }
        return try write(parent, display: display, to: output, only: entry)
    }

    /// Writes the tree below `root` (its entries; the root itself as `prefix` when one is given) to `output`.
    public func write(_ root: CInt, display: String, to output: CInt) throws(UrunError) -> Written {
        try write(root, display: display, to: output, only: nil)
    }

    private func write(_ root: CInt, display: String, to output: CInt, only single: DirectoryEntry?) throws(UrunError) -> Written {
        let sink = try TarSink(output: output, gzip: gzip, display: display)
        guard let archive = archive_write_new() else { throw .invalid("libarchive: out of memory") }
        defer { archive_write_free(archive) }
        archive_write_set_format_pax_restricted(archive)
        archive_write_set_bytes_per_block(archive, 10240)
        let context = Unmanaged.passUnretained(sink).toOpaque()
        let opened = archive_write_open(archive, context, nil, { _, context, data, length in
            let sink = Unmanaged<TarSink>.fromOpaque(context!).takeUnretainedValue()
            return sink.write(UnsafeRawBufferPointer(start: data, count: length)) ? length : -1
        }, nil)
        guard opened == ARCHIVE_OK else {
            throw .invalid("\(display): \(LibarchiveInput.message(archive))")
        }
        var state = WalkState(archive: archive, sink: sink, display: display)
        if let single {
            var st = stat()
            guard single.withCName({ fstatat(root, $0, &st, AT_SYMLINK_NOFOLLOW) }) == 0 else {
                throw .kernel(.readFile, path: display, .current)
            }
            try writeEntry(&state, path: prefix, st, directory: root, name: single)
        } else if !prefix.isEmpty {
            var st = stat()
            guard fstat(root, &st) == 0 else { throw .kernel(.readFile, path: display, .current) }
            try writeEntry(&state, path: prefix, st, directory: root, name: nil)
            if form == .layer, isOpaque(root) { try writeWhiteout(&state, path: prefix + Array("/.wh..wh..opq".utf8), st) }
        }
        var path: [[UInt8]] = prefix.isEmpty ? [] : [prefix]
        var rootStatus = stat()
        guard fstat(root, &rootStatus) == 0 else { throw .kernel(.readFile, path: display, .current) }
        if single == nil { try TreeWalk().run(
            root, display: display,
            visit: { (directory, entry) throws(UrunError) in
                var st = stat()
                let found = entry.withCName { fstatat(directory, $0, &st, AT_SYMLINK_NOFOLLOW) }
                guard found == 0 else {
                    if errno == ENOENT { return false }  // removed while we walked
                    throw .kernel(.readFile, path: display + "/" + entry.printableName, .current)
                }
                let full = (path + [entry.bytes]).joined(separator: [UInt8(ascii: "/")]).map { $0 }
                if form == .layer, st.st_mode & Glibc.S_IFMT == Glibc.S_IFCHR, st.st_rdev == 0 {
                    let whiteout = (path + [Array(".wh.".utf8) + entry.bytes]).joined(separator: [UInt8(ascii: "/")]).map { $0 }
                    try writeWhiteout(&state, path: whiteout, st)
                    return false
                }
                try writeEntry(&state, path: full, st, directory: directory, name: entry)
                // Another file system mounted here (/proc, a volume) is not the tree's: its mount point stays empty.
                return st.st_mode & Glibc.S_IFMT == Glibc.S_IFDIR && st.st_dev == rootStatus.st_dev
            },
            enter: { (directory, entry) throws(UrunError) in
                path.append(entry.bytes)
                if form == .layer, isOpaque(directory) {
                    var st = stat()
                    _ = fstat(directory, &st)
                    let marker = (path + [Array(".wh..wh..opq".utf8)]).joined(separator: [UInt8(ascii: "/")]).map { $0 }
                    try writeWhiteout(&state, path: marker, st)
                }
            },
            leave: { _, _ in path.removeLast() }) }
        guard archive_write_close(archive) == ARCHIVE_OK else {
            throw sink.failure ?? .invalid("\(display): \(LibarchiveInput.message(archive))")
        }
        return try sink.finish()
    }

    private struct WalkState {
        let archive: OpaquePointer
        let sink: TarSink
        let display: String
        /// Hard-linked files already written: (device, inode) → their path.
        var links: [String: [UInt8]] = [:]
    }

    private func isOpaque(_ directory: CInt) -> Bool {
        var value: UInt8 = 0
        return urun_fgetxattr(directory, "user.overlay.opaque", &value, 1) == 1 && value == UInt8(ascii: "y")
    }

    private func writeWhiteout(_ state: inout WalkState, path: [UInt8], _ st: stat) throws(UrunError) {
        guard let entry = archive_entry_new() else { throw .invalid("libarchive: out of memory") }
        defer { archive_entry_free(entry) }
        (path + [0]).withUnsafeBufferPointer { archive_entry_copy_pathname(entry, UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self)) }
        archive_entry_set_filetype(entry, UInt32(Glibc.S_IFREG))
        archive_entry_set_perm(entry, 0o644)
        archive_entry_set_size(entry, 0)
        archive_entry_set_mtime(entry, st.st_mtim.tv_sec, 0)
        try header(state, entry, path)
    }

    private func writeEntry(_ state: inout WalkState, path: [UInt8], _ st: stat, directory: CInt, name: DirectoryEntry?) throws(UrunError) {
        guard let entry = archive_entry_new() else { throw .invalid("libarchive: out of memory") }
        defer { archive_entry_free(entry) }
        let shown = state.display + "/" + printable(path)
        (path + [0]).withUnsafeBufferPointer { archive_entry_copy_pathname(entry, UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self)) }
        let (uid, gid) = owner(st.st_uid, st.st_gid)
        archive_entry_set_uid(entry, Int64(uid))
        archive_entry_set_gid(entry, Int64(gid))
        archive_entry_set_perm(entry, st.st_mode & 0o7777)
        archive_entry_set_mtime(entry, st.st_mtim.tv_sec, st.st_mtim.tv_nsec)
        let type = st.st_mode & Glibc.S_IFMT
        var file: CInt = -1
        defer { closeQuietly(file) }
        let key = "\(st.st_dev):\(st.st_ino)"
        if type != Glibc.S_IFDIR && st.st_nlink > 1, let first = state.links[key] {
            archive_entry_set_filetype(entry, UInt32(Glibc.S_IFREG))
            (first + [0]).withUnsafeBufferPointer { archive_entry_copy_hardlink(entry, UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self)) }
            archive_entry_set_size(entry, 0)
            return try header(state, entry, path)
        }
        if type != Glibc.S_IFDIR && st.st_nlink > 1 { state.links[key] = path }
        archive_entry_set_filetype(entry, UInt32(type))
        switch type {
        case Glibc.S_IFREG:
            archive_entry_set_size(entry, Int64(st.st_size))
            guard let name else { throw .invalid("\(shown): a regular file cannot be the root of a copy") }
            file = name.withCName { openat(directory, $0, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC) }
            guard file >= 0 else { throw .kernel(.readFile, path: shown, .current) }
        case Glibc.S_IFLNK:
            guard let name else { break }
            var target = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = name.withCName { readlinkat(directory, $0, &target, target.count - 1) }
            guard n >= 0 else { throw .kernel(.readFile, path: shown, .current) }
            target[n] = 0
            archive_entry_copy_symlink(entry, target)
        case Glibc.S_IFCHR, Glibc.S_IFBLK:
            archive_entry_set_rdev(entry, st.st_rdev)
        case Glibc.S_IFDIR, Glibc.S_IFIFO: break
        default: return  // sockets are not archived
        }
        try header(state, entry, path)
        guard file >= 0 else { return }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var left = Int64(st.st_size)
        while left > 0 {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(file, $0.baseAddress, min($0.count, Int(left))) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw .kernel(.readFile, path: shown, .current) }
            // A file that shrank while read is padded: the header promised its size.
            if n == 0 { buffer = [UInt8](repeating: 0, count: buffer.count) }
            let chunk = n == 0 ? min(buffer.count, Int(left)) : n
            let written = buffer.withUnsafeBytes { archive_write_data(state.archive, $0.baseAddress, chunk) }
            guard written >= 0 else {
                if let failure = state.sink.failure { throw failure }
                throw .invalid("\(shown): \(LibarchiveInput.message(state.archive))")
            }
            left -= Int64(chunk)
        }
    }

    private func header(_ state: WalkState, _ entry: OpaquePointer, _ path: [UInt8]) throws(UrunError) {
        guard archive_write_header(state.archive, entry) >= ARCHIVE_WARN else {
            if let failure = state.sink.failure { throw failure }
            throw .invalid("\(state.display)/\(printable(path)): \(LibarchiveInput.message(state.archive))")
        }
    }
}

/// Where the tar goes: hashed (the diff id), gzip'd when asked, hashed again
/// (the blob digest) and written to a descriptor, in one pass.
private final class TarSink {
    let output: CInt
    let display: String
    var tarHash = SHA256()
    var blobHash = SHA256()
    var size: Int64 = 0
    var failure: UrunError?
    /// On the heap: zlib keeps the stream's address and checks it on every call.
    private var stream: UnsafeMutablePointer<z_stream>?
    private var buffer = [UInt8](repeating: 0, count: 1 << 16)

    init(output: CInt, gzip: Bool, display: String) throws(UrunError) {
        self.output = output
        self.display = display
        if gzip {
            let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
            stream.initialize(to: z_stream())
            guard urun_gzip_init(stream, Z_DEFAULT_COMPRESSION) == Z_OK else {
                stream.deallocate()
                throw .invalid("zlib: cannot start gzip")
            }
            self.stream = stream
        }
    }

    deinit {
        if let stream {
            deflateEnd(stream)
            stream.deallocate()
        }
    }

    func write(_ bytes: UnsafeRawBufferPointer) -> Bool {
        tarHash.update(bytes)
        guard let stream else { return emit(bytes) }
        return compress(stream, bytes, flush: Z_NO_FLUSH)
    }

    private func compress(_ stream: UnsafeMutablePointer<z_stream>, _ bytes: UnsafeRawBufferPointer, flush: CInt) -> Bool {
        stream.pointee.next_in = UnsafeMutablePointer(mutating: bytes.baseAddress?.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = uInt(bytes.count)
        repeat {
            let (status, produced) = buffer.withUnsafeMutableBytes { out -> (CInt, Int) in
                stream.pointee.next_out = out.baseAddress!.assumingMemoryBound(to: Bytef.self)
                stream.pointee.avail_out = uInt(out.count)
                let status = deflate(stream, flush)
                return (status, out.count - Int(stream.pointee.avail_out))
            }
            guard status != Z_STREAM_ERROR else { return false }
            if produced > 0, !buffer.withUnsafeBytes({ emit(UnsafeRawBufferPointer(rebasing: $0[0..<produced])) }) { return false }
            if flush == Z_FINISH && status == Z_STREAM_END { return true }
        } while stream.pointee.avail_out == 0 || flush == Z_FINISH
        return true
    }

    private func emit(_ bytes: UnsafeRawBufferPointer) -> Bool {
        blobHash.update(bytes)
        size += Int64(bytes.count)
        do throws(UrunError) {
            try writeAll(output, bytes, path: display)
            return true
        } catch {
            failure = error
            return false
        }
    }

    func finish() throws(UrunError) -> LayerWriter.Written {
        if let stream {
            guard compress(stream, UnsafeRawBufferPointer(start: nil, count: 0), flush: Z_FINISH) else {
                throw failure ?? .invalid("\(display): gzip failed")
            }
        }
        if let failure { throw failure }
        var tar = tarHash
        var blob = blobHash
        return LayerWriter.Written(diffID: tar.finalizeHex(), digest: blob.finalizeHex(), size: size)
    }
}
