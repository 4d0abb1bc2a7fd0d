import CUrunSHA256


/// Streaming SHA-256 (FIPS 180-4), on the CPU's SHA extensions where present.
public struct SHA256 {
    private var context = urun_sha256()

    public init() { urun_sha256_init(&context) }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress else { return }
        urun_sha256_update(&context, base, bytes.count)
    }

    public mutating func update<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        Array(bytes).withUnsafeBytes { update($0) }
    }

    /// The digest as 64 lowercase hex digits.
    public mutating func finalizeHex() -> String {
        var digest = [UInt8](repeating: 0, count: 32)
        urun_sha256_final(&context, &digest)
        return hex(digest)
    }

    public static func digest<C: Collection>(of bytes: C) -> String where C.Element == UInt8 {
        var hasher = SHA256()
        hasher.update(bytes)
        return hasher.finalizeHex()
    }

    /// Whether the hardware path is in use (for `urun doctor` and the benchmark).
    public static var isAccelerated: Bool { urun_sha256_accelerated() != 0 }
}
