import CUrunSyscalls
import Glibc
import UrunKernel

/// slirp4netns' control socket, through which published ports are added
/// (one JSON request per connection: `add_hostfwd`). It lives in a private
/// directory of its own, short enough for a socket's path, only until the
/// ports are in place: slirp4netns keeps listening on the ports, not on it.
struct SlirpAPI {
    let directory: String
    var socket: String { directory + "/api.sock" }

    static func makeSocketDirectory() throws(UrunError) -> SlirpAPI {
        let runtime = environment("XDG_RUNTIME_DIR").flatMap { access($0, W_OK) == 0 ? $0 : nil }
        return SlirpAPI(directory: try makeTemporaryDirectory(in: runtime ?? "/tmp", prefix: "urun-slirp-"))
    }

    func remove() {
        unlink(socket)
        rmdir(directory)
    }

    /// Adds every port of `ports`, one request per port of a range.
    func publish(_ ports: [PortMapping]) throws(UrunError) {
        for mapping in ports {
            for offset in 0..<mapping.count {
                let request = JSON.object([
                    ("execute", .string("add_hostfwd")),
                    ("arguments", .object([
                        ("proto", .string(mapping.proto.rawValue)),
                        ("host_addr", .string(mapping.hostIP ?? "0.0.0.0")),
                        ("host_port", .int(Int(mapping.hostPort + offset))),
                        ("guest_port", .int(Int(mapping.containerPort + offset))),
                    ])),
                ])
                let reply = try send(request.serialized())
                if let error = (try? JSON(parsing: reply))?["error"] {
                    let why = error["desc"]?.string ?? reply
                    throw .invalid("-p \(mapping.description): slirp4netns could not publish host port \(mapping.hostPort + offset): \(why) (is the port already in use?)")
                }
            }
        }
    }

    private func send(_ request: String) throws(UrunError) -> String {
        let fd = Glibc.socket(AF_UNIX, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .kernel(.startNetworkHelper, path: socket, .current) }
        defer { closeQuietly(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let path = Array(socket.utf8)
        guard path.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw .invalid("slirp4netns' API socket path is too long: \(socket)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path) }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else { throw .kernel(.startNetworkHelper, path: socket, .current) }
        try writeAll(fd, request, step: .startNetworkHelper, path: socket)
        shutdown(fd, CInt(SHUT_WR))
        return String(decoding: try readAll(fd, path: socket), as: UTF8.self)
    }
}
