import CUrunSyscalls
import Glibc
import UrunKernel

/// `--init`: urun stays PID 1 of the container, as docker-init (tini) does.
/// It starts the command as its child, forwards every signal it receives to
/// it, reaps orphans that the kernel reparents to PID 1, and exits with the
/// command's status once the command exits.
public func runAsInit(startCommand: () -> Never) -> Never {
    var all = sigset_t()
    sigfillset(&all)
    sigprocmask(SIG_SETMASK, &all, nil)
    // Not dumpable: no process in the container may open /proc/1/exe, which
    // is urun's own binary on the host (the CVE-2019-5736 class), or trace
    // PID 1. Before the fork, so that the command (whose execve makes it
    // dumpable again) can never find PID 1 still dumpable.
    _ = urun_set_dumpable(0)
    Explain.step(.forkInit, "fork() → urun stays PID 1, the command becomes PID 2")
    let child = fork()
    if child == 0 { startCommand() }
    if child < 0 { _exit(125) }
    // PID 1 needs no descriptor of urun's: not the error pipe (the command's
    // exec must close the last copy), not the container directory's lock.
    _ = urun_close_range(3, UInt32.max, 0)
    var info = siginfo_t()
    while true {
        let signal = sigwaitinfo(&all, &info)
        if signal < 0 { continue }
        if signal == SIGCHLD {
            var status: CInt = 0
            while true {
                let reaped = waitpid(-1, &status, WNOHANG)
                if reaped <= 0 { break }
                if reaped == child { _exit(ExitStatus(waitStatus: status).code) }
            }
        } else {
            kill(child, signal)
        }
    }
}
