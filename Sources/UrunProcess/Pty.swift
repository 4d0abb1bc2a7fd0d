import CUrunSyscalls
import Glibc
import UrunKernel

/// The container's terminal, made inside the container from its own devpts
/// instance (mounted with newinstance), so the host's ptys stay invisible.
public struct ContainerPty {
    public let master: CInt
    public let slave: CInt
    public let slavePath: String

    /// Opens a new pty pair through /dev/ptmx of the current (container) root.
    public static func open(size: WindowSize?) throws(UrunError) -> ContainerPty {
        let master = try sys(.openPty, explain: "open(\"/dev/ptmx\", O_RDWR|O_NOCTTY)", path: "/dev/ptmx") {
            Glibc.open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC)
        }
        try sys(.openPty, path: "/dev/ptmx") { urun_unlock_pt(master) }
        var number: UInt32 = 0
        try sys(.openPty, path: "/dev/ptmx") { urun_pt_number(master, &number) }
        let slavePath = "/dev/pts/\(number)"
        let slave = try sys(.openPty, path: slavePath) { Glibc.open(slavePath, O_RDWR | O_NOCTTY | O_CLOEXEC) }
        size?.apply(to: master)
        return ContainerPty(master: master, slave: slave, slavePath: slavePath)
    }

    /// Makes the slave the controlling terminal of a new session and the
    /// command's stdin, stdout and stderr.
    public func attachAsControllingTerminal() throws(UrunError) {
        try sys(.setControllingTTY, explain: "setsid(); ioctl(\(slavePath), TIOCSCTTY)") { setsid() }
        try sys(.setControllingTTY, path: slavePath) { urun_set_controlling_tty(slave) }
        for fd in CInt(0)...2 {
            try sys(.setControllingTTY, path: slavePath) { dup2(slave, fd) }
        }
    }
}
