import CUrunSyscalls
import Glibc
import UrunKernel

/// A container's output as docker's json-file driver writes it: one JSON
/// object per line of output, `{"log":"...\n","stream":"stdout","time":"..."}`.
/// Partial lines are kept until their newline (or 16 KiB, or the end).
public final class ContainerLog {
    private let fd: CInt
    private var pending: [String: [UInt8]] = [:]

    public init(path: String) throws(UrunError) {
        fd = try sys(.writeFile, path: path) { urun_open_mode(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600) }
    }

    deinit {
        flush()
        closeQuietly(fd)
    }

    public func append(_ bytes: UnsafeRawBufferPointer, stream: String) {
        var buffer = pending[stream] ?? []
        buffer.append(contentsOf: bytes)
        var start = 0
        for (index, byte) in buffer.enumerated() where byte == UInt8(ascii: "\n") {
            write(buffer[start...index], stream: stream)
            start = index + 1
        }
        buffer.removeFirst(start)
        if buffer.count >= 16384 {
            write(buffer[...], stream: stream)
            buffer.removeAll()
        }
        pending[stream] = buffer
    }

    /// Writes what is left of unfinished lines.
    public func flush() {
        for (stream, buffer) in pending where !buffer.isEmpty { write(buffer[...], stream: stream) }
        pending.removeAll()
    }

    private func write(_ line: ArraySlice<UInt8>, stream: String) {
        let entry = JSON.object([
            ("log", .string(String(decoding: line, as: UTF8.self))), ("stream", .string(stream)),
            ("time", .string(Timestamp.now().rfc3339)),
        ])
        writeQuietly(fd, entry.serialized() + "\n")
    }

    /// One entry read back.
    public struct Entry: Sendable {
        public let time: Timestamp
        public let stream: String
        public let text: String
    }

    /// Parses log lines; incomplete or malformed lines are skipped.
    public static func entries(_ text: Substring) -> [Entry] {
        text.split(separator: "\n").compactMap { line in
            guard let json = try? JSON(parsing: String(line)), let text = json["log"]?.string,
                let time = json["time"]?.string.flatMap(Timestamp.init(rfc3339:))
            else { return nil }
            return Entry(time: time, stream: json["stream"]?.string ?? "stdout", text: text)
        }
    }
}
