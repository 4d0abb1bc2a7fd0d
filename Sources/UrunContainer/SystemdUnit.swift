import UrunKernel

/// The systemd user unit `urun generate systemd` prints for a kept
/// container. systemd only starts it (at login, or at boot with lingering)
/// and stops it; while it runs, its own monitor applies --restart, so the
/// two never restart it twice.
public struct SystemdUnit: Sendable {
    public let record: ContainerRecord
    /// The urun to run, by absolute path (systemd's PATH is not the user's).
    public let urun: String
    /// urun's global options (`--root DIR`), so the unit finds the same container.
    public let globalArguments: [String]

    public init(record: ContainerRecord, urun: String, globalArguments: [String]) {
        self.record = record
        self.urun = urun
        self.globalArguments = globalArguments
    }

    public var text: String {
        let command = ([urun] + globalArguments).map(Self.quoted).joined(separator: " ")
        let stopSeconds = (record.spec.stopTimeout ?? 10) + 10
        return """
            # urun generate systemd \(record.name): save as ~/.config/systemd/user/urun-\(record.name).service,
            # then: systemctl --user daemon-reload && systemctl --user enable --now urun-\(record.name)
            # (loginctl enable-linger starts it at boot, before any login).
            [Unit]
            Description=urun container \(record.name)
            Documentation=man:urun(1)
            Wants=network-online.target
            After=network-online.target

            [Service]
            # urun start returns once the container runs; its monitor stays in this
            # unit's cgroup and restarts it as --restart \(record.spec.restart.text) says.
            Type=oneshot
            RemainAfterExit=yes
            ExecStart=\(command) start \(record.id)
            ExecStop=\(command) stop \(record.id)
            TimeoutStopSec=\(stopSeconds)

            [Install]
            WantedBy=default.target

            """
    }

    /// One argument as systemd's command lines read it: quoted, with `\`, `"` and `%` escaped, `$` doubled.
    static func quoted(_ argument: String) -> String {
        var out = "\""
        for c in argument {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "%": out += "%%"
            case "$": out += "$$"
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out + "\""
    }
}
