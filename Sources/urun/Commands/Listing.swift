import Glibc
import UrunCLI
import UrunKernel

/// What `ps` and `images` print: rows of named fields, as a table, through
/// a Go-style `--format` template (`{{.Names}}`, `{{json .}}`, "table ..."
/// for a header), or as one JSON object per line (`--format json`).
struct Listing {
    /// Field names in the order `{{json .}}` lists them.
    let fields: [String]
    /// Column headers for "table" templates.
    let headers: [String: String]
    let rows: [[String: String]]

    func render(format: String?, default template: String) -> String {
        var format = (format ?? template).replacingAll("\\t", with: "\t")
        if format == "json" { format = "{{json .}}" }
        let table = format.hasPrefix("table ") || format == "table"
        if table { format = String(format.dropFirst(format == "table" ? 5 : 6)) }
        if format.isEmpty { format = String(template.dropFirst(6)) }
        // JSON escapes what a terminal must not see itself, and is never cut or padded.
        if !table && format.contains("{{json") { return rows.map { fill(format, $0) + "\n" }.joined() }
        var lines: [[String]] = []
        if table { lines.append(fill(format, headers).components(separatedBy: "\t")) }
        for row in rows { lines.append(fill(format, row).components(separatedBy: "\t")) }
        return PsCommand.align(lines)
    }

    /// Replaces each {{.Field}} with the row's value, and {{json .}} with the
    /// whole row (or {{json .Field}} with one value) as JSON.
    func fill(_ template: String, _ values: [String: String]) -> String {
        var out = ""
        var rest = Substring(template)
        while let open = rest.range(of: "{{") {
            out += rest[..<open.lowerBound]
            guard let close = rest[open.upperBound...].range(of: "}}") else {
                rest = rest[open.lowerBound...]
                break
            }
            let action = rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: " ")
            if action.hasPrefix("json ") {
                let field = action.dropFirst(5).trimmingCharacters(in: " .")
                out += field.isEmpty
                    ? JSON.object(fields.map { ($0, .string(values[$0] ?? "")) }).serialized()
                    : JSON.string(values[field] ?? "").serialized()
            } else {
                out += values[Substring(action).trimmingCharacters(in: " .")] ?? ""
            }
            rest = rest[close.upperBound...]
        }
        return out + rest
    }
}

/// `--filter KEY=VALUE`, docker's: values of one key are alternatives, keys
/// must all match.
struct ListingFilters {
    private var values: [String: [String]] = [:]

    init(_ texts: [String], known: [String]) throws {
        for text in texts {
            let parts = text.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 2, known.contains(parts[0]) else {
                throw UrunError.usage("--filter \(printable(text)): expected KEY=VALUE with KEY one of \(known.joined(separator: ", "))")
            }
            values[parts[0], default: []].append(parts[1])
        }
    }

    /// Whether `key` is unfiltered or one of its values passes `test`.
    func allows(_ key: String, _ test: (String) -> Bool) -> Bool {
        values[key].map { $0.contains(where: test) } ?? true
    }

    /// label=KEY or label=KEY=VALUE against `labels`.
    func allowsLabels(_ labels: [String: String]) -> Bool {
        allows("label") { wanted in
            let parts = wanted.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            return parts.count == 1 ? labels[parts[0]] != nil : labels[parts[0]] == parts[1]
        }
    }

    /// A shell glob as docker's reference filter matches it.
    static func glob(_ pattern: String, _ text: String) -> Bool { fnmatch(pattern, text, 0) == 0 }
}
