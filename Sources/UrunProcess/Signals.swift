import Glibc

/// The signals urun passes on to the container (docker forwards the same).
public let forwardedSignals: [CInt] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH]

/// Blocks the forwarded signals and SIGCHLD in urun. Done before clone(2) so
/// none is lost between the clone and the supervisor loop; the supervisor
/// reads them from a signalfd, and the child unblocks them before exec.
public func blockSupervisedSignals() -> sigset_t {
    var set = sigset_t()
    sigemptyset(&set)
    for signal in forwardedSignals + [SIGCHLD] { sigaddset(&set, signal) }
    sigprocmask(SIG_BLOCK, &set, nil)
    return set
}

/// Signal names as kill(1) spells them, for parsing `--signal` style options and messages.
public let signalNames: [(String, CInt)] = [
    ("HUP", SIGHUP), ("INT", SIGINT), ("QUIT", SIGQUIT), ("ILL", SIGILL), ("TRAP", SIGTRAP), ("ABRT", SIGABRT),
    ("BUS", SIGBUS), ("FPE", SIGFPE), ("KILL", SIGKILL), ("USR1", SIGUSR1), ("SEGV", SIGSEGV), ("USR2", SIGUSR2),
    ("PIPE", SIGPIPE), ("ALRM", SIGALRM), ("TERM", SIGTERM), ("CHLD", SIGCHLD), ("CONT", SIGCONT),
    ("STOP", SIGSTOP), ("TSTP", SIGTSTP), ("TTIN", SIGTTIN), ("TTOU", SIGTTOU), ("URG", SIGURG),
    ("XCPU", SIGXCPU), ("XFSZ", SIGXFSZ), ("VTALRM", SIGVTALRM), ("PROF", SIGPROF), ("WINCH", SIGWINCH),
    ("IO", SIGIO), ("PWR", SIGPWR), ("SYS", SIGSYS),
]

/// Parses "TERM", "SIGTERM", "sigterm" or "15".
public func parseSignal(_ text: String) -> CInt? {
    if let number = CInt(text), number > 0, number < 65 { return number }
    var name = text.uppercased()
    if name.hasPrefix("SIG") { name.removeFirst(3) }
    return signalNames.first(where: { $0.0 == name })?.1
}
