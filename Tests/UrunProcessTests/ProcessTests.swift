import Glibc
import Testing
import UrunKernel
import UrunProcess

@Suite struct ProcessTests {
    @Test func exitStatusDecodesWaitStatus() {
        #expect(ExitStatus(waitStatus: 42 << 8) == ExitStatus(code: 42))
        #expect(ExitStatus(waitStatus: 9) == ExitStatus(code: 137, signal: 9))
        #expect(ExitStatus(waitStatus: 15) == ExitStatus(code: 143, signal: 15))
    }

    @Test func commandLookupFollowsPathAndDockersCodes() throws {
        #expect(try lookupCommand("sh", path: "/nonexistent:/bin:/usr/bin") == "/bin/sh")
        #expect(try lookupCommand("./relative", path: "/bin") == "./relative")
        #expect(throws: UrunError.commandNotFound("no-such-command-here")) {
            try lookupCommand("no-such-command-here", path: "/bin:/usr/bin")
        }
        #expect(throws: UrunError.commandNotFound("")) { try lookupCommand("", path: "/bin") }
    }

    @Test func signalNames() {
        #expect(parseSignal("TERM") == SIGTERM)
        #expect(parseSignal("sigkill") == SIGKILL)
        #expect(parseSignal("9") == 9)
        #expect(parseSignal("NOPE") == nil)
        #expect(parseSignal("0") == nil)
    }
}
