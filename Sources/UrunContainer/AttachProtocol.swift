import Glibc
import UrunKernel

/// What `urun attach` and a container's monitor say to each other over the
/// attach socket: frames of a one-byte kind, a four-byte big-endian length,
/// and the payload.
///
///     monitor → client   1 stdout, 2 stderr (a tty's output is stdout),
///                        5 the exit code (4 bytes), last, when the container ends
///     client → monitor   0 stdin bytes, 3 end of stdin, 4 window size (rows, columns: 2 bytes each)
public enum AttachFrame {
    public static let stdin: UInt8 = 0
    public static let stdout: UInt8 = 1
    public static let stderr: UInt8 = 2
    public static let endOfInput: UInt8 = 3
    public static let windowSize: UInt8 = 4
    public static let exitCode: UInt8 = 5

    static func code(_ value: Int32) -> [UInt8] {
        let n = UInt32(bitPattern: value)
        return [UInt8(n >> 24), UInt8((n >> 16) & 0xff), UInt8((n >> 8) & 0xff), UInt8(n & 0xff)]
    }

    static func code(_ bytes: [UInt8]) -> Int32? {
        guard bytes.count == 4 else { return nil }
        return Int32(bitPattern: UInt32(bytes[0]) << 24 | UInt32(bytes[1]) << 16 | UInt32(bytes[2]) << 8 | UInt32(bytes[3]))
    }

    public static func encode(_ kind: UInt8, _ payload: UnsafeRawBufferPointer) -> [UInt8] {
        let n = UInt32(payload.count)
        return [kind, UInt8(n >> 24), UInt8((n >> 16) & 0xff), UInt8((n >> 8) & 0xff), UInt8(n & 0xff)] + payload
    }

    public static func encode(_ kind: UInt8, _ payload: [UInt8]) -> [UInt8] {
        payload.withUnsafeBytes { encode(kind, $0) }
    }

    /// Takes every complete frame off the front of `buffer`.
    public static func decode(_ buffer: inout [UInt8]) -> [(UInt8, [UInt8])] {
        var frames: [(UInt8, [UInt8])] = []
        var offset = 0
        while buffer.count - offset >= 5 {
            let length = Int(buffer[offset + 1]) << 24 | Int(buffer[offset + 2]) << 16 | Int(buffer[offset + 3]) << 8
                | Int(buffer[offset + 4])
            guard buffer.count - offset - 5 >= length else { break }
            frames.append((buffer[offset], Array(buffer[(offset + 5)..<(offset + 5 + length)])))
            offset += 5 + length
        }
        buffer.removeFirst(offset)
        return frames
    }
}

/// Writes all of `bytes` to a blocking or non-blocking descriptor, waiting
/// for it to drain; false when the reader went away.
@discardableResult
func sendAll(_ fd: CInt, _ bytes: [UInt8]) -> Bool {
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
        if n > 0 {
            offset += n
        } else if n < 0 && (errno == EAGAIN || errno == EINTR) {
            var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            _ = poll(&pfd, 1, 1000)
        } else {
            return false
        }
    }
    return true
}
