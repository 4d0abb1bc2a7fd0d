import CUrunArchive
import Glibc
import UrunKernel

/// Reads a tar archive's entries with libarchive from a ByteSource of plain
/// tar (a compressed one goes through `decompressed` first).
final class TarReader {
    let name: String
    private let input: LibarchiveInput
    private let archive: OpaquePointer

    init(_ source: ByteSource, name: String) throws(UrunError) {
        self.name = name
        input = LibarchiveInput(source)
        archive = archive_read_new()
        archive_read_support_format_tar(archive)
        try input.open(archive, name: name, what: "a tar archive (plain, gzip, xz, zstd or bzip2)")
    }

    deinit { archive_read_free(archive) }

    /// Where the current entry's first header starts in the (plain) archive.
    var headerPosition: Int64 { archive_read_header_position(archive) }

    /// Where the data of the member whose headers start at `header` lies in
    /// the plain tar file `fd` (of `fileSize` bytes): past its pax and GNU
    /// long-name headers, `size` bytes; nil when the headers do not lead to a
    /// regular file's data inside the file (each header's checksum checked).
    /// What is read there is verified by its digest like any layer.
    static func dataRange(in fd: CInt, header: Int64, size: Int64, fileSize: Int64) -> Range<Int64>? {
        var position = header
        var block = [UInt8](repeating: 0, count: 512)
        for _ in 0..<8 {
            guard position >= 0, position + 512 <= fileSize, pread(fd, &block, 512, off_t(position)) == 512,
                let checksum = octal(block[148..<156]), checksum == headerSum(block)
            else { return nil }
            let type = block[156]
            // Extended headers (pax 'x' and 'g', GNU 'L' and 'K') carry data blocks of their own.
            if [UInt8(ascii: "x"), UInt8(ascii: "g"), UInt8(ascii: "L"), UInt8(ascii: "K")].contains(type) {
                guard let length = octal(block[124..<136]) else { return nil }
                position += 512 + (length + 511) / 512 * 512
                continue
            }
            guard type == UInt8(ascii: "0") || type == 0 || type == UInt8(ascii: "7") else { return nil }
            let start = position + 512
            guard size >= 0, start + size <= fileSize else { return nil }
            return start..<(start + size)
        }
        return nil
    }

    /// A header's checksum as tar computes it: every byte, the checksum field counted as spaces.
    private static func headerSum(_ block: [UInt8]) -> Int64 {
        var sum: Int64 = 0
        for (offset, byte) in block.enumerated() { sum += Int64((148..<156).contains(offset) ? 32 : byte) }
        return sum
    }

    /// A tar header's octal number field; nil when it is not one (or too large to matter here).
    private static func octal(_ field: ArraySlice<UInt8>) -> Int64? {
        var value: Int64 = 0
        var digits = 0
        for byte in field {
            if byte == 0 || byte == UInt8(ascii: " ") { if digits > 0 { break } else { continue } }
            guard (UInt8(ascii: "0")...UInt8(ascii: "7")).contains(byte), digits < 11 else { return nil }
            value = value * 8 + Int64(byte - UInt8(ascii: "0"))
            digits += 1
        }
        return digits > 0 ? value : nil
    }

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
