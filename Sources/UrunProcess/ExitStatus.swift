import CUrunSyscalls

/// A container's exit status as docker reports it: the command's own code,
/// or 128+N when signal N killed it.
public struct ExitStatus: Equatable, Sendable, CustomStringConvertible {
    public let code: Int32
    /// The signal that killed the command, if one did.
    public let signal: Int32?

    public init(code: Int32, signal: Int32? = nil) {
        self.code = code
        self.signal = signal
    }

    /// Decodes a waitpid(2) status.
    public init(waitStatus status: Int32) {
        if urun_wifsignaled(status) != 0 {
            let signal = urun_wtermsig(status)
            self.init(code: 128 + signal, signal: signal)
        } else {
            self.init(code: urun_wexitstatus(status))
        }
    }

    public var description: String {
        if let signal { return "killed by signal \(signal) (exit \(code))" }
        return "exit \(code)"
    }
}
