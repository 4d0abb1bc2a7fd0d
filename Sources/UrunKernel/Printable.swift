/// Text that came from outside (a flag's value, a file name, an image's tag)
/// made safe to show on a terminal: control characters (C0, DEL, C1) and the
/// bidirectional overrides are escaped, so input can never move the cursor,
/// recolour the screen or reorder what the user reads; bytes that are not
/// UTF-8 are shown as \xNN.
public func printable(_ bytes: [UInt8]) -> String {
    var out = ""
    var index = 0
    while index < bytes.count {
        // The longest valid UTF-8 sequence starting here (1 to 4 bytes).
        var decoded: String?
        var length = 1
        for candidate in (1...min(4, bytes.count - index)).reversed() {
            if let text = String(validating: bytes[index..<(index + candidate)], as: UTF8.self), text.unicodeScalars.count == 1 {
                decoded = text
                length = candidate
                break
            }
        }
        if let decoded {
            out += escaped(decoded.unicodeScalars.first!)
        } else {
            out += "\\x" + hexByte(bytes[index])
        }
        index += length
    }
    return out
}

/// `text` for a message: escaped as above, and when longer than `limit`
/// characters, its start and end with the middle elided.
public func printable(_ text: String, limit: Int = 100) -> String {
    let safe = text.unicodeScalars.map(escaped).joined()
    guard safe.count > limit, limit >= 20 else { return safe }
    return String(safe.prefix(limit - 20)) + "…" + String(safe.suffix(12)) + " (\(text.utf8.count) bytes)"
}

/// A message for the terminal: control characters escaped, and any single
/// word over 200 characters (a pasted value, a path) shortened.
public func printableMessage(_ message: String) -> String {
    message.split(separator: " ", omittingEmptySubsequences: false).map { printable(String($0), limit: 200) }
        .joined(separator: " ")
}

/// Whether `text` holds a control character: such a value would start a new
/// line in a file urun writes (/etc/hosts, resolv.conf) or a record.
public func hasControlCharacters(_ text: String) -> Bool {
    text.unicodeScalars.contains(where: isControl)
}

private func isControl(_ scalar: Unicode.Scalar) -> Bool {
    scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || (0x202A...0x202E).contains(scalar.value)
        || (0x2066...0x2069).contains(scalar.value)
}

private func escaped(_ scalar: Unicode.Scalar) -> String {
    guard isControl(scalar) else { return String(scalar) }
    switch scalar {
    case "\n": return "\\n"
    case "\r": return "\\r"
    case "\t": return "\\t"
    default:
        return scalar.value < 0x100 ? "\\x" + hexByte(UInt8(scalar.value)) : "\\u{" + String(scalar.value, radix: 16) + "}"
    }
}

private func hexByte(_ byte: UInt8) -> String {
    let digits = Array("0123456789abcdef")
    return String(digits[Int(byte >> 4)]) + String(digits[Int(byte & 0x0F)])
}
