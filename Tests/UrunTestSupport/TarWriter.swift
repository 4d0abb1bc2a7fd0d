/// Writes ustar archives byte by byte, so tests can build archives that no
/// well-behaved tar would produce (absolute names, "..", planted symlinks).
public struct TarWriter {
    public enum Kind: Character, Sendable {
        case file = "0", hardlink = "1", symlink = "2", character = "3", block = "4", directory = "5", fifo = "6"
        /// A PAX extended header for the entry after it.
        case pax = "x"
    }

    public private(set) var bytes: [UInt8] = []

    public init() {}

    public mutating func add(
        _ name: String, _ kind: Kind = .file, content: String = "", link: String = "", mode: Int = 0o644,
        uid: Int = 0, gid: Int = 0, mtime: Int = 1_700_000_000
    ) {
        add(name, kind, bytes: Array(content.utf8), link: link, mode: mode, uid: uid, gid: gid, mtime: mtime)
    }

    public mutating func add(
        _ name: String, _ kind: Kind = .file, bytes data: [UInt8], link: String = "", mode: Int = 0o644,
        uid: Int = 0, gid: Int = 0, mtime: Int = 1_700_000_000
    ) {
        add(name: Array(name.utf8), kind, bytes: data, link: link, mode: mode, uid: uid, gid: gid, mtime: mtime)
    }

    /// An entry whose name is any bytes (not necessarily UTF-8), preceded by a
    /// PAX extended header when `pax` holds records ("uid" = "4294967296").
    public mutating func add(
        name: [UInt8], _ kind: Kind = .file, bytes data: [UInt8] = [], link: String = "", mode: Int = 0o644,
        uid: Int = 0, gid: Int = 0, mtime: Int = 1_700_000_000, pax: [(String, String)] = []
    ) {
        if !pax.isEmpty {
            var records: [UInt8] = []
            for (key, value) in pax {
                // "LEN key=value\n", LEN counting itself.
                let body = " \(key)=\(value)\n"
                var length = body.utf8.count + 1
                while String(length).utf8.count + body.utf8.count > length { length += 1 }
                records += Array((String(length) + body).utf8)
            }
            add(name: Array("PaxHeaders/x".utf8), .pax, bytes: records)
        }
        var header = [UInt8](repeating: 0, count: 512)
        put(&header, 0, 100, name)
        put(&header, 100, 8, octal(mode, 7))
        put(&header, 108, 8, octal(uid, 7))
        put(&header, 116, 8, octal(gid, 7))
        let hasData = kind == .file || kind == .pax
        put(&header, 124, 12, octal(hasData ? data.count : 0, 11))
        put(&header, 136, 12, octal(mtime, 11))
        header[156] = UInt8(ascii: kind.rawValue.unicodeScalars.first!)
        put(&header, 157, 100, Array(link.utf8))
        put(&header, 257, 6, Array("ustar\0".utf8))
        put(&header, 263, 2, Array("00".utf8))
        for i in 148..<156 { header[i] = UInt8(ascii: " ") }
        let sum = header.reduce(0) { $0 + Int($1) }
        put(&header, 148, 8, octal(sum, 6) + [0, UInt8(ascii: " ")])
        bytes += header
        if hasData {
            bytes += data
            bytes += [UInt8](repeating: 0, count: (512 - data.count % 512) % 512)
        }
    }

    /// The archive with its two zero end blocks.
    public var archive: [UInt8] { bytes + [UInt8](repeating: 0, count: 1024) }

    private func octal(_ value: Int, _ width: Int) -> [UInt8] {
        let digits = String(value, radix: 8)
        return Array((String(repeating: "0", count: max(0, width - digits.count)) + digits).utf8)
    }

    private func put(_ header: inout [UInt8], _ offset: Int, _ length: Int, _ value: [UInt8]) {
        for (i, byte) in value.prefix(length).enumerated() { header[offset + i] = byte }
    }
}
