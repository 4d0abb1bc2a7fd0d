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

    public init(fd: CInt) {
        self.fd = fd
    }

    public func enter() {
        guard isatty(fd) == 1, tcgetattr(fd, &saved) == 0 else { return }
        var raw = saved
        cfmakeraw(&raw)
        if tcsetattr(fd, TCSADRAIN, &raw) == 0 { active = true }
    }

    public func restore() {
        guard active else { return }
        tcsetattr(fd, TCSADRAIN, &saved)
        active = false
    }

    deinit { restore() }
}
