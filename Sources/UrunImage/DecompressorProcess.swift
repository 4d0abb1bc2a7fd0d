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
/// named by the sha256 of the file) and fills a ring of 1 MiB slots in memory
/// shared with urun, which reads the plain tar straight from them: no pipe
/// copies the data (through a pipe, zstd's output cost more system time than
/// the overlap saved). One byte on `filled` says a slot is ready, one on
/// `free` hands it back. `finish` returns the digest, or the child's error.
/// The file's open description is shared, so its offset says how far the
/// child has read (the progress display). A consumer that stops early (an
/// error, ^C) closes `free`: the child's next wait for a slot ends and it exits.
final class DecompressorProcess: ByteSource {
    let path: String
    let size: UInt64
    private let file: CInt
    private let filled: CInt
    private let free: CInt
    private let result: CInt
    private let child: pid_t
    private var reaped = false
    private let ring: UnsafeMutableRawPointer
    /// The slot urun reads now (handed back on the next call), and how many filled ones wait.
    private var current = -1
    private var following = 0
    private var ready = 0
    private var ended = false
    private static let slots = 4
    private static let slotSize = 1 << 20
    /// The ring's slots, then one Int per slot: the bytes it holds.
    private static let ringSize = slots * slotSize + slots * MemoryLayout<Int>.stride
    var onProgress: ((UInt64) -> Void)?

    /// A decompressor for `path` when it is compressed so and there is a
    /// second core to run it on; nil otherwise (the caller decompresses in-process).
    static func start(_ path: String) throws(UrunError) -> DecompressorProcess? {
        let cores = sysconf(Int32(_SC_NPROCESSORS_ONLN))
        guard cores > 1 else { return nil }
        let fd = try sys(.openImage, path: path) { open(path, O_RDONLY | O_CLOEXEC) }
        return try start(descriptor: fd, path: path, range: nil, cores: cores)
    }

    /// The same for a file already open (a blob resolved in a layout); the
    /// decompressor owns `fd` from here on.
    /// `range`: only these bytes of it (a layer inside a plain image archive).
    static func start(descriptor fd: CInt, path: String, range: Range<Int64>? = nil) throws(UrunError) -> DecompressorProcess? {
        try start(descriptor: fd, path: path, range: range, cores: sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    }

    /// `cores`: online, counted once (sysconf reads a file for it).
    private static func start(descriptor fd: CInt, path: String, range: Range<Int64>?, cores: Int) throws(UrunError) -> DecompressorProcess? {
        var magic = [UInt8](repeating: 0, count: 6)
        let n = cores > 1 ? pread(fd, &magic, magic.count, off_t(range?.lowerBound ?? 0)) : 0
        guard n > 0, let compression = Compression(magic: magic.prefix(n)) else {
            closeQuietly(fd)
            return nil
        }
        return try DecompressorProcess(path: path, file: fd, range: range, compression: compression, cores: cores)
    }

    private init(path: String, file: CInt, range: Range<Int64>?, compression: Compression, cores: Int) throws(UrunError) {
        self.path = path
        self.file = file
        var st = stat()
        fstat(file, &st)
        size = range.map { UInt64($0.count) } ?? UInt64(max(0, st.st_size))
        var filledPipe: [CInt] = [-1, -1]
        var freePipe: [CInt] = [-1, -1]
        var report: [CInt] = [-1, -1]
        let shared = mmap(nil, Self.ringSize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0)
        do throws(UrunError) {
            guard let shared, shared != MAP_FAILED else { throw .kernel(.unpackImage, path: path, .current) }
            try sys(.unpackImage) { urun_pipe2(&filledPipe, O_CLOEXEC) }
            // A socket, so that handing back a slot the ended child no longer
            // waits for is EPIPE for send(MSG_NOSIGNAL), not a SIGPIPE for urun.
            try sys(.unpackImage) { socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &freePipe) }
            try sys(.unpackImage) { urun_pipe2(&report, O_CLOEXEC) }
        } catch {
            (filledPipe + freePipe + report + [file]).filter { $0 >= 0 }.forEach(closeQuietly)
            if let shared, shared != MAP_FAILED { munmap(shared, Self.ringSize) }
            throw error
        }
        ring = shared!
        var pidfd: CInt = -1
        let pid = urun_clone(0, -1, &pidfd)
        guard pid >= 0 else {
            let error = UrunError.kernel(.unpackImage, path: path, .current)
            (filledPipe + freePipe + report + [file]).forEach(closeQuietly)
            munmap(ring, Self.ringSize)
            throw error
        }
        if pid == 0 {
            [filledPipe[0], freePipe[1], report[0]].forEach(closeQuietly)
            Self.decompress(
                file: file, path: path, range: range, compression: compression, cores: cores,
                ring: ring, filled: filledPipe[1], free: freePipe[0], report: report[1])
        }
        closeQuietly(pidfd)
        [filledPipe[1], freePipe[0], report[1]].forEach(closeQuietly)
        child = pid
        filled = filledPipe[0]
        free = freePipe[1]
        result = report[0]
    }

