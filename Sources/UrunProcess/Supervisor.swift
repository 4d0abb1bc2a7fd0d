import CUrunSyscalls
import Glibc
import UrunKernel

/// urun's side of a running container: forwards signals, relays the pty when
/// there is one, and waits for the container's PID 1. Single-threaded: one
/// poll(2) loop over a signalfd and the terminal descriptors.
public final class Supervisor {
    private let pid: pid_t
    private let pidfd: CInt
    private let signalFD: CInt
    private let master: CInt?
    /// Without a pty the container shares urun's process group, so a ^C typed
    /// on the terminal already reached it: such kernel-sent signals are not
    /// forwarded a second time.
    private let sharesProcessGroup: Bool

    public init(pid: pid_t, pidfd: CInt, blockedSignals: sigset_t, master: CInt?) throws(UrunError) {
        self.pid = pid
        self.pidfd = pidfd
        self.master = master
        self.sharesProcessGroup = master == nil
        var set = blockedSignals
        signalFD = try sys(.superviseContainer) { urun_signalfd(&set) }
        // A closed stdout must give EPIPE here, not kill urun before it cleans up.
        signal(SIGPIPE, SIG_IGN)
        if let master { _ = urun_set_nonblock(master, 1) }
    }

    deinit {
        closeQuietly(signalFD)
        if let master { closeQuietly(master) }
    }

    /// Runs until the container's PID 1 exits; returns its status.
    public func run() -> ExitStatus {
        let raw = RawMode(fd: 0)
        if master != nil {
            raw.enter()
            if let size = WindowSize.of(0) ?? WindowSize.of(1), let master { size.apply(to: master) }
        }
        defer { raw.restore() }

        var input = Relay(from: 0, to: master ?? -1)
        input.preload(raw.typeahead)
        var output = Relay(from: master ?? -1, to: 1)
        if master == nil {
            input.open = false
            output.open = false
        }
        var status: ExitStatus?
        while true {
            var fds = [pollfd(fd: signalFD, events: Int16(POLLIN), revents: 0)]
            input.register(&fds)
            output.register(&fds)
            if status != nil && !output.open && !output.hasPending { break }
            // Once PID 1 is gone, give the pty a moment to drain, then stop.
            let timeout: CInt = status == nil ? -1 : 500
            let ready = poll(&fds, nfds_t(fds.count), timeout)
            if ready < 0 && errno == EINTR { continue }
            if ready == 0 { break }
            if fds[0].revents != 0, let exited = handleSignals() { status = exited }
            input.service(fds)
            output.service(fds)
            if status != nil && master == nil { break }
        }
        return status ?? ExitStatus(code: 125)
    }

    /// Reads pending signals; returns PID 1's status once it has exited.
    private func handleSignals() -> ExitStatus? {
        var exited: ExitStatus?
        var signo: CInt = 0
        var code: CInt = 0
        var sender: CInt = 0
        while urun_read_signal(signalFD, &signo, &code, &sender) == 1 {
            switch signo {
            case SIGCHLD:
                var waitStatus: CInt = 0
                if waitpid(pid, &waitStatus, WNOHANG) == pid { exited = ExitStatus(waitStatus: waitStatus) }
            case SIGWINCH where master != nil:
                if let size = WindowSize.of(0) ?? WindowSize.of(1), let master { size.apply(to: master) }
            default:
                if sharesProcessGroup && code == SI_KERNEL { continue }
                forward(signo)
            }
        }
        return exited
    }

    /// Sends `signal` to the container's PID 1; through the pidfd when there
    /// is one, so a recycled pid can never receive it.
    public func forward(_ signal: CInt) {
        if pidfd >= 0 {
            _ = urun_pidfd_send_signal(pidfd, signal)
        } else {
            kill(pid, signal)
        }
    }
}

/// One direction of the terminal relay, with a buffer so that neither side
/// can block the other.
struct Relay {
    let from: CInt
    let to: CInt
    var open = true
    private var buffer = [UInt8](repeating: 0, count: 65536)
    private var start = 0
    private var end = 0
    private var fromIndex = -1
    private var toIndex = -1

    init(from: CInt, to: CInt) {
        self.from = from
        self.to = to
    }

    var hasPending: Bool { end > start }

    /// Bytes to pass on before anything read (a terminal's typeahead).
    mutating func preload(_ bytes: [UInt8]) {
        let count = min(bytes.count, buffer.count - end)
        buffer.replaceSubrange(end..<(end + count), with: bytes.prefix(count))
        end += count
    }

    mutating func register(_ fds: inout [pollfd]) {
        fromIndex = -1
        toIndex = -1
        if open && end < buffer.count {
            fromIndex = fds.count
            fds.append(pollfd(fd: from, events: Int16(POLLIN), revents: 0))
        }
        if hasPending {
            toIndex = fds.count
            fds.append(pollfd(fd: to, events: Int16(POLLOUT), revents: 0))
        }
    }

    mutating func service(_ fds: [pollfd]) {
        if fromIndex >= 0, fds[fromIndex].revents != 0 {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(from, $0.baseAddress! + end, $0.count - end) }
            if n > 0 {
                end += n
            } else if n == 0 || (errno != EAGAIN && errno != EINTR) {
                open = false  // EOF, or EIO once every slave of the pty is closed
            }
        }
        if toIndex >= 0, fds[toIndex].revents != 0 {
            // At most PIPE_BUF per write: a pipe with POLLOUT takes that much without blocking.
            let count = min(end - start, 4096)
            let n = buffer.withUnsafeBytes { Glibc.write(to, $0.baseAddress! + start, count) }
            if n > 0 {
                start += n
                if start == end { (start, end) = (0, 0) }
            } else if n < 0 && errno != EAGAIN && errno != EINTR {
                (start, end) = (0, 0)  // the reader went away: drop what it will never read
            }
        }
    }
}
