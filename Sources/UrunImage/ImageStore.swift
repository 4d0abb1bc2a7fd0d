import CUrunSyscalls
import Glibc
import UrunKernel

/// An image ready to be a container's lower layer.
public struct Rootfs: Equatable, Sendable {
    /// The directory overlayfs uses as its read-only lower layer.
    public let path: String
    /// sha256 of the archive it came from; nil for a directory image.
    public let digest: String?

    public init(path: String, digest: String?) {
        self.path = path
        self.digest = digest
    }
}

/// The content-addressed cache of unpacked images:
///
///     <cache>/rootfs/<sha256 of the archive>/   unpacked trees, shared by all containers
///     <cache>/keys/<cheap key> -> ../rootfs/<sha256>
///     <cache>/tmp/<cheap key>.<random>/         an unpack in progress
///     <cache>/locks/<cheap key>.lock            one unpacker per archive at a time
///
/// The cheap key (device, inode, size, mtime, ctime of the archive) lets a warm
/// start find its tree with a stat and a readlink, without reading the archive.
/// An unpack goes to tmp/ and is renamed into rootfs/ only when complete, so a
/// crash, a full disk or ^C never leaves a tree that a later run would use.
public struct ImageStore: Sendable {
    public let directory: String

    public init(directory: String) {
        self.directory = directory
    }

    /// The lower directory for `image`: a directory is used as it is; an
    /// archive is unpacked on first use.
    public func rootfs(for image: String, showProgress: Bool = false) throws(UrunError) -> Rootfs {
        var st = stat()
        guard stat(image, &st) == 0 else {
            let errno = Errno.current
            if errno == .noSuchFileOrDirectory { throw .invalid("image \(image): no such file or directory") }
            throw .invalid("image \(image): \(errno.message)")
        }
        let path = try UrunPaths.absolute(image)
        if isDirectory(st) {
            guard access(path, R_OK | X_OK) == 0 else { throw .invalid("image \(image): \(Errno.current.message)") }
            return Rootfs(path: path, digest: nil)
        }
        guard isRegularFile(st) else { throw .invalid("image \(image): not a file or directory") }
        guard access(path, R_OK) == 0 else { throw .invalid("image \(image): \(Errno.current.message)") }

        let key = Self.cheapKey(st)
        if let cached = lookup(key) { return cached }
        return try unpack(path, key: key, showProgress: showProgress)
    }

    /// The archive file's identity: any change to its content changes its
    /// size, mtime or at least ctime, and a copy has another inode.
    static func cheapKey(_ st: stat) -> String {
        "\(st.st_dev)-\(st.st_ino)-\(st.st_size)-\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)-\(st.st_ctim.tv_sec).\(st.st_ctim.tv_nsec)"
    }

    private func lookup(_ key: String) -> Rootfs? {
        var buffer = [CChar](repeating: 0, count: 256)
        let n = readlink(directory + "/keys/" + key, &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        let target = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let digest = baseName(of: target)
        let path = directory + "/rootfs/" + digest
        guard let st = fileStatus(path), isDirectory(st) else { return nil }
        return Rootfs(path: path, digest: digest)
    }

    private func unpack(_ archive: String, key: String, showProgress: Bool) throws(UrunError) -> Rootfs {
        for sub in ["rootfs", "keys", "tmp", "locks"] {
            try makeDirectories(directory + "/" + sub, mode: 0o755, step: .unpackImage)
        }
        let lockPath = directory + "/locks/" + key + ".lock"
        let lock = try sys(.unpackImage, path: lockPath) { urun_open_mode(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644) }
        defer { closeQuietly(lock) }
        try sys(.unpackImage, path: lockPath) { flock(lock, LOCK_EX) }
        // Another urun may have unpacked it while we waited for the lock.
        if let cached = lookup(key) { return cached }
        // We hold the lock, so any tmp/<key>.* left is from a killed unpack.
        for name in (try? directoryEntries(directory + "/tmp")) ?? [] where name.hasPrefix(key + ".") {
            try? removeTree(directory + "/tmp/" + name)
        }

        let temporary = directory + "/tmp/" + key + "." + randomHex(bytes: 6)
        try sys(.unpackImage, explain: "unpack \(archive) into \(temporary)", path: temporary) { mkdir(temporary, 0o755) }
        urun_install_interrupt_flag()
        defer { urun_remove_interrupt_flag() }
        do throws(UrunError) {
            let digest = try extract(archive, into: temporary, showProgress: showProgress)
            let final = directory + "/rootfs/" + digest
            if rename(temporary, final) != 0 {
                // The same content arrived under another name (a copy of the file).
                guard errno == EEXIST || errno == ENOTEMPTY else { throw .kernel(.unpackImage, path: final, .current) }
                try removeTree(temporary)
            }
            let link = directory + "/keys/" + key
            let staging = link + ".tmp-" + randomHex(bytes: 4)
            try sys(.unpackImage, path: link) { symlink("../rootfs/" + digest, staging) }
            try sys(.unpackImage, path: link) { rename(staging, link) }
            return Rootfs(path: final, digest: digest)
        } catch {
            try? removeTree(temporary)
            throw error
        }
    }

    private func extract(_ archive: String, into temporary: String, showProgress: Bool) throws(UrunError) -> String {
        let reader = try ArchiveReader(path: archive)
        let meter = ProgressMeter(label: baseName(of: archive), total: reader.fileSize, enabled: showProgress)
        reader.onProgress = { meter.update($0) }
        defer { meter.finish() }
        let root = try sys(.unpackImage, path: temporary) { open(temporary, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        defer { closeQuietly(root) }
        var extractor = Extractor(root: root, rootPath: temporary)
        try extractor.extract(from: reader)
        let digest = try reader.finishDigest()
        meter.finish()
        if extractor.skippedDevices > 0 {
            writeQuietly(
                2,
                "urun: skipped \(extractor.skippedDevices) device node\(extractor.skippedDevices == 1 ? "" : "s") in \(baseName(of: archive)) that an unprivileged user cannot create (a container's /dev is provided at run time)\n"
            )
        }
        return digest
    }
}

/// A one-line progress display on a terminal, for archives large enough to
/// take a noticeable time.
final class ProgressMeter {
    private let label: String
    private let total: UInt64
    private let enabled: Bool
    private var shownPercent = -1
    private var visible = false

    init(label: String, total: UInt64, enabled: Bool) {
        self.label = label
        self.total = total
        self.enabled = enabled && total >= 16 << 20 && isatty(2) == 1
    }

    func update(_ done: UInt64) {
        guard enabled, total > 0 else { return }
        let percent = Int(min(done, total) * 100 / total)
        guard percent != shownPercent else { return }
        shownPercent = percent
        visible = true
        writeQuietly(2, "\rurun: unpacking \(label) \(percent)% of \(total >> 20) MiB")
    }

    func finish() {
        guard visible else { return }
        visible = false
        writeQuietly(2, "\r\u{1B}[K")
    }
}
