import CUrunSyscalls
import Glibc
import UrunKernel

/// A process named by pid *and* start time, so that a recycled pid is never
/// taken for a container's PID 1 (proc(5), /proc/PID/stat field 22).
public struct ProcessIdentity: Equatable, Sendable {
    public let pid: pid_t
    public let startTime: UInt64

    public init(pid: pid_t, startTime: UInt64) {
        self.pid = pid
        self.startTime = startTime
    }

    /// The identity of the live process `pid`, or nil.
    public static func of(_ pid: pid_t) -> ProcessIdentity? {
        guard pid > 0, let stat = try? readText("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else {
            return nil
        }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let start = UInt64(fields[19]) else { return nil }
        return ProcessIdentity(pid: pid, startTime: start)
    }

    /// A pidfd for this very process: opened first, then the start time is
    /// checked again, so the descriptor cannot refer to a successor.
    public func open() -> CInt? {
        let fd = urun_pidfd_open(pid)
        guard fd >= 0 else { return nil }
        guard ProcessIdentity.of(pid) == self else {
            closeQuietly(fd)
            return nil
        }
        return fd
    }
}
