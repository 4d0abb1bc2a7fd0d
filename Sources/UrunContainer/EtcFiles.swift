import Glibc
import UrunKernel
import UrunNetwork
import UrunRootfs

/// The three /etc files every container gets from urun rather than from its
/// image, as docker does: its own hostname, a hosts file naming it, and a
/// resolv.conf whose nameservers it can actually reach.
enum EtcFiles {
    /// `helper`: the network helper that connects the container, if any.
    static func files(hostname: String, spec: ContainerSpec, helper: NetworkHelper.Kind?) -> [GeneratedFile] {
        let hostResolvConf = (try? readText("/etc/resolv.conf")) ?? ""
        return [
            GeneratedFile(target: "/etc/hostname", content: hostname + "\n"),
            GeneratedFile(
                target: "/etc/hosts",
                content: hosts(hostname: hostname, network: spec.network, gateway: hostAddress(helper), extra: spec.extraHosts)),
            GeneratedFile(
                target: "/etc/resolv.conf",
                content: resolvConf(
                    network: spec.network, helper: helper, host: hostResolvConf,
                    dns: spec.dns, search: spec.dnsSearch, options: spec.dnsOptions)),
        ]
    }

    /// Under fake root apt's downloader drops to the _apt user, checks, and
    /// finds it is still root: told to stay root, it works (charliecloud
    /// does the same). Only for images that have apt.
    static let aptStaysRoot = GeneratedFile(
        target: "/etc/apt/apt.conf.d/00urun-fake-root",
        content: "// urun --fake-root: setuid(2) is faked, so apt's sandbox user cannot be switched to\nAPT::Sandbox::User \"root\";\n")

    /// localhost, the container's own name, the host as podman names it, and --add-host.
    static func hosts(hostname: String, network: NetworkMode, gateway: String?, extra: [String]) -> String {
        var text: String
        if network == .host, let host = try? readText("/etc/hosts") {
            text = host
        } else {
            text = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t\(hostname)\n"
            if let gateway { text += "\(gateway)\thost.containers.internal host.urun.internal\n" }
        }
        for entry in extra {
            guard let colon = entry.firstIndex(of: ":") else { continue }
            text += "\(entry[entry.index(after: colon)...])\t\(entry[..<colon])\n"
        }
        return text
    }

    /// Nameservers the container can reach: --dns; else pasta's forwarding
    /// address; else (loopback only) the host's, without loopback ones, since
    /// 127.0.0.53 (systemd-resolved) there is the container's own loopback,
    /// where nothing listens. Search domains and options: the flags', else the host's.
    static func resolvConf(
        network: NetworkMode, helper: NetworkHelper.Kind?, host: String, dns: [String], search: [String], options: [String]
    ) -> String {
        if network == .host && dns.isEmpty && search.isEmpty && options.isEmpty { return host }
        var nameservers: [String] = []
        var others: [String] = []
        var dropped = false
        for line in host.split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if fields.count >= 2, fields[0] == "nameserver" {
                let loopback = fields[1].hasPrefix("127.") || fields[1] == "::1"
                if loopback && network.ownNamespace { dropped = true } else { nameservers.append(String(fields[1])) }
            } else if !(fields.first == "search" && !search.isEmpty) && !(fields.first == "options" && !options.isEmpty) {
                others.append(String(line))
            }
        }
        if !dns.isEmpty {
            nameservers = dns
        } else if let helper {
            nameservers = [helper.dnsAddress]
            dropped = false
        }
        var text = others.map { $0 + "\n" }.joined()
        if !search.isEmpty { text += "search \(search.joined(separator: " "))\n" }
        if !options.isEmpty { text += "options \(options.joined(separator: " "))\n" }
        text += nameservers.map { "nameserver \($0)\n" }.joined()
        if dropped && dns.isEmpty {
            text += "# urun: loopback nameservers of the host were left out: not reachable from this network namespace\n"
        }
        return text
    }

    /// Where the container reaches the host: pasta maps the host's default
    /// gateway, which it gives the container too, to the host itself;
    /// slirp4netns maps 10.0.2.2 to the host's loopback.
    static func hostAddress(_ helper: NetworkHelper.Kind?) -> String? {
        switch helper {
        case .pasta?: return defaultGateway()
        case .slirp4netns?: return NetworkHelper.slirpHostAddress
        case nil: return nil
        }
    }

    /// The host's default IPv4 gateway (/proc/net/route).
    static func defaultGateway() -> String? {
        guard let table = try? readText("/proc/net/route") else { return nil }
        for line in table.split(separator: "\n").dropFirst() {
            let fields = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
            guard fields.count > 2, fields[1] == "00000000", let raw = UInt32(fields[2], radix: 16), raw != 0 else { continue }
            // Little-endian hex of the address in network order.
            return "\(raw & 0xff).\(raw >> 8 & 0xff).\(raw >> 16 & 0xff).\(raw >> 24)"
        }
        return nil
    }
}
