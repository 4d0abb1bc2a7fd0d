import CUrunSyscalls
import Glibc

/// A terminal's window size.
public struct WindowSize: Equatable, Sendable {
    public var rows: UInt16
    public var columns: UInt16

    public init(rows: UInt16, columns: UInt16) {
        self.rows = rows
        self.columns = columns
    }

    /// The size of the terminal on `fd`, if it is one.
    public static func of(_ fd: CInt) -> WindowSize? {
        var rows: UInt16 = 0
        var columns: UInt16 = 0
        guard urun_get_winsize(fd, &rows, &columns) == 0, rows > 0 || columns > 0 else { return nil }
        return WindowSize(rows: rows, columns: columns)
    }

    public func apply(to fd: CInt) {
        _ = urun_set_winsize(fd, rows, columns)
    }
}

/// The host terminal in raw mode while a container's pty is attached, so keys
/// like ^C reach the container's line discipline instead of urun. `restore()`
/// puts the saved settings back; callers run it on every exit path.
public final class RawMode {
    private let fd: CInt
    private var saved = termios()
    private var active = false
    /// What was typed before raw mode took effect, to go to the container
    /// first. The terminal was canonical then: a ^D typed (or sent by
    /// script(1) when its own input ended) sits in the kernel's buffer as an
    /// end-of-file mark that raw mode reads back as a NUL. Such NULs are
    /// turned back into the terminal's own EOF character, which the
    /// container's terminal understands as what the user meant.
    public private(set) var typeahead: [UInt8] = []

    public init(fd: CInt) {
        self.fd = fd
    }

    public func enter() {
        guard isatty(fd) == 1, tcgetattr(fd, &saved) == 0 else { return }
        var raw = saved
        cfmakeraw(&raw)
        guard tcsetattr(fd, TCSADRAIN, &raw) == 0 else { return }
        active = true
        let pending = urun_pending_input(fd)
        guard pending > 0 else { return }
        var bytes = [UInt8](repeating: 0, count: Int(pending))
        let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return }
        let eof = withUnsafeBytes(of: saved.c_cc) { $0[Int(VEOF)] }
        typeahead = bytes.prefix(n).map { $0 == 0 && eof != 0 ? eof : $0 }
    }

    public func restore() {
        guard active else { return }
        tcsetattr(fd, TCSADRAIN, &saved)
        active = false
    }

    deinit { restore() }
}
