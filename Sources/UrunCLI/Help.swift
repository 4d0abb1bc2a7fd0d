/// `--help` text, derived from the command's declaration.
extension CommandSpec {
    public var usageLine: String {
        var parts = ["urun", name]
        if options.count > 1 { parts.append("[OPTIONS]") }
        for argument in arguments {
            var text = argument.name + (argument.variadic ? "..." : "")
            if argument.optional { text = "[\(text)]" }
            parts.append(text)
        }
        return parts.joined(separator: " ")
    }

    public var help: String {
        var out = "Usage:  \(usageLine)\n\n\(abstract)\n"
        if !discussion.isEmpty { out += "\n" + wrap(discussion, indent: "", width: 88) + "\n" }
        if !arguments.isEmpty {
            out += "\nArguments:\n"
            for argument in arguments { out += row(argument.name, argument.help) }
        }
        out += "\nOptions:\n"
        for option in options {
            var left = option.short.map { "-\($0), " } ?? "    "
            left += "--\(option.long)"
            if let value = option.value { left += " \(value)" }
            out += row(left, option.help + (option.repeatable ? " (repeatable)" : ""))
        }
        if !examples.isEmpty {
            out += "\nExamples:\n"
            for example in examples { out += "  \(example)\n" }
        }
        return out
    }

    private func row(_ left: String, _ text: String) -> String {
        let column = 30
        let lead = "  " + left
        let body = wrap(text, indent: String(repeating: " ", count: column + 2), width: 100)
        let first = body.drop(while: { $0 == " " })
        if lead.count < column {
            return lead + String(repeating: " ", count: column + 2 - lead.count) + first + "\n"
        }
        return lead + "\n" + body + "\n"
    }
}

/// Wraps `text` at `width` columns, each line starting with `indent`.
func wrap(_ text: String, indent: String, width: Int) -> String {
    var lines: [String] = []
    for paragraph in text.split(separator: "\n", omittingEmptySubsequences: false) {
        var line = indent
        for word in paragraph.split(separator: " ") {
            if line.count > indent.count && line.count + 1 + word.count > width {
                lines.append(line)
                line = indent
            }
            if line.count > indent.count { line += " " }
            line += word
        }
        lines.append(line)
    }
    return lines.joined(separator: "\n")
}
