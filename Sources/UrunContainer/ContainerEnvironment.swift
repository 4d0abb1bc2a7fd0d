import UrunKernel
import UrunProcess

/// The environment of a container's command: nothing of the host's leaks in
/// except what `-e NAME` names explicitly (docker's rule).
public enum ContainerEnvironment {
    public static func build(hostname: String, home: String, image: [String] = [], user: [String])
        -> [String]
    {
        // TERM and container=urun as podman sets them (container=podman there): a
        // program may ask whether it runs in a container, and a terminal program what it drives.
        var env: [(String, String)] = [
            ("PATH", defaultPath), ("HOSTNAME", hostname), ("HOME", home), ("TERM", "xterm"), ("container", "urun"),
        ]
        for entry in image + user {
            let (key, value) = split(entry)
            env.removeAll { $0.0 == key }
            env.append((key, value))
        }
        return env.map { "\($0.0)=\($0.1)" }
    }

    /// `-e KEY=VALUE` as given; `-e KEY` takes KEY from urun's own environment
    /// and is dropped when unset there. A name that is empty or holds
    /// whitespace, "=" or a control character is refused, as docker does: no
    /// program could read it back.
    public static func fromFlags(_ values: [String], flag: String = "-e") throws(UrunError) -> [String] {
        var result: [String] = []
        for entry in values {
            let (key, _) = split(entry)
            guard !key.isEmpty else { throw .usage("\(flag) \(printable(entry)): a variable needs a name before '='") }
            guard !key.unicodeScalars.contains(where: { $0.properties.isWhitespace }), !hasControlCharacters(key) else {
                throw .usage("\(flag) \(printable(entry)): the variable name '\(printable(key))' holds whitespace or a control character")
            }
            if entry.contains("=") {
                result.append(entry)
            } else if let value = environment(entry) {
                result.append("\(entry)=\(value)")
            }
        }
        return result
    }

    /// --env-file: KEY=VALUE lines; `#` comments and blank lines skipped; a
    /// bare KEY reads urun's own environment, like -e.
    public static func parseFile(_ text: String, path: String) throws(UrunError) -> [String] {
        var result: [String] = []
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = String(raw).trimmingWhitespace()
            if line.isEmpty || line.hasPrefix("#") { continue }
            do throws(UrunError) {
                result += try fromFlags([line], flag: "--env-file \(printable(path)):\(number + 1):")
            } catch {
                throw .invalid("\(error)")
            }
        }
        return result
    }

    static func split(_ entry: String) -> (String, String) {
        guard let eq = entry.firstIndex(of: "=") else { return (entry, "") }
        return (String(entry[..<eq]), String(entry[entry.index(after: eq)...]))
    }
}
