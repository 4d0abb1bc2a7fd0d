import Glibc
import UrunKernel

/// One `-p/--publish`: `[IP:]HOSTPORT:CONTAINERPORT[/tcp|udp]`, where either
/// port may be a range (`8000-8009:80-89`), or `CONTAINERPORT` alone, which
/// publishes on a free host port, as docker does.
public struct PortMapping: Equatable, Sendable {
    public enum Proto: String, Sendable { case tcp, udp }

    /// The host address to bind; nil: every address.
    public var hostIP: String?
    /// The first host port; 0: pick a free one when the container starts.
    public var hostPort: UInt16
    public var containerPort: UInt16
    /// How many consecutive ports (a range).
    public var count: UInt16
    public var proto: Proto

    public init(hostIP: String? = nil, hostPort: UInt16, containerPort: UInt16, count: UInt16 = 1, proto: Proto = .tcp) {
        self.hostIP = hostIP
        self.hostPort = hostPort
        self.containerPort = containerPort
        self.count = count
        self.proto = proto
    }

    public static func parse(_ text: String) throws(UrunError) -> PortMapping {
        func bad(_ why: String) -> UrunError { .usage("-p \(text): \(why) (expected [IP:]HOSTPORT:CONTAINERPORT[/tcp|udp])") }
        var rest = Substring(text)
        var proto = Proto.tcp
        if let slash = rest.lastIndex(of: "/") {
            guard let p = Proto(rawValue: String(rest[rest.index(after: slash)...]).lowercased()) else {
                throw bad("the protocol must be tcp or udp")
            }
            proto = p
            rest = rest[..<slash]
        }
        // The container side is after the last colon; an IPv6 address comes in brackets.
        var hostIP: String?
        var hostPart: Substring?
        if let colon = rest.lastIndex(of: ":") {
            hostPart = rest[..<colon]
            rest = rest[rest.index(after: colon)...]
            if let h = hostPart, let inner = h.lastIndex(of: ":") {
                var ip = h[..<inner]
                if ip.hasPrefix("[") && ip.hasSuffix("]") { ip = ip.dropFirst().dropLast() }
                guard !ip.isEmpty else { throw bad("an empty host address") }
                hostIP = String(ip)
                hostPart = h[h.index(after: inner)...]
            }
        }
        let container = try ports(rest, bad)
        var host: (first: UInt16, count: UInt16) = (0, container.count)
        if let hostPart, !hostPart.isEmpty {
            host = try ports(hostPart, bad)
            guard host.count == container.count else { throw bad("the two ranges differ in length") }
        } else if container.count > 1 {
            throw bad("a range of container ports needs host ports too")
        }
        return PortMapping(hostIP: hostIP, hostPort: host.first, containerPort: container.first, count: container.count, proto: proto)
    }

    private static func ports(_ text: Substring, _ bad: (String) -> UrunError) throws(UrunError) -> (first: UInt16, count: UInt16) {
        let bounds = text.split(separator: "-", omittingEmptySubsequences: false)
        guard (1...2).contains(bounds.count), let first = UInt16(bounds[0]), first > 0 else { throw bad("\"\(text)\" is not a port") }
        guard bounds.count == 2 else { return (first, 1) }
        guard let last = UInt16(bounds[1]), last >= first else { throw bad("\"\(text)\" is not a range of ports") }
        return (first, last - first + 1)
    }

    /// `first`, or `first-last` for a range of `count` ports.
    private func range(_ first: UInt16) -> String { count == 1 ? "\(first)" : "\(first)-\(first + count - 1)" }

    /// As docker shows it: `0.0.0.0:8080->80/tcp`.
    public var description: String {
        let ip = hostIP.map { $0.contains(":") ? "[\($0)]" : $0 } ?? "0.0.0.0"
        return "\(ip):\(range(hostPort))->\(range(containerPort))/\(proto.rawValue)"
    }

    /// As the -p flag that gives this mapping back (how it is stored).
    public var flag: String {
        let ip = hostIP.map { ($0.contains(":") ? "[\($0)]" : $0) + ":" } ?? ""
        let host = hostPort == 0 ? (ip.isEmpty ? "" : ":") : range(hostPort) + ":"
        return ip + host + range(containerPort) + "/" + proto.rawValue
    }

    /// pasta's `-t`/`-u` argument: `[ADDR/]HOST[-LAST]:CONTAINER[-LAST]`.
    var pastaSpec: String {
        return (hostIP.map { $0 + "/" } ?? "") + range(hostPort) + ":" + range(containerPort)
    }

    /// This mapping with a free host port chosen where none was given: the
    /// kernel names one (bind to port 0), which pasta then binds.
    public func withHostPort() throws(UrunError) -> PortMapping {
        guard hostPort == 0 else { return self }
        var chosen = self
        chosen.hostPort = try Self.freePort(proto)
        return chosen
    }

    static func freePort(_ proto: Proto) throws(UrunError) -> UInt16 {
        let type = proto == .tcp ? CInt(SOCK_STREAM.rawValue) : CInt(SOCK_DGRAM.rawValue)
        let fd = try sys(.startNetworkHelper) { socket(AF_INET, type | CInt(SOCK_CLOEXEC.rawValue), 0) }
        defer { closeQuietly(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        try sys(.startNetworkHelper) {
            withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                    bind(fd, pointer, length) == 0 ? getsockname(fd, pointer, &length) : -1
                }
            }
        }
        return UInt16(bigEndian: address.sin_port)
    }

    /// Unprivileged users may bind host ports from this number up.
    public static func unprivilegedPortStart() -> UInt16 {
        (try? readText("/proc/sys/net/ipv4/ip_unprivileged_port_start")).flatMap { UInt16($0.trimmingWhitespace()) } ?? 1024
    }
}
