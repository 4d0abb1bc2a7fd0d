import CUrunSyscalls
import Glibc
import UrunCLI
import UrunKernel

/// urun's entry point: global options, the verb, and the one place where an
/// error becomes a message and an exit status (docker's: 125 urun's own
/// failure, 126 cannot invoke, 127 not found, else the command's status).
// Engines call their runtime by one path with runc's arguments: urun linked
// as urun-runc (or called as `urun oci ...`) speaks runc's command line.
let arguments = Array(CommandLine.arguments.dropFirst())
let invokedAs = CommandLine.arguments.first.map { String($0.split(separator: "/").last ?? "") } ?? ""
let status = invokedAs.hasSuffix("-runc") ? OCICommand.main(arguments)
    : arguments.first == "oci" ? OCICommand.main(Array(arguments.dropFirst())) : CLI.main(arguments)
// ^C during an unpack: clean up first (done by now), then die of the signal
// so the shell sees what happened.
if urun_interrupted() != 0 {
    let signal = urun_interrupted()
    Glibc.signal(signal, SIG_DFL)
    raise(signal)
}
exit(status)
