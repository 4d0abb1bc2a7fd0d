import CUrunArchive
import Glibc
import UrunKernel

/// Reads a tar archive's entries with libarchive from a ByteSource;
/// `decompress` recognises gzip, xz, zstd and bzip2 by content.
final class TarReader {
    let name: String
    private let input: LibarchiveInput
    private let archive: OpaquePointer

    init(_ source: ByteSource, name: String, decompress: Bool) throws(UrunError) {
        self.name = name
        input = LibarchiveInput(source)
        archive = archive_read_new()
        archive_read_support_format_tar(archive)
        if decompress { supportDecompression(archive) }
        try input.open(archive, name: name, what: "a tar archive (plain, gzip, xz, zstd or bzip2)")
    }

    deinit { archive_read_free(archive) }

    /// The next entry, or nil at the end of the archive.
    func next() throws(UrunError) -> OpaquePointer? {
        var entry: OpaquePointer?
        switch archive_read_next_header(archive, &entry) {
        case ARCHIVE_OK, ARCHIVE_WARN: return entry
        case ARCHIVE_EOF: return nil
        default: throw input.failure(archive, name: name)
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
            guard status == ARCHIVE_OK || status == ARCHIVE_WARN else { throw input.failure(archive, name: name) }
            try body(UnsafeRawBufferPointer(start: block, count: size), offset)
        }
    }

    /// The next block of the current entry's data, empty at its end (for a
    /// nested archive: a layer inside an image archive).
    func nextDataBlock() throws(UrunError) -> UnsafeRawBufferPointer {
        var block: UnsafeRawPointer?
        var size = 0
        var offset: Int64 = 0
        let status = archive_read_data_block(archive, &block, &size, &offset)
        if status == ARCHIVE_EOF { return UnsafeRawBufferPointer(start: nil, count: 0) }
        guard status == ARCHIVE_OK || status == ARCHIVE_WARN else { throw input.failure(archive, name: name) }
        return UnsafeRawBufferPointer(start: block, count: size)
    }

    /// The whole data of the current entry, for small files (manifests, configs).
    func readAllData(limit: Int) throws(UrunError) -> [UInt8] {
        var data: [UInt8] = []
        try readData { (block, _) throws(UrunError) in
            data.append(contentsOf: block)
            if data.count > limit { throw .invalid("\(name): a metadata file is larger than \(limit >> 20) MiB") }
        }
        return data
    }
}
