import CUrunArchive
import UrunKernel

/// Decompresses into memory the caller gives: the decompressing child's
/// ring slots, or a DecodedSource's buffer. gzip, xz and zstd are decoded by
/// their own libraries, which check what their formats carry (gzip's CRC-32,
/// which libarchive's reader does not); bzip2 goes through libarchive.
protocol Decoder: AnyObject {
    /// Writes up to `buffer.count` bytes at its start and says how many;
    /// 0 only at the end of the data.
    func decode(into buffer: UnsafeMutableRawBufferPointer) throws(UrunError) -> Int
}

/// The compressed formats urun reads, recognised by their magic numbers.
enum Compression {
    case gzip, xz, bzip2, zstd

    init?(magic: some Collection<UInt8>) {
        if magic.starts(with: [0x1F, 0x8B]) { self = .gzip }
        else if magic.starts(with: [0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00]) { self = .xz }
        else if magic.starts(with: [0x42, 0x5A, 0x68]) { self = .bzip2 }
        else if magic.starts(with: [0x28, 0xB5, 0x2F, 0xFD]) { self = .zstd }
        else { return nil }
    }

    /// A decoder of `source`, which holds data of this format.
    func decoder(of source: ByteSource, name: String, threads: Int) throws(UrunError) -> Decoder {
        switch self {
        case .gzip: try GzipDecoder(source, name: name)
        case .xz: try XZDecoder(source, name: name, threads: threads)
        case .zstd: try ZstdDecoder(source, name: name)
        case .bzip2: CopyingDecoder(try DecompressingSource(source, name: name))
        }
    }
}

/// `source` decompressed here, in this process, when its first bytes are a
/// compressed format's; else its bytes as they are.
func decompressed(_ source: ByteSource, name: String) throws(UrunError) -> ByteSource {
    let peeked = try PeekedSource(source)
    guard let compression = Compression(magic: peeked.head) else { return peeked }
    return DecodedSource(try compression.decoder(of: peeked, name: name, threads: 1))
}

/// A source whose first bytes were read to recognise their format, then
/// handed on as they came.
final class PeekedSource: ByteSource {
    private let inner: ByteSource
    /// The first chunk, not yet handed on; the inner source was not read past it.
    private var first: UnsafeRawBufferPointer?
    /// Where the first chunks went when they were too short to recognise anything by.
    private var gathered: UnsafeMutableRawBufferPointer?
    let head: [UInt8]

    init(_ inner: ByteSource) throws(UrunError) {
        self.inner = inner
        var chunk = try inner.next()
        if !chunk.isEmpty && chunk.count < 6 {
            var bytes = Array(chunk)
            while bytes.count < 6 {
                let more = try inner.next()
                if more.isEmpty { break }
                bytes += more
            }
            let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 1)
            storage.copyBytes(from: bytes)
            gathered = storage
            chunk = UnsafeRawBufferPointer(storage)
        }
        first = chunk
        head = Array(chunk.prefix(6))
    }

    deinit { gathered?.deallocate() }

    func next() throws(UrunError) -> UnsafeRawBufferPointer {
        if let chunk = first {
            first = nil
            if !chunk.isEmpty { return chunk }
        }
        return try inner.next()
    }
}

/// A decoder read as a ByteSource, through a 1 MiB buffer of its own.
final class DecodedSource: ByteSource {
    private let decoder: Decoder
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)

    init(_ decoder: Decoder) {
        self.decoder = decoder
    }

    deinit { buffer.deallocate() }

    func next() throws(UrunError) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: buffer.baseAddress, count: try decoder.decode(into: buffer))
    }
}

/// A decoder's compressed input: its source's chunks, until the source ends.
struct CompressedInput {
    private let source: ByteSource
    private(set) var ended = false

    init(_ source: ByteSource) {
        self.source = source
    }

    /// The next chunk, never empty; nil from the end of the source on.
    mutating func next() throws(UrunError) -> UnsafeRawBufferPointer? {
        guard !ended else { return nil }
        let chunk = try source.next()
        if chunk.isEmpty {
            ended = true
            return nil
        }
        return chunk
    }
}

