import CUrunSyscalls
import Glibc

/// `--explain`: each kernel step is narrated as it happens, with why it is
/// taken and where to read more. `sys(...)` calls `step` just before the call.
public enum Explain {
    public enum Mode: Sendable, Equatable {
        case off, text, json
    }

    // Global by design: urun is single-threaded and the narration must reach the
    // forked child without threading a context through every mount call.
    nonisolated(unsafe) public private(set) static var mode: Mode = .off
    nonisolated(unsafe) private static var output: CInt = 2
    nonisolated(unsafe) private static var lastPhase: Step.Phase?
    /// When narration started (CLOCK_MONOTONIC): JSON events carry their time
    /// since, in one clock for urun and its children, so a step's duration is
    /// the gap to the next event (Helpers/bench/steps adds them up).
    nonisolated(unsafe) private static var started = 0.0

    public static var enabled: Bool { mode != .off }

    /// The descriptor the narration goes to, while it is on: one a process
    /// that closes what it inherited must keep.
    public static var descriptor: CInt? { enabled ? output : nil }

    /// Turns narration on, to a private copy of stderr, so that a pty placed on
    /// fd 2 later still leaves the narration on the host's terminal.
    public static func start(_ mode: Mode) {
        self.mode = mode
        guard mode != .off else { return }
        started = monotonicSeconds()
        let copy = urun_dup_cloexec(2)
        if copy >= 0 { output = copy }
    }

    public static func step(_ step: Step, _ call: String) {
        switch mode {
        case .off:
            return
        case .text:
            var text = ""
            if lastPhase != step.phase {
                text += "── \(step.phase.rawValue) ──\n"
                lastPhase = step.phase
            }
            text += "  \(call)\n"
            if !step.why.isEmpty {
                text += "      \(step.why)"
                if !step.manPage.isEmpty { text += " [\(step.manPage)]" }
                text += "\n"
            }
            writeQuietly(output, text)
        case .json:
            var object = JSON.object([
                ("phase", .string(step.phase.rawValue)),
                ("step", .string(step.phrase)),
                ("call", .string(call)),
                ("t_us", .int(Int((monotonicSeconds() - started) * 1_000_000))),
                ("pid", .int(getpid())),
            ])
            if !step.why.isEmpty { object["why"] = .string(step.why) }
            if !step.manPage.isEmpty { object["man"] = .string(step.manPage) }
            writeQuietly(output, object.serialized() + "\n")
        }
    }

    /// A line of narration that is not itself a call (a result, a decision).
    public static func note(_ step: Step, _ text: String) {
        switch mode {
        case .off: return
        case .text: writeQuietly(output, "  \(text)\n")
        case .json:
            let object = JSON.object([
                ("phase", .string(step.phase.rawValue)), ("step", .string(step.phrase)), ("note", .string(text)),
                ("t_us", .int(Int((monotonicSeconds() - started) * 1_000_000))), ("pid", .int(getpid())),
            ])
            writeQuietly(output, object.serialized() + "\n")
        }
    }
}
