import UrunKernel

/// `--restart`: what a container's monitor does when the command exits, as
/// docker has it. There is no daemon: the monitor restarts the container
/// while it lives; nothing restarts it after a reboot (a systemd user unit
/// from `urun generate systemd` does that), so `always` and
/// `unless-stopped` behave the same here.
public enum RestartPolicy: Equatable, Sendable {
    case no
    /// A non-zero exit restarts it, at most `maximum` times (0: no limit).
    case onFailure(maximum: Int)
    case always
    case unlessStopped

    public static let names = ["no", "on-failure[:N]", "always", "unless-stopped"]

    public init(parsing text: String) throws(UrunError) {
        switch text {
        case "no": self = .no
        case "always": self = .always
        case "unless-stopped": self = .unlessStopped
        case "on-failure": self = .onFailure(maximum: 0)
        default:
            guard text.hasPrefix("on-failure:"), let count = Int(text.dropFirst("on-failure:".count)), (0...1_000_000).contains(count) else {
                throw .usage("--restart \(printable(text)): expected \(Self.names.joined(separator: ", ")) (N from 0 to 1000000)")
            }
            self = .onFailure(maximum: count)
        }
    }

    /// docker's spelling, as `--restart` takes it.
    public var text: String {
        switch self {
        case .no: return "no"
        case .onFailure(let maximum): return maximum == 0 ? "on-failure" : "on-failure:\(maximum)"
        case .always: return "always"
        case .unlessStopped: return "unless-stopped"
        }
    }

    /// Whether an exit with `code`, after `restarts` restarts so far,
    /// starts the container again. An exit that `urun stop` or `rm` asked
    /// for never does.
    public func restarts(afterExit code: Int32, restarts: Int, stoppedByUser: Bool) -> Bool {
        guard !stoppedByUser else { return false }
        switch self {
        case .no: return false
        case .always, .unlessStopped: return true
        case .onFailure(let maximum): return code != 0 && (maximum == 0 || restarts < maximum)
        }
    }

    /// docker's back-off before restart number `restarts` (1, 2, ...): 100 ms,
    /// doubled each time, at most a minute; a container that ran for 10
    /// seconds or more starts the count again (the monitor resets it).
    public static func delayMilliseconds(beforeRestart restarts: Int) -> Int {
        min(60_000, 100 << min(max(restarts - 1, 0), 10))
    }
}
