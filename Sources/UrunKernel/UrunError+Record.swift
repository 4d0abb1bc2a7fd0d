import SystemPackage

/// A fixed binary record for sending an error across a pipe from a forked
/// child: kind (1 byte), step (2), errno (4), text length (2), text.
/// Small enough for one atomic pipe write (PIPE_BUF is 4096).
extension UrunError {
    public func record() -> [UInt8] {
        let kind: UInt8
        var step: UInt16 = 0
        var errno: Int32 = 0
        var text = ""
        switch self {
        case .kernel(let s, let path, let e):
            (kind, step, errno, text) = (1, s.rawValue, e.rawValue, path ?? "")
        case .invalid(let message): (kind, text) = (2, message)
        case .commandNotFound(let command): (kind, text) = (3, command)
        case .notExecutable(let command, let e): (kind, errno, text) = (4, e.rawValue, command)
        case .usage(let message): (kind, text) = (5, message)
        case .noSuchImage(let reference): (kind, text) = (6, reference)
        case .imageUnavailable(let reference, let reason): (kind, text) = (7, reference + "\u{0}" + reason)
        }
        let bytes = Array(text.utf8.prefix(3000))
        var out: [UInt8] = [kind]
        withUnsafeBytes(of: step.littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: errno.littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt16(bytes.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: bytes)
        return out
    }

    /// Decodes a record; nil if it is malformed.
    public init?(record bytes: [UInt8]) {
        guard bytes.count >= 9 else { return nil }
        let step = UInt16(bytes[1]) | UInt16(bytes[2]) << 8
        let errno = Int32(bitPattern: UInt32(bytes[3]) | UInt32(bytes[4]) << 8 | UInt32(bytes[5]) << 16 | UInt32(bytes[6]) << 24)
        let length = Int(UInt16(bytes[7]) | UInt16(bytes[8]) << 8)
        guard bytes.count >= 9 + length else { return nil }
        let text = String(decoding: bytes[9..<(9 + length)], as: UTF8.self)
        switch bytes[0] {
        case 1:
            guard let s = Step(rawValue: step) else { return nil }
            self = .kernel(s, path: text.isEmpty ? nil : text, Errno(rawValue: errno))
        case 2: self = .invalid(text)
        case 3: self = .commandNotFound(text)
        case 4: self = .notExecutable(text, Errno(rawValue: errno))
        case 5: self = .usage(text)
        case 6: self = .noSuchImage(text)
        case 7:
            let parts = text.split(separator: "\u{0}", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            self = .imageUnavailable(parts[0], reason: parts.count > 1 ? parts[1] : "")
        default: return nil
        }
    }
}
