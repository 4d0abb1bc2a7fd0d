import Glibc
import Testing
@testable import UrunKernel

/// The messages urun's processes send each other, through a real pipe.
@Suite struct ChannelTests {
    func pipe() -> (read: CInt, write: CInt) {
        var fds: [CInt] = [-1, -1]
        #expect(Glibc.pipe(&fds) == 0)
        return (fds[0], fds[1])
    }

    @Test func everyMessageArrivesAsSent() {
        let (r, w) = pipe()
        defer { close(r) }
        let messages: [ChannelMessage] = [
            .proceed, .ready, .listening, .started, .pid(123_456), .pid(-1),
            .failed(.kernel(.clone, path: "/some/path", Errno(rawValue: EPERM))), .failed(.invalid(String(repeating: "é", count: 2000))),
            .failed(.commandNotFound("nope")), .failed(.invalid("")),
        ]
        for message in messages { #expect(Channel.send(message, on: w)) }
        close(w)
        for message in messages {
            let received = Channel.receive(from: r)
            if case .failed(.invalid(let text)) = message, text.utf8.count > 3000 {
                // The record keeps the first 3000 bytes of a long text.
                guard case .failed(.invalid(let got)) = received else { Issue.record("\(String(describing: received))"); continue }
                #expect(got.utf8.count <= 3000 && text.hasPrefix(got.prefix(100)))
            } else {
                #expect(received == message)
            }
        }
        #expect(Channel.receive(from: r) == nil, "end of file: the writer exec'd or exited")
    }

    @Test func aCutOrUnknownMessageIsAFailureNotAHang() {
        for bytes: [UInt8] in [[UInt8(ascii: "P"), 1, 2], [UInt8(ascii: "E"), 2, 0], Array("E".utf8) + [2, 0, 0, 0, 0, 0, 0, 50, 0, 65], [UInt8(ascii: "Z")]] {
            let (r, w) = pipe()
            _ = bytes.withUnsafeBytes { write(w, $0.baseAddress, $0.count) }
            close(w)
            let received = Channel.receive(from: r)
            close(r)
            guard case .failed(.invalid(let text)) = received else {
                Issue.record("\(bytes): \(String(describing: received))")
                continue
            }
            #expect(text.contains("unreadable report"))
        }
    }
}
