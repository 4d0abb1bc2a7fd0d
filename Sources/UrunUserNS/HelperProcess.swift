import CUrunSyscalls
import Glibc
import UrunKernel

/// A setuid helper (newuidmap, newgidmap) started with posix_spawn(3): an
/// empty environment, its stderr kept to explain a failure.
struct HelperProcess {
    let step: Step
    let command: [String]
    let pid: pid_t
    let stderr: CInt

    init(_ step: Step, _ command: [String]) throws(UrunError) {
        self.step = step
        self.command = command
        Explain.step(step, command.map { baseName(of: $0) }.joined(separator: " "))
        var pipe: [CInt] = [-1, -1]
        try sys(step) { urun_pipe2(&pipe, O_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipe[1], 2)
        var child: pid_t = 0
        let rc = withCStrings(command) { argv in
            withCStrings([]) { envp in posix_spawn(&child, command[0], &actions, nil, argv, envp) }
        }
        closeQuietly(pipe[1])
        guard rc == 0 else {
            closeQuietly(pipe[0])
            throw .kernel(step, path: command[0], Errno(rawValue: rc))
        }
        pid = child
        stderr = pipe[0]
    }

    /// Waits for the helper; its own message, when it fails.
    func wait() -> Result<Void, UrunError> {
        let output = String(decoding: (try? readAll(stderr)) ?? [], as: UTF8.self)
        closeQuietly(stderr)
        var status: CInt = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        if status == 0 { return .success(()) }
        let message = output.split(separator: "\n").last.map(String.init) ?? "exit status \(status >> 8)"
        return .failure(.invalid("\(command.joined(separator: " ")) failed: \(message)"))
    }
}
