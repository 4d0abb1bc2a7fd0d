import CUrunSyscalls
import Glibc
import UrunKernel

/// A compressed archive file decompressed by a child process, so that
/// decompression (on one core) overlaps with urun writing the files (on
/// another), as GNU tar runs `zstd -d` or `xz -d` beside itself. urun may not
/// start a thread before it clones a container; a forked child of a
/// single-threaded urun is safe, and never clones anything.
///
/// The child reads the file, hashes it as it goes (a rootfs tarball's layer is
/// named by the sha256 of the file) and writes the plain tar into a pipe;
/// `finish` returns that digest, or the child's error. The file's open
/// description is shared, so its offset says how far the child has read (the
/// progress display). A consumer that stops early (an error, ^C) closes the
/// pipe: the child's next write fails and it exits.
final class DecompressorProcess: ByteSource {
    let path: String
    let size: UInt64
    private let file: CInt
    private let pipe: CInt
    private let result: CInt
    private let child: pid_t
    private var reaped = false
    private let buffer: UnsafeMutableRawPointer
    private static let chunk = 1 << 20
    var onProgress: ((UInt64) -> Void)?

    /// The formats worth a child, by their magic: gzip, xz and bzip2, whose
    /// decompression costs about as much as writing the files. zstd
    /// decompresses so fast that the pipe costs more than the overlap saves
    /// (Debian minbase on tmpfs: 359 ms in-process, 531 ms with a child; on
    /// ext4 2.62 against 2.75 s), so it stays in-process.
    static func isWorthAChild(_ magic: [UInt8]) -> Bool {
        magic.starts(with: [0x1F, 0x8B]) || magic.starts(with: [0xFD, 0x37, 0x7A, 0x58, 0x5A])
            || magic.starts(with: [0x42, 0x5A, 0x68])
    }

    /// A decompressor for `path` when it is compressed so and there is a
    /// second core to run it on; nil otherwise (the caller decompresses in-process).
    static func start(_ path: String) throws(UrunError) -> DecompressorProcess? {
        guard sysconf(Int32(_SC_NPROCESSORS_ONLN)) > 1 else { return nil }
        let fd = try sys(.openImage, path: path) { open(path, O_RDONLY | O_CLOEXEC) }
        var magic = [UInt8](repeating: 0, count: 6)
        let n = pread(fd, &magic, magic.count, 0)
        guard n > 0, isWorthAChild(Array(magic.prefix(n))) else {
            closeQuietly(fd)
            return nil
        }
        return try DecompressorProcess(path: path, file: fd)
    }

    private init(path: String, file: CInt) throws(UrunError) {
        self.path = path
        self.file = file
        var st = stat()
        fstat(file, &st)
        size = UInt64(max(0, st.st_size))
        var data: [CInt] = [-1, -1]
        var report: [CInt] = [-1, -1]
        do throws(UrunError) {
            try sys(.unpackImage) { urun_pipe2(&data, O_CLOEXEC) }
            try sys(.unpackImage) { urun_pipe2(&report, O_CLOEXEC) }
        } catch {
            (data + report + [file]).forEach(closeQuietly)
            throw error
        }
        // A bigger pipe: fewer switches between the two processes.
        _ = fcntl(data[1], 1031 /* F_SETPIPE_SZ */, 1 << 20)
        var pidfd: CInt = -1
        let pid = urun_clone(0, -1, &pidfd)
        guard pid >= 0 else {
            let error = UrunError.kernel(.unpackImage, path: path, .current)
            (data + report + [file]).forEach(closeQuietly)
            throw error
        }
        if pid == 0 {
            closeQuietly(data[0])
            closeQuietly(report[0])
            Self.decompress(file: file, path: path, into: data[1], report: report[1])
        }
        closeQuietly(pidfd)
        closeQuietly(data[1])
        closeQuietly(report[1])
        child = pid
        pipe = data[0]
        result = report[0]
        buffer = .allocate(byteCount: Self.chunk, alignment: 64)
    }

    /// The child: file → sha256 → decompress → pipe; "OK <hex>" or "ERR <message>" on `report`.
    private static func decompress(file: CInt, path: String, into output: CInt, report: CInt) -> Never {
        _ = urun_set_pdeathsig(SIGKILL)
        signal(SIGPIPE, SIG_IGN)
        do throws(UrunError) {
            let hashed = HashingSource(FileSource(descriptor: file, path: path))
            let plain = try DecompressingSource(hashed, name: path)
            while true {
                let chunk = try plain.next()
                if chunk.isEmpty { break }
                try writeAll(output, chunk, step: .unpackImage, path: path)
            }
            closeQuietly(output)
            writeQuietly(report, "OK " + (try hashed.finish()))
        } catch {
            writeQuietly(report, "ERR " + error.description)
        }
        _exit(0)
    }

    deinit {
        closeQuietly(pipe)
        if !reaped {
            kill(child, SIGKILL)
            var status: CInt = 0
            while waitpid(child, &status, 0) < 0 && errno == EINTR {}
        }
        closeQuietly(result)
        closeQuietly(file)
        buffer.deallocate()
    }

    func next() throws(UrunError) -> UnsafeRawBufferPointer {
        if urun_interrupted() != 0 { throw .invalid("interrupted") }
        var n: Int
        repeat { n = read(pipe, buffer, Self.chunk) } while n < 0 && errno == EINTR
        guard n >= 0 else { throw .kernel(.unpackImage, path: path, .current) }
        if n == 0 { try childFailure() }
        if let onProgress {
            let offset = lseek(file, 0, SEEK_CUR)
            if offset >= 0 { onProgress(UInt64(offset)) }
        }
        return UnsafeRawBufferPointer(start: buffer, count: n)
    }

    /// The sha256 of the compressed file, once all of it was decompressed.
    func finish() throws(UrunError) -> String {
        while try !next().isEmpty {}
        let report = try waitForReport()
        guard report.hasPrefix("OK ") else { throw .invalid(String(report.dropFirst(4))) }
        return String(report.dropFirst(3))
    }

    /// At the end of the data: the child's error, if it failed.
    private func childFailure() throws(UrunError) {
        let report = try waitForReport()
        if report.hasPrefix("ERR ") { throw .invalid(String(report.dropFirst(4))) }
        reportCache = report
    }

    private var reportCache: String?

    private func waitForReport() throws(UrunError) -> String {
        if let reportCache { return reportCache }
        let text = String(decoding: (try? readAll(result, limit: 1 << 16)) ?? [], as: UTF8.self)
        var status: CInt = 0
        while waitpid(child, &status, 0) < 0 && errno == EINTR {}
        reaped = true
        let report = text.isEmpty ? "ERR \(path): the decompressing process died (status \(status))" : text
        reportCache = report
        return report
    }
}
