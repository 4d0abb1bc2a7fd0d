import Glibc

/// The default PATH inside a container, as docker sets it.
public let defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/// Finds `command` as execvp(3) would, in the container's PATH: a name with a
/// slash is used as it is; otherwise the first executable regular file wins.
/// Not found anywhere → 127; found but not executable → 126 (docker's codes).
public func lookupCommand(_ command: String, path: String) throws(UrunError) -> String {
    guard !command.isEmpty else { throw .commandNotFound(command) }
    if command.contains("/") { return command }
    var denied: Errno?
    for dir in path.split(separator: ":", omittingEmptySubsequences: false) {
        let candidate = (dir.isEmpty ? "." : String(dir)) + "/" + command
        guard let st = fileStatus(candidate, followLinks: true), isRegularFile(st) else { continue }
        if access(candidate, X_OK) == 0 { return candidate }
        denied = Errno.current
    }
    if let denied { throw .notExecutable(command, denied) }
    throw .commandNotFound(command)
}
