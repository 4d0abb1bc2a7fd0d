import Testing
import UrunKernel
@testable import UrunRegistry

@Suite struct ImageReferenceTests {
    func parsed(_ text: String) -> ImageReference? {
        if case .success(let reference) = ImageReference.parse(text) { return reference }
        return nil
    }

    @Test func dockerNormalization() {
        #expect(parsed("alpine")?.description == "docker.io/library/alpine:latest")
        #expect(parsed("alpine:3.20")?.description == "docker.io/library/alpine:3.20")
        #expect(parsed("user/app")?.description == "docker.io/user/app:latest")
        #expect(parsed("index.docker.io/library/alpine")?.description == "docker.io/library/alpine:latest")
        #expect(parsed("docker.io/alpine")?.repository == "library/alpine")
        #expect(parsed("localhost/app")?.registry == "localhost")
        #expect(parsed("127.0.0.1:5000/ns/app:v1")?.registry == "127.0.0.1:5000")
        #expect(parsed("127.0.0.1:5000/ns/app:v1")?.repository == "ns/app")
        #expect(parsed("[::1]:5000/app")?.registry == "[::1]:5000")
        #expect(parsed("quay.io/a/b/c:tag")?.repository == "a/b/c")
        #expect(parsed("registry-1.docker.io/library/alpine")?.apiHost == "registry-1.docker.io")
        #expect(parsed("alpine")?.apiHost == "registry-1.docker.io")
    }

    @Test func digests() {
        let digest = "sha256:" + String(repeating: "ab", count: 32)
        let reference = parsed("alpine@" + digest)
        #expect(reference?.tag == nil)
        #expect(reference?.digest == digest)
        #expect(reference?.manifestReference == digest)
        #expect(parsed("alpine:3.20@" + digest)?.description == "docker.io/library/alpine:3.20@" + digest)
        #expect(parsed("alpine@sha256:abc") == nil)
        #expect(parsed("alpine@md5:" + String(repeating: "a", count: 32)) == nil)
        #expect(parsed("alpine@sha256:" + String(repeating: "A", count: 64)) == nil)
    }

    @Test func invalidNames() {
        for text in ["", "Alpine", "alpine:", "alpine:-x", "a//b", "/alpine", "alpine/", "a--", "a..b", "a___b",
            "host:99999/app", "ho st/app", "alpine:" + String(repeating: "t", count: 129), "a\u{0}b", "../x", "a/../b"]
        {
            #expect(parsed(text) == nil, "\(text) should be refused")
        }
        for text in ["a-b", "a__b", "a.b", "a---b", "a_b/c.d", "alpine:" + String(repeating: "t", count: 128), "x:_t"] {
            #expect(parsed(text) != nil, "\(text) should be accepted")
        }
    }

    @Test func loopbackRegistries() {
        #expect(parsed("localhost:5000/a")?.isLoopback == true)
        #expect(parsed("127.0.0.1:5000/a")?.isLoopback == true)
        #expect(parsed("[::1]:5000/a")?.isLoopback == true)
        #expect(parsed("example.com/a")?.isLoopback == false)
        #expect(parsed("alpine")?.isLoopback == false)
    }
}

@Suite struct RegistryProtocolTests {
    @Test func bearerChallenge() {
        let challenge = Challenge.parse(#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#)
        #expect(challenge?.scheme == "bearer")
        #expect(challenge?.parameters["realm"] == "https://auth.docker.io/token")
        #expect(challenge?.parameters["service"] == "registry.docker.io")
        #expect(challenge?.parameters["scope"] == "repository:library/alpine:pull")
        #expect(Challenge.parse(#"Basic realm="Registry Realm""#)?.scheme == "basic")
        #expect(Challenge.parse(#"Bearer realm="a\"b", error=invalid_token"#)?.parameters == ["realm": "a\"b", "error": "invalid_token"])
        #expect(Challenge.parse("") == nil)
    }

    @Test func redirectsAndOrigins() {
        #expect(RegistryClient.origin(of: "https://Reg.example:5000/v2/x") == "https://reg.example:5000")
        #expect(RegistryClient.resolve("/v2/b", against: "https://r.example/v2/a") == "https://r.example/v2/b")
        #expect(RegistryClient.resolve("https://s3.example/blob?sig=1", against: "https://r.example/v2/a") == "https://s3.example/blob?sig=1")
        #expect(RegistryClient.percentEncode("repository:a/b:pull") == "repository%3Aa%2Fb%3Apull")
    }

    @Test func base64RoundTrip() {
        for text in ["", "a", "ab", "abc", "user:pässword", "x:" + String(repeating: "y", count: 100)] {
            let encoded = Base64.encode(Array(text.utf8))
            #expect(Base64.decode(encoded) == Array(text.utf8))
        }
        #expect(Base64.encode(Array("user:pass".utf8)) == "dXNlcjpwYXNz")
        #expect(Base64.decode("not base64!") == nil)
    }

    @Test func transferRequestRoundTrip() throws {
        var request = TransferRequest(command: .login, target: "127.0.0.1:5000")
        request.tlsVerify = false
        request.credentials = RegistryCredentials(username: "u", password: "p\"w")
        let back = try TransferRequest(json: try JSON(parsing: request.json.serialized()))
        #expect(back.command == .login && back.target == "127.0.0.1:5000" && back.tlsVerify == false)
        #expect(back.credentials?.username == "u" && back.credentials?.password == "p\"w")
    }
}
