import Glibc
import UrunKernel
import UrunProcess

/// Limits asked for, but urun's cgroup is not delegated: a systemd user
/// manager can make a scope that is. urun runs itself again inside
/// `systemd-run --user --scope -p Delegate=yes`, once (URUN_IN_SCOPE marks
/// the second run); without a user manager it goes on, and the limits fail
/// with the message that names the fix.
enum SystemdScope {
    static let marker = "URUN_IN_SCOPE"

    static func reexecIfReachable() throws {
        guard environment(marker) == nil, isReachable(runtimeDirectory: environment("XDG_RUNTIME_DIR")),
            let systemdRun = try? lookupCommand("systemd-run", path: environment("PATH") ?? defaultPath),
            let urun = executablePath()
        else { return }
        setenv(marker, "1", 1)
        let arguments =
            [systemdRun, "--user", "--scope", "--quiet", "--collect", "-p", "Delegate=yes", "--", urun]
            + CommandLine.arguments.dropFirst()
        Explain.note(.createCgroup, "no delegated cgroup: running again in a systemd user scope with Delegate=yes")
        withCStrings(arguments) { argv in _ = execv(systemdRun, argv) }
        // execv failed: carry on; the limits will say what is missing.
        unsetenv(marker)
    }

    /// A user manager listens on $XDG_RUNTIME_DIR/systemd/private.
    static func isReachable(runtimeDirectory: String?) -> Bool {
        let directory = runtimeDirectory ?? "/run/user/\(getuid())"
        guard let st = fileStatus(directory + "/systemd/private") else { return false }
        return st.st_mode & S_IFMT == S_IFSOCK
    }
}
