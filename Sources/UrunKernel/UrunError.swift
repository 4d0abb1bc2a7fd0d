import SystemPackage

/// The one error type of urun's library. Each case renders as a single line
/// naming the step and the path, and maps to docker's exit codes.
public enum UrunError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A system call failed during `step`, on `path` when there is one.
    case kernel(Step, path: String?, Errno)
    /// Input urun refuses (a bad flag value, a missing image, a corrupt archive).
    case invalid(String)
    /// The command does not exist in the container (exit 127).
    case commandNotFound(String)
    /// The command exists but cannot be executed (exit 126).
    case notExecutable(String, Errno)
    /// A usage error on the command line (exit 125, with a pointer to --help).
    case usage(String)
    /// IMAGE names no file, directory or cached image.
    case noSuchImage(String)
    /// IMAGE is not in the cache and could not be pulled, for `reason`.
    case imageUnavailable(String, reason: String)

    /// The image a failed lookup or pull named, if that is what failed.
    public var missingImage: String? {
        switch self {
        case .noSuchImage(let reference), .imageUnavailable(let reference, _): return reference
        default: return nil
        }
    }

    /// docker's convention: 125 urun's own failure, 126 cannot invoke, 127 not found.
    public var exitCode: Int32 {
        switch self {
        case .commandNotFound: return 127
        case .notExecutable: return 126
        case .kernel, .invalid, .usage, .noSuchImage, .imageUnavailable: return 125
        }
    }

    public var description: String {
        switch self {
        case .kernel(let step, let path, let errno):
            var line = step.phrase
            if let path { line += " \(path)" }
            line += ": \(errno.message)"
            if let hint = Hint.for(step, errno) { line += "; \(hint)" }
            return line
        case .invalid(let message), .usage(let message):
            return message
        case .imageUnavailable(let reference, let reason):
            return "image \(printable(reference)) is not a file, nor in the cache (urun images lists them), and pulling it failed: \(reason)"
        case .noSuchImage(let reference):
            let why = "image \(printable(reference)): no such file or directory"
            return reference.contains("/") ? why : why + ", and no image of that name in the cache (urun images lists them)"
        case .commandNotFound(let command):
            return command.contains("/")
                ? "\(command): no such file or directory in the container"
                : "\(command): executable file not found in $PATH"
        case .notExecutable(let command, let errno):
            return "\(command): cannot execute: \(errno.message)"
        }
    }
}

extension Errno {
    /// errno of the last failed call.
    public static var current: Errno { Errno(rawValue: _errno()) }

    /// "permission denied (EACCES)": the text users search for, plus the name developers grep for.
    public var message: String {
        let text = description.prefix(1).lowercased() + description.dropFirst()
        guard let name = symbolicName else { return text }
        return "\(text) (\(name))"
    }

    public var symbolicName: String? {
        errnoNames[rawValue]
    }
}

#if canImport(Glibc)
import Glibc

private let errnoNames: [CInt: String] = [
    EPERM: "EPERM", ENOENT: "ENOENT", ESRCH: "ESRCH", EINTR: "EINTR", EIO: "EIO",
    ENXIO: "ENXIO", E2BIG: "E2BIG", ENOEXEC: "ENOEXEC", EBADF: "EBADF", ECHILD: "ECHILD",
    EAGAIN: "EAGAIN", ENOMEM: "ENOMEM", EACCES: "EACCES", EFAULT: "EFAULT", EBUSY: "EBUSY",
    EEXIST: "EEXIST", EXDEV: "EXDEV", ENODEV: "ENODEV", ENOTDIR: "ENOTDIR", EISDIR: "EISDIR",
    EINVAL: "EINVAL", EMFILE: "EMFILE", ETXTBSY: "ETXTBSY", EFBIG: "EFBIG", ENOSPC: "ENOSPC",
    EROFS: "EROFS", EMLINK: "EMLINK", EPIPE: "EPIPE", ENAMETOOLONG: "ENAMETOOLONG",
    ENOSYS: "ENOSYS", ENOTEMPTY: "ENOTEMPTY", ELOOP: "ELOOP", EOPNOTSUPP: "EOPNOTSUPP",
    EDQUOT: "EDQUOT", EUSERS: "EUSERS", EADDRINUSE: "EADDRINUSE"
]

@inline(__always) func _errno() -> CInt { Glibc.errno }
#endif
