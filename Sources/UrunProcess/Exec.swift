import CUrunSyscalls
import Glibc
import UrunKernel

/// Replaces this process with `arguments[0]`: signals unblocked, every
/// descriptor above stdio (and above `keeping`, the ones passed on) marked
/// close-on-exec, a clean environment. `beforeConfine` runs once the command
/// is found (an OCI container waits there for `start`); `confine` runs last,
/// right before execve(2): it drops capabilities and loads the seccomp filter
/// once urun needs nothing more.
public func execCommand(
    _ arguments: [String], environment: [String], keeping: CInt = 2,
    beforeConfine: () throws(UrunError) -> Void = {}, confine: () throws(UrunError) -> Void = {}
) throws(UrunError) -> Never {
    let path = environment.last(where: { $0.hasPrefix("PATH=") }).map { String($0.dropFirst(5)) } ?? defaultPath
    let executable = try lookupCommand(arguments[0], path: path)
    try prepareForExec(keeping: keeping)
    try beforeConfine()
    try confine()
    if Explain.enabled {
        Explain.step(.exec, "execve(\"\(executable)\", \(arguments), env: \(environment.count) variables)")
    }
    withCStrings(arguments) { argv in
        withCStrings(environment) { envp in
            _ = execve(executable, argv, envp)
        }
    }
    let errno = Errno.current
    if errno == .noSuchFileOrDirectory {
        // The file vanished, or its #! interpreter or ELF loader is missing.
        throw .commandNotFound(executable)
    }
    throw .notExecutable(executable, errno)
}

/// Unblocks every signal (urun blocked the forwarded ones before cloning) and
/// marks all descriptors above 2 close-on-exec, so none of urun's reaches the
/// command — the error pipe stays usable until the very exec that closes it.
public func prepareForExec(keeping: CInt = 2) throws(UrunError) {
    var none = sigset_t()
    sigemptyset(&none)
    sigprocmask(SIG_SETMASK, &none, nil)
    for signal in [SIGPIPE, SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGTSTP, SIGTTIN, SIGTTOU] {
        Glibc.signal(signal, SIG_DFL)
    }
    // Descriptors 3 to `keeping` are passed on (OCI --preserve-fds): open across exec.
    for fd in stride(from: CInt(3), through: keeping, by: 1) { _ = urun_set_cloexec(fd, 0) }
    if urun_close_range(UInt32(keeping + 1), UInt32.max, UInt32(URUN_CLOSE_RANGE_CLOEXEC)) != 0 {
        // Before Linux 5.11: walk the descriptors ourselves.
        for name in (try? directoryEntries("/proc/self/fd")) ?? [] {
            if let fd = CInt(name), fd > keeping { _ = urun_set_cloexec(fd, 1) }
        }
    }
}