/// A ByteSource's chunks copied out, for the format only libarchive decodes.
final class CopyingDecoder: Decoder {
    private let source: ByteSource
    private var left = UnsafeRawBufferPointer(start: nil, count: 0)

    init(_ source: ByteSource) {
        self.source = source
    }

    func decode(into buffer: UnsafeMutableRawBufferPointer) throws(UrunError) -> Int {
        if left.isEmpty { left = try source.next() }
        let n = min(left.count, buffer.count)
        if n > 0 { buffer.baseAddress!.copyMemory(from: left.baseAddress!, byteCount: n) }
        left = UnsafeRawBufferPointer(rebasing: left[n...])
        return n
    }
}

/// gzip through zlib, each member's CRC-32 and length checked as gzip -d
/// checks them. Members one after the other are read as one stream; bytes
/// after the last member that do not start another are ignored, as gzip -d
/// ignores them (with a warning) and libarchive did.
final class GzipDecoder: Decoder {
    private var compressed: CompressedInput
    private let name: String
    private let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
    private var ended = false

    init(_ source: ByteSource, name: String) throws(UrunError) {
        compressed = CompressedInput(source)
        self.name = name
        stream.initialize(to: z_stream())
        guard urun_gunzip_init(stream) == Z_OK else {
            stream.deallocate()
            throw .invalid("\(name): gzip: out of memory")
        }
    }

    deinit {
        inflateEnd(stream)
        stream.deallocate()
    }

    /// Fills the input when it is used up; false at the end of the source.
    private func refill() throws(UrunError) -> Bool {
        if stream.pointee.avail_in > 0 { return true }
        guard let chunk = try compressed.next() else { return false }
        stream.pointee.next_in = UnsafeMutablePointer(mutating: chunk.baseAddress!.assumingMemoryBound(to: UInt8.self))
        stream.pointee.avail_in = UInt32(chunk.count)
        return true
    }

    func decode(into buffer: UnsafeMutableRawBufferPointer) throws(UrunError) -> Int {
        guard !ended, let start = buffer.baseAddress, !buffer.isEmpty else { return 0 }
        let size = min(buffer.count, Int(UInt32.max))
        stream.pointee.next_out = start.assumingMemoryBound(to: UInt8.self)
        stream.pointee.avail_out = UInt32(size)
        while stream.pointee.avail_out > 0 {
            // Output may still come with no input left (a match that did not fit last time).
            _ = try refill()
            let status = inflate(stream, Z_NO_FLUSH)
            if status == Z_STREAM_END {
                // Another member, or the end.
                guard try refill(), stream.pointee.next_in[0] == 0x1F else {
                    ended = true
                    break
                }
                inflateReset(stream)
                continue
            }
            if status == Z_BUF_ERROR && compressed.ended {
                throw .invalid("\(name): gzip: the compressed data ends early")
            }
            guard status == Z_OK || status == Z_BUF_ERROR else {
                let detail = stream.pointee.msg.map { String(cString: $0) } ?? "the compressed data is corrupt"
                throw .invalid("\(name): gzip: \(status == Z_MEM_ERROR ? "out of memory" : detail)")
            }
        }
        return size - Int(stream.pointee.avail_out)
    }
}

/// xz through liblzma (urun_xz_decoder). Given more than one thread, which
/// only the decompressing child is (it never clones a container), a file
/// made of several blocks is decoded on every core, where GNU tar's `xz -d`
/// uses one; given one, no thread is started.
final class XZDecoder: Decoder {
    private var compressed: CompressedInput
    private let name: String
    private let stream = UnsafeMutablePointer<lzma_stream>.allocate(capacity: 1)
    private var ended = false

