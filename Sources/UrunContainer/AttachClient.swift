import CUrunSyscalls
import Glibc
import UrunKernel
import UrunProcess

/// `urun attach` (and the attached half of `run` and `start -a`): the
/// container's output on this terminal, this terminal's input to the
/// container, until the container ends or the user detaches with ctrl-p
/// ctrl-q (on a terminal).
public struct AttachClient {
    let socket: CInt
    let tty: Bool
    let sendInput: Bool
    /// Forwards a signal urun received to the container (without a tty, a ^C
    /// at urun must reach it; with one, ^C travels through the pty).
    let forward: (CInt) -> Void

    /// The detach keys: ctrl-p, ctrl-q, as docker.
    static let detachKeys: [UInt8] = [0x10, 0x11]

    public init(socket: CInt, tty: Bool, sendInput: Bool, forward: @escaping (CInt) -> Void) {
        self.socket = socket
        self.tty = tty
        self.sendInput = sendInput
        self.forward = forward
    }

    public enum Outcome: Equatable, Sendable {
        /// The container exited, with this code if the monitor said it.
        case exited(Int32?)
        /// The user detached; the container runs on.
        case detached
    }

    public func run() -> Outcome {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in forwardedSignals { sigaddset(&set, signal) }
        sigprocmask(SIG_BLOCK, &set, nil)
        defer { sigprocmask(SIG_UNBLOCK, &set, nil) }
        let signals = urun_signalfd(&set)
        defer { closeQuietly(signals) }
        signal(SIGPIPE, SIG_IGN)

        let raw = RawMode(fd: 0)
        if tty && sendInput { raw.enter() }
        defer { raw.restore() }
        if tty, let size = WindowSize.of(0) ?? WindowSize.of(1) { sendSize(size) }
        if !raw.typeahead.isEmpty { _ = sendAll(socket, AttachFrame.encode(AttachFrame.stdin, raw.typeahead)) }

        var inputOpen = sendInput
        var code: Int32?
        var matched = 0  // how much of the detach sequence was just typed
        var incoming: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            var fds = [
                pollfd(fd: socket, events: Int16(POLLIN), revents: 0),
                pollfd(fd: signals, events: Int16(POLLIN), revents: 0),
            ]
            if inputOpen { fds.append(pollfd(fd: 0, events: Int16(POLLIN), revents: 0)) }
            if poll(&fds, nfds_t(fds.count), -1) < 0 { if errno == EINTR { continue } else { return .exited(code) } }

            if fds[0].revents != 0 {
                let n = buffer.withUnsafeMutableBytes { read(socket, $0.baseAddress, $0.count) }
                if n <= 0 && !(n < 0 && errno == EINTR) { return .exited(code) }
                if n > 0 {
                    incoming += buffer[0..<n]
                    for (kind, payload) in AttachFrame.decode(&incoming) {
                        if kind == AttachFrame.exitCode {
                            code = AttachFrame.code(payload)
                            continue
                        }
                        payload.withUnsafeBytes { bytes in
                            try? writeAll(kind == AttachFrame.stderr ? 2 : 1, bytes)
                        }
                    }
                }
            }
            if fds[1].revents != 0 {
                var signo: CInt = 0, code: CInt = 0, sender: CInt = 0
                while urun_read_signal(signals, &signo, &code, &sender) == 1 {
                    if signo == SIGWINCH {
                        if tty, let size = WindowSize.of(0) ?? WindowSize.of(1) { sendSize(size) }
        if !raw.typeahead.isEmpty { _ = sendAll(socket, AttachFrame.encode(AttachFrame.stdin, raw.typeahead)) }
                    } else if !tty {
                        forward(signo)
                    }
                }
            }
            if inputOpen && fds.count > 2 && fds[2].revents != 0 {
                let n = buffer.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 {
                    inputOpen = false
                    _ = sendAll(socket, AttachFrame.encode(AttachFrame.endOfInput, []))
                    continue
                }
                var input = Array(buffer[0..<n])
                if tty {
                    // ctrl-p ctrl-q detaches; a ctrl-p alone goes through once the next key is not ctrl-q.
                    var passed: [UInt8] = []
                    for byte in input {
                        if byte == Self.detachKeys[matched] {
                            matched += 1
                            if matched == Self.detachKeys.count { return .detached }
                            continue
                        }
                        passed += Self.detachKeys[0..<matched]
                        matched = 0
                        passed.append(byte)
                    }
                    input = passed
                }
                if !input.isEmpty && !sendAll(socket, AttachFrame.encode(AttachFrame.stdin, input)) { return .exited(code) }
            }
        }
    }

    private func sendSize(_ size: WindowSize) {
        let payload: [UInt8] = [
            UInt8(size.rows >> 8), UInt8(size.rows & 0xff), UInt8(size.columns >> 8), UInt8(size.columns & 0xff),
        ]
        _ = sendAll(socket, AttachFrame.encode(AttachFrame.windowSize, payload))
    }
}
