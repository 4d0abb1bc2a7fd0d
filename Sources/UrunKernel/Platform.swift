import Glibc

/// Image platforms as OCI writes them: `os/architecture[/variant]`.
public enum Platform {
    /// This machine's, in Go's names (what images are tagged with).
    public static var native: String {
        var info = utsname()
        uname(&info)
        let machine = withUnsafeBytes(of: &info.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        switch machine {
        case "x86_64": return "linux/amd64"
        case "aarch64": return "linux/arm64"
        case "armv7l": return "linux/arm/v7"
        default: return "linux/" + machine
        }
    }

    /// "linux/arm64/v8" is what "linux/arm64" asks for; a variant asked for must match.
    public static func matches(_ platform: String, wanted: String) -> Bool {
        let have = platform.split(separator: "/")
        let want = wanted.split(separator: "/")
        return zip(have, want).allSatisfy { $0 == $1 } && have.count >= min(want.count, 2)
    }

    static let architectures = ["amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64", "mips64le", "loong64"]

    /// --platform OS/ARCH[/VARIANT], checked against what images use.
    public static func validated(_ text: String) throws(UrunError) -> String {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard (2...3).contains(parts.count), parts[0] == "linux", architectures.contains(parts[1]),
            parts.count == 2 || (parts[2].count >= 2 && parts[2].first == "v" && parts[2].dropFirst().allSatisfy(\.isASCII) && Int(parts[2].dropFirst()) != nil)
        else {
            throw .usage("--platform \(printable(text)): expected linux/ARCH[/VARIANT], ARCH one of \(architectures.joined(separator: ", ")) (urun runs Linux images)")
        }
        return text
    }
}
