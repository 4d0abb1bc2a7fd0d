import CUrunSyscalls

/// Random bytes from getrandom(2), as lowercase hex.
public func randomHex(bytes count: Int) -> String {
    var buffer = [UInt8](repeating: 0, count: count)
    let rc = buffer.withUnsafeMutableBytes { urun_random_bytes($0.baseAddress, $0.count) }
    precondition(rc == 0, "getrandom(2) failed")
    return hex(buffer)
}

private let hexDigits = Array("0123456789abcdef".utf8)

public func hex<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count * 2)
    for byte in bytes {
        out.append(hexDigits[Int(byte >> 4)])
        out.append(hexDigits[Int(byte & 0x0F)])
    }
    return String(decoding: out, as: UTF8.self)
}
