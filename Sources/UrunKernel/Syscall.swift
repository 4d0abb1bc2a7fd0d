import Glibc
import SystemPackage

/// Runs one system call as `step`: retries EINTR, narrates it when `--explain`
/// is on (the narration and the action are this one call, so they cannot
/// disagree), and turns a negative result into `UrunError.kernel(step, path, errno)`.
@discardableResult
public func sys<Result: BinaryInteger>(
    _ step: Step, explain call: @autoclosure () -> String? = nil, path: @autoclosure () -> String? = nil,
    _ body: () -> Result
) throws(UrunError) -> Result {
    if Explain.enabled, let text = call() { Explain.step(step, text) }
    while true {
        let result = body()
        if result >= 0 { return result }
        let errno = Errno.current
        if errno == .interrupted { continue }
        throw .kernel(step, path: path(), errno)
    }
}

/// Closes a descriptor, ignoring errors: by the time we close, the data is written or irrelevant.
@inline(__always)
public func closeQuietly(_ fd: CInt) {
    if fd >= 0 { _ = Glibc.close(fd) }
}

/// Writes all of `bytes` to `fd`.
public func writeAll(_ fd: CInt, _ bytes: UnsafeRawBufferPointer, step: Step = .writeFile, path: String? = nil)
    throws(UrunError)
{
    var offset = 0
    while offset < bytes.count {
        let n = try sys(step, path: path) {
            Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
        }
        offset += n
    }
}

public func writeAll(_ fd: CInt, _ string: String, step: Step = .writeFile, path: String? = nil)
    throws(UrunError)
{
    try writeAll(fd, Array(string.utf8), step: step, path: path)
}

public func writeAll(_ fd: CInt, _ bytes: [UInt8], step: Step = .writeFile, path: String? = nil)
    throws(UrunError)
{
    var failure: UrunError?
    bytes.withUnsafeBytes { buffer in
        do throws(UrunError) { try writeAll(fd, buffer, step: step, path: path) } catch { failure = error }
    }
    if let failure { throw failure }
}

/// Best-effort write for diagnostics (stderr, narration): never throws.
public func writeQuietly(_ fd: CInt, _ string: String) {
    var copy = string
    copy.withUTF8 { buffer in
        var offset = 0
        while offset < buffer.count {
            let n = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            offset += n
        }
    }
}
