import Glibc

/// The one language urun's processes speak to each other over a pipe: the
/// parent and the child it cloned (release, ready, why not), the
/// intermediate that enters namespaces (the container's pid), `exec`'s
/// child, the helpers in a user namespace, and a container's monitor
/// (listening, started). Each message is one write(2) of at most a few KiB,
/// so it arrives whole (PIPE_BUF is 4096); end of file after the last one
/// means the writer exec'd or exited.
public enum ChannelMessage: Equatable, Sendable {
    /// Parent to child: the maps are written, go on.
    case proceed
    /// Everything up to the command's exec is done (an OCI `create`'s init
    /// now waits for `start`).
    case ready
    /// A monitor's attach socket accepts its first client.
    case listening
    /// A monitor's container runs.
    case started
    /// The container an intermediate process cloned (its pid on the host).
    case pid(pid_t)
    /// Why not: the writer's last message.
    case failed(UrunError)

    private static let tags: [UInt8] = Array("GRLSPE".utf8)

    /// The bytes of one message.
    public var encoded: [UInt8] {
        switch self {
        case .proceed: return [Self.tags[0]]
        case .ready: return [Self.tags[1]]
        case .listening: return [Self.tags[2]]
        case .started: return [Self.tags[3]]
        case .pid(let pid): return [Self.tags[4]] + withUnsafeBytes(of: pid.littleEndian) { Array($0) }
        case .failed(let error): return [Self.tags[5]] + error.record()
        }
    }
}

public enum Channel {
    /// Sends `message` on `fd`; false if the reader is gone (EPIPE: the
    /// caller ignores SIGPIPE) or the write failed.
    @discardableResult
    public static func send(_ message: ChannelMessage, on fd: CInt) -> Bool {
        let bytes = message.encoded
        var n: Int
        repeat { n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } } while n < 0 && errno == EINTR
        return n == bytes.count
    }

    /// The next message on `fd`; nil at end of file (the writer exec'd or
    /// exited without a word). A message cut short or unknown reads as a
    /// failure saying so. `onInterrupt` runs when a signal interrupts the
    /// wait (a ^C the caller passes on to its child).
    public static func receive(from fd: CInt, onInterrupt: () -> Void = {}) -> ChannelMessage? {
        guard let tag = read(fd, count: 1, onInterrupt: onInterrupt)?.first else { return nil }
        let garbled = ChannelMessage.failed(.invalid("a urun process sent an unreadable report"))
        switch tag {
        case UInt8(ascii: "G"): return .proceed
        case UInt8(ascii: "R"): return .ready
        case UInt8(ascii: "L"): return .listening
        case UInt8(ascii: "S"): return .started
        case UInt8(ascii: "P"):
            guard let bytes = read(fd, count: MemoryLayout<pid_t>.size, onInterrupt: onInterrupt) else { return garbled }
            return .pid(pid_t(littleEndian: bytes.withUnsafeBytes { $0.loadUnaligned(as: pid_t.self) }))
        case UInt8(ascii: "E"):
            // The record: a 9-byte header whose last two bytes are the text's length.
            guard let header = read(fd, count: 9, onInterrupt: onInterrupt) else { return garbled }
            let length = Int(UInt16(header[7]) | UInt16(header[8]) << 8)
            guard let text = length == 0 ? [] : read(fd, count: length, onInterrupt: onInterrupt),
                let error = UrunError(record: header + text)
            else { return garbled }
            return .failed(error)
        default:
            return garbled
        }
    }

    /// Exactly `count` bytes, or nil at end of file first.
    private static func read(_ fd: CInt, count: Int, onInterrupt: () -> Void) -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: count)
        var have = 0
        while have < count {
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + have, count - have) }
            if n < 0 && errno == EINTR {
                onInterrupt()
                continue
            }
            if n <= 0 { return nil }
            have += n
        }
        return bytes
    }
}
