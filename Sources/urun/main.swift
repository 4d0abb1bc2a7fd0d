import CUrunSyscalls
import Glibc
import UrunCLI
import UrunKernel

/// urun's entry point: global options, the verb, and the one place where an
/// error becomes a message and an exit status (docker's: 125 urun's own
/// failure, 126 cannot invoke, 127 not found, else the command's status).
let status = CLI.main(Array(CommandLine.arguments.dropFirst()))
// ^C during an unpack: clean up first (done by now), then die of the signal
// so the shell sees what happened.
if urun_interrupted() != 0 {
    let signal = urun_interrupted()
    Glibc.signal(signal, SIG_DFL)
    raise(signal)
}
exit(status)
