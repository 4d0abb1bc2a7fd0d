import Glibc
import UrunKernel
import UrunRootfs

/// The three /etc files every container gets from urun rather than from its
/// image, as docker does: its own hostname, a hosts file naming it, and a
/// resolv.conf whose nameservers it can actually reach.
enum EtcFiles {
    static func files(hostname: String, network: NetworkMode) -> [GeneratedFile] {
        [
            GeneratedFile(target: "/etc/hostname", content: hostname + "\n"),
            GeneratedFile(target: "/etc/hosts", content: hosts(hostname: hostname, network: network)),
            GeneratedFile(
                target: "/etc/resolv.conf",
                content: resolvConf(network: network, host: (try? readText("/etc/resolv.conf")) ?? "")),
        ]
    }

    /// Under fake root apt's downloader drops to the _apt user, checks, and
    /// finds it is still root: told to stay root, it works (charliecloud
    /// does the same). Only for images that have apt.
    static let aptStaysRoot = GeneratedFile(
        target: "/etc/apt/apt.conf.d/00urun-fake-root",
        content: "// urun --fake-root: setuid(2) is faked, so apt's sandbox user cannot be switched to\nAPT::Sandbox::User \"root\";\n")

    static func hosts(hostname: String, network: NetworkMode) -> String {
        if network == .host, let host = try? readText("/etc/hosts") { return host }
        return """
            127.0.0.1\tlocalhost
            ::1\tlocalhost ip6-localhost ip6-loopback
            127.0.1.1\t\(hostname)

            """
    }

    /// The host's resolv.conf, without loopback nameservers when the container
    /// has its own network namespace: 127.0.0.53 (systemd-resolved) there is
    /// the container's own loopback, where nothing listens.
    static func resolvConf(network: NetworkMode, host: String) -> String {
        guard network.ownNamespace else { return host }
        var dropped = false
        let lines = host.split(separator: "\n", omittingEmptySubsequences: false).filter { line in
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 2, fields[0] == "nameserver" else { return true }
            let loopback = fields[1].hasPrefix("127.") || fields[1] == "::1"
            if loopback { dropped = true }
            return !loopback
        }
        var text = lines.joined(separator: "\n")
        if dropped { text += "# urun: loopback nameservers of the host were left out: not reachable from this network namespace\n" }
        return text
    }
}
