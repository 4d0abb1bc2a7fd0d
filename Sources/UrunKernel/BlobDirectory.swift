import Glibc

/// Content-addressed blobs: `<directory>/sha256/<hex>`, each file only ever
/// put in place whole and verified, and never replaced: another urun may be
/// linking it into a layout at that moment, and link(2) fails on a file
/// whose last name a rename took away.
public struct BlobDirectory: Sendable {
    public let directory: String

    public init(_ directory: String) {
        self.directory = directory
    }

    public func path(_ hex: String) -> String { directory + "/sha256/" + hex }

    public func has(_ hex: String) -> Bool { fileStatus(path(hex)).map(isRegularFile) ?? false }

    /// Stores `bytes` (a manifest, a configuration); returns their sha256.
    @discardableResult
    public func store(_ bytes: [UInt8]) throws(UrunError) -> String {
        let hex = SHA256.digest(of: bytes)
        if has(hex) { return hex }
        try makeDirectories(directory + "/sha256", mode: 0o700, step: .writeFile)
        let temporary = path(hex) + ".tmp-" + randomHex(bytes: 4)
        let fd = try sys(.writeFile, path: temporary) { open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600) }
        defer {
            closeQuietly(fd)
            unlink(temporary)
        }
        try writeAll(fd, bytes, path: temporary)
        try install(temporary, as: hex)
        return hex
    }

    /// Puts a complete, verified file in place under its digest (the file keeps its own name too).
    public func install(_ file: String, as hex: String) throws(UrunError) {
        try makeDirectories(directory + "/sha256", mode: 0o700, step: .writeFile)
        if Glibc.link(file, path(hex)) != 0 && errno != EEXIST { throw .kernel(.writeFile, path: path(hex), .current) }
    }

    /// Links a blob into an OCI layout directory (`<layout>/blobs/sha256/<hex>`).
    public func link(_ hex: String, into layout: String) throws(UrunError) {
        try makeDirectories(layout + "/blobs/sha256", mode: 0o700, step: .writeFile)
        let target = layout + "/blobs/sha256/" + hex
        if Glibc.link(path(hex), target) != 0 && errno != EEXIST { throw .kernel(.writeFile, path: target, .current) }
    }
}