    private static func length(_ ring: UnsafeMutableRawPointer, _ slot: Int) -> UnsafeMutablePointer<Int> {
        (ring + slots * slotSize).assumingMemoryBound(to: Int.self) + slot
    }

    /// The child: file → sha256 → decompress → the ring's slots, each filled
    /// in place before it is handed over; "OK <hex>" or "ERR <message>" on
    /// `report`. xz may decode on all `cores` here: threads are safe in this
    /// child, which clones nothing.
    private static func decompress(
        file: CInt, path: String, range: Range<Int64>?, compression: Compression, cores: Int,
        ring: UnsafeMutableRawPointer, filled: CInt, free: CInt, report: CInt
    ) -> Never {
        _ = urun_set_pdeathsig(SIGKILL)
        signal(SIGPIPE, SIG_IGN)
        var credits = slots
        var slot = 0
        var used = 0
        // Hands the slot over, then waits for a free one unless it was the
        // last; false once urun has stopped reading.
        func handOver(last: Bool = false) -> Bool {
            length(ring, slot).pointee = used
            guard write(filled, [UInt8(1)], 1) == 1 else { return false }
            slot = (slot + 1) % slots
            used = 0
            credits -= 1
            while credits == 0 && !last {
                var tokens = [UInt8](repeating: 0, count: slots)
                let n = read(free, &tokens, tokens.count)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { return false }
                credits += n
            }
            return true
        }
        do throws(UrunError) {
            let hashed = HashingSource(FileSource(descriptor: file, path: path, range: range))
            let decoder = try compression.decoder(of: hashed, name: path, threads: cores)
            while true {
                let n = try decoder.decode(into: UnsafeMutableRawBufferPointer(start: ring + slot * slotSize + used, count: slotSize - used))
                if n == 0 { break }
                used += n
                if used == slotSize && !handOver() { break }
            }
            if used > 0 { _ = handOver(last: true) }
            closeQuietly(filled)
            writeQuietly(report, "OK " + (try hashed.finish()))
        } catch {
            writeQuietly(report, "ERR " + error.description)
        }
        _exit(0)
    }

    deinit {
        closeQuietly(filled)
        closeQuietly(free)
        if !reaped {
            kill(child, SIGKILL)
            var status: CInt = 0
            while waitpid(child, &status, 0) < 0 && errno == EINTR {}
        }
        closeQuietly(result)
        closeQuietly(file)
        munmap(ring, Self.ringSize)
    }

    func next() throws(UrunError) -> UnsafeRawBufferPointer {
        if urun_interrupted() != 0 { throw .invalid("interrupted") }
        if current >= 0 {
            // The slot read last is the child's again.
            _ = send(free, [UInt8(1)], 1, Int32(MSG_NOSIGNAL))
            current = -1
        }
        guard !ended else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        if ready == 0 {
            var tokens = [UInt8](repeating: 0, count: Self.slots)
            var n: Int
            repeat { n = read(filled, &tokens, tokens.count) } while n < 0 && errno == EINTR
            guard n >= 0 else { throw .kernel(.unpackImage, path: path, .current) }
            if n == 0 {
                ended = true
                try childFailure()
                return UnsafeRawBufferPointer(start: nil, count: 0)
            }
            ready = n
        }
        ready -= 1
        current = following
        following = (following + 1) % Self.slots
        if let onProgress {
            let offset = lseek(file, 0, SEEK_CUR)
            if offset >= 0 { onProgress(UInt64(offset)) }
        }
        return UnsafeRawBufferPointer(start: ring + current * Self.slotSize, count: Self.length(ring, current).pointee)
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
