import Glibc
import UrunCLI
import UrunContainer
import UrunKernel

/// `urun healthcheck run`: the container's check, now, counted as its monitor counts it.
enum HealthcheckRunCommand: Command {
    static let spec = CommandSpec(
        name: "healthcheck run", abstract: "Run a container's health check now (exit 0: healthy, 1: unhealthy)",
        options: [], arguments: [ArgumentSpec("CONTAINER", help: "A name, an id or a unique prefix of one")],
        examples: ["urun healthcheck run web"])

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let containers = try containers(globals)
        let record = try containers.store.resolve(arguments.positionals[0])
        let health = try containers.checkHealth(record)
        if health.status == .healthy { return 0 }
        print(health.status.rawValue)
        return 1
    }
}

/// `urun generate systemd`: a user unit that starts a kept container at
/// login or boot (with lingering), since no daemon does.
enum GenerateSystemdCommand: Command {
    static let spec = CommandSpec(
        name: "generate systemd", abstract: "Print a systemd user unit that runs a kept container (it survives reboots)",
        discussion: """
            urun has no daemon, so a container's --restart policy lasts as long as its monitor: nothing starts it \
            again after a reboot. This unit does: systemd starts the container attached (urun start -a) and stops \
            it with urun stop; its Restart= follows the container's policy. Save it as \
            ~/.config/systemd/user/urun-NAME.service, then systemctl --user enable --now urun-NAME; \
            loginctl enable-linger starts it at boot without a login.
            """,
        options: [], arguments: [ArgumentSpec("CONTAINER", help: "A name, an id or a unique prefix of one")],
        examples: ["urun generate systemd web > ~/.config/systemd/user/urun-web.service"])

    static func run(_ arguments: ParsedArguments, _ globals: Globals) throws -> Int32 {
        let containers = try containers(globals)
        let record = try containers.store.resolve(arguments.positionals[0])
        let urun = executablePath() ?? "urun"
        print(SystemdUnit(record: record, urun: urun, globalArguments: globals.arguments).text, terminator: "")
        return 0
    }
}
