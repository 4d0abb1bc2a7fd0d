import Testing
import UrunKernel
import UrunNetwork

@Suite struct PortMappingTests {
    @Test(arguments: [
        ("8080:80", "0.0.0.0:8080->80/tcp", "8080:80/tcp"),
        ("127.0.0.1:18080:8080/udp", "127.0.0.1:18080->8080/udp", "127.0.0.1:18080:8080/udp"),
        ("8000-8002:80-82", "0.0.0.0:8000-8002->80-82/tcp", "8000-8002:80-82/tcp"),
        ("[::1]:9000:90", "[::1]:9000->90/tcp", "[::1]:9000:90/tcp"),
        ("80", "0.0.0.0:0->80/tcp", "80/tcp"),
        ("127.0.0.1::80", "127.0.0.1:0->80/tcp", "127.0.0.1::80/tcp"),
    ])
    func parsesDockersForms(text: String, shown: String, flag: String) throws {
        let mapping = try PortMapping.parse(text)
        #expect(mapping.description == shown)
        #expect(mapping.flag == flag)
        #expect(try PortMapping.parse(mapping.flag) == mapping, "the stored form reads back")
    }

    @Test(arguments: ["", "http", "0:80", "8080:80/sctp", "8000-8001:80", "70000:80", "90-80:90-80", "80-81", ":80:80"])
    func rejectsMalformed(text: String) {
        #expect(throws: UrunError.self) { try PortMapping.parse(text) }
    }

    @Test func aFreeHostPortIsChosenWhenNoneIsGiven() throws {
        let chosen = try PortMapping.parse("80").withHostPort()
        #expect(chosen.hostPort >= 1024)
        #expect(chosen.containerPort == 80)
    }
}