    init(_ source: ByteSource, name: String, threads: Int) throws(UrunError) {
        compressed = CompressedInput(source)
        self.name = name
        stream.initialize(to: lzma_stream())
        let status = urun_xz_decoder(stream, UInt32(clamping: threads))
        guard status == LZMA_OK else {
            stream.deallocate()
            throw .invalid("\(name): xz: \(Self.message(status))")
        }
    }

    deinit {
        lzma_end(stream)
        stream.deallocate()
    }

    func decode(into buffer: UnsafeMutableRawBufferPointer) throws(UrunError) -> Int {
        guard !ended, let start = buffer.baseAddress, !buffer.isEmpty else { return 0 }
        stream.pointee.next_out = start.assumingMemoryBound(to: UInt8.self)
        stream.pointee.avail_out = buffer.count
        while stream.pointee.avail_out > 0 {
            if stream.pointee.avail_in == 0, let chunk = try compressed.next() {
                stream.pointee.next_in = chunk.baseAddress!.assumingMemoryBound(to: UInt8.self)
                stream.pointee.avail_in = chunk.count
            }
            let status = lzma_code(stream, compressed.ended ? LZMA_FINISH : LZMA_RUN)
            if status == LZMA_STREAM_END {
                ended = true
                break
            }
            guard status == LZMA_OK else { throw .invalid("\(name): xz: \(Self.message(status))") }
        }
        return buffer.count - stream.pointee.avail_out
    }

    static func message(_ status: lzma_ret) -> String {
        switch status {
        case LZMA_FORMAT_ERROR: "not xz data"
        case LZMA_DATA_ERROR: "the compressed data is corrupt"
        case LZMA_BUF_ERROR: "the compressed data ends early"
        case LZMA_MEM_ERROR: "out of memory"
        case LZMA_MEMLIMIT_ERROR: "decompressing it needs more memory than urun allows (a quarter of RAM)"
        case LZMA_OPTIONS_ERROR: "unsupported compression options"
        default: "decoder error \(status.rawValue)"
        }
    }
}

/// zstd through libzstd's streaming decoder, writing straight into the
/// caller's memory. Concatenated and skippable frames are read as zstd -d
/// reads them, with its default window limit (128 MiB).
final class ZstdDecoder: Decoder {
    private var compressed: CompressedInput
    private let name: String
    private let stream: OpaquePointer
    /// The chunk libzstd reads now.
    private var input = ZSTD_inBuffer(src: nil, size: 0, pos: 0)
    /// Whether the last call ended a frame (libzstd's hint 0): data that ends elsewhere is cut short.
    private var frameEnded = false
    private var ended = false

    init(_ source: ByteSource, name: String) throws(UrunError) {
        compressed = CompressedInput(source)
        self.name = name
        guard let stream = ZSTD_createDStream() else { throw .invalid("\(name): zstd: out of memory") }
        self.stream = stream
    }

    deinit { ZSTD_freeDStream(stream) }

    func decode(into buffer: UnsafeMutableRawBufferPointer) throws(UrunError) -> Int {
        guard !ended, let start = buffer.baseAddress, !buffer.isEmpty else { return 0 }
        var output = ZSTD_outBuffer(dst: start, size: buffer.count, pos: 0)
        while output.pos < output.size {
            if input.pos == input.size, let chunk = try compressed.next() {
                input = ZSTD_inBuffer(src: chunk.baseAddress, size: chunk.count, pos: 0)
            }
            // With the source at its end, this only flushes what the decoder holds.
            let (consumed, produced) = (input.pos, output.pos)
            let hint = ZSTD_decompressStream(stream, &output, &input)
            if ZSTD_isError(hint) != 0 {
                throw .invalid("\(name): zstd: \(String(cString: ZSTD_getErrorName(hint)))")
            }
            // Called with nothing to do after a frame, libzstd hints at the next frame's header.
            if input.pos != consumed || output.pos != produced { frameEnded = hint == 0 }
            if compressed.ended && output.pos < output.size {
                guard frameEnded else { throw .invalid("\(name): zstd: the compressed data ends early") }
                ended = true
                break
            }
        }
        return output.pos
    }
}
