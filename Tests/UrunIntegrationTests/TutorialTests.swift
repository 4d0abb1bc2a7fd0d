import Foundation
import Glibc
import Testing
import UrunTestSupport

/// One `$ command` of a tutorial and the output the page shows for it.
struct TutorialStep: CustomStringConvertible {
    let command: String
    let expected: [String]
    /// What the block needs from the host (`<!-- needs: memory -->`).
    let needs: [String]
    let line: Int

    var description: String { "line \(line): $ \(command)" }

    /// The page's output against the real one: `...` alone matches any
    /// number of lines, `[...]` inside a line any text; `[exit N]` as the
    /// last line is the expected exit status (else 0).
    func matches(_ output: [String], status: Int32) -> Bool {
        var pattern = expected
        var wantedStatus: Int32 = 0
        if let last = pattern.last, last.hasPrefix("[exit "), let n = Int32(last.dropFirst(6).dropLast()) {
            wantedStatus = n
            pattern.removeLast()
        }
        return status == wantedStatus && Self.match(pattern[...], output[...])
    }

    static func match(_ pattern: ArraySlice<String>, _ lines: ArraySlice<String>) -> Bool {
        guard let first = pattern.first else { return lines.isEmpty }
        if first == "..." {
            return (lines.startIndex...lines.endIndex).contains { match(pattern.dropFirst(), lines[$0...]) }
        }
        guard let line = lines.first, lineMatches(first, line) else { return false }
        return match(pattern.dropFirst(), lines.dropFirst())
    }

    static func lineMatches(_ pattern: String, _ line: String) -> Bool {
        let parts = pattern.components(separatedBy: "[...]")
        guard parts.count > 1 else { return pattern == line }
        var rest = Substring(line)
        guard rest.hasPrefix(parts[0]) else { return false }
        rest = rest.dropFirst(parts[0].count)
        for (index, part) in parts.enumerated().dropFirst() {
            if index == parts.count - 1 { return rest.hasSuffix(part) }
            guard let range = rest.range(of: part) else { return false }
            rest = rest[range.upperBound...]
        }
        return true
    }

    /// The steps of a page: the ```console blocks, in order.
    static func parse(_ markdown: String) -> [TutorialStep] {
        var steps: [TutorialStep] = []
        var needs: [String] = []
        var inConsole = false
        var command: String?
        var commandLine = 0
        var output: [String] = []
        var continuing = false
        func flush() {
            if let command { steps.append(TutorialStep(command: command, expected: output, needs: needs, line: commandLine)) }
            command = nil
            output = []
        }
        for (number, line) in markdown.components(separatedBy: "\n").enumerated() {
            if !inConsole {
                if line.hasPrefix("<!-- needs:") {
                    needs = line.dropFirst("<!-- needs:".count).replacingOccurrences(of: "-->", with: "")
                        .split(separator: " ").map(String.init)
                } else if line == "```console" {
                    inConsole = true
                }
                continue
            }
            if line == "```" {
                flush()
                inConsole = false
                needs = []
            } else if continuing {
                command! += "\n" + line
                continuing = line.hasSuffix("\\")
            } else if line.hasPrefix("$ ") {
                flush()
                command = String(line.dropFirst(2))
                commandLine = number + 1
                continuing = line.hasSuffix("\\")
            } else {
                output.append(line)
            }
        }
        return steps
    }
}

/// The tutorials under Docs/tutorials run for real, as the unprivileged test
/// user: every command of every ```console block, its output checked against
/// the page. A page that drifts from urun fails the build. Blocks that need
/// what this host lacks (`<!-- needs: memory -->`) are skipped, saying why.
@Suite(harnessAvailable, .serialized) struct TutorialTests {
    let h = Harness.shared

    static let pages: [String] = {
        let directory = Harness.packageRoot + "/Docs/tutorials"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasSuffix(".md") && $0 != "README.md" }.sorted()
    }()

    /// Why this host cannot run a block that needs `need`, or nil.
    func unmet(_ need: String) -> String? {
        switch need {
        case "cgroup":
            return DelegatedCgroup.forTutorials == nil ? DelegatedCgroup.skipReason : nil
        case "memory", "pids", "cpu", "io", "cpuset":
            guard let cgroup = DelegatedCgroup.forTutorials else { return DelegatedCgroup.skipReason }
            return cgroup.has(need) ? nil : "the \(need) controller is not available to delegate here (cgroup v2 has: \(cgroup.controllers.sorted().joined(separator: " "))); PureCgroupV2Tests proves the limits in a VM"
        case "network":
            return TunDevice.usable
        default:
            return "unknown need \"\(need)\""
        }
    }

    @Test(arguments: pages) func tutorialRunsAsWritten(_ page: String) throws {
        let text = try String(contentsOfFile: Harness.packageRoot + "/Docs/tutorials/" + page, encoding: .utf8)
        let steps = TutorialStep.parse(text)
        #expect(!steps.isEmpty, "\(page) has no ```console block")
        // A directory like a reader's: urun on PATH, busybox.tar in the current directory.
        let root = h.freshRoot()
        let home = root + "-home"
        let bin = h.pathDirectory(linking: [h.binary])
        let setup = Harness.sh("mkdir -p '\(home)' && cp '\(h.image())' '\(home)/busybox.tar' && chown -R \(h.uid) '\(home)'")
        #expect(setup.status == 0, "\(setup)")
        defer {
            _ = h.runAsUser(["sh", "-c", "urun rm -f $(urun ps -aq) >/dev/null 2>&1; true"],
                            environment: ["PATH": bin + ":/usr/bin:/bin", "URUN_ROOT": root])
        }
        // Commands that only set a shell variable are replayed before later ones, as in one session.
        var assignments = ""
        var unrunnable: [String] = []
        for step in steps {
            // A limit whose controller this host cannot delegate (a hybrid
            // host's cgroup2 has none of them): the command runs all the same,
            // and must be refused naming the fix, as a reader here would see it.
            // PureCgroupV2Tests proves the limits themselves in a pure cgroup v2 VM.
            let controllers: Set<String> = ["memory", "pids", "cpu", "io", "cpuset"]
            let undelegated = step.needs.filter { controllers.contains($0) && unmet($0) != nil && DelegatedCgroup.forTutorials != nil }
            if let reason = step.needs.lazy.filter({ !undelegated.contains($0) }).compactMap(unmet).first {
                unrunnable.append("line \(step.line) needs \(step.needs.joined(separator: ", ")): \(reason)")
                continue
            }
            if let controller = undelegated.first {
                let refused = h.runAsUser(
                    ["bash", "-c", "cd ~ && {\n" + assignments + step.command + "\n} 2>&1"],
                    environment: ["PATH": bin + ":/usr/bin:/bin:/usr/sbin:/sbin", "URUN_ROOT": root, "HOME": home],
                    cgroup: DelegatedCgroup.forTutorials?.path)
                #expect(refused.stdout.contains("needs the \(controller) controller, which is not delegated to you here"),
                        "\(page) \(step): on this host the limit must be refused naming the fix\n\(refused.stdout)")
                continue
            }
            let cgroupNeeds: Set<String> = ["cgroup", "memory", "pids", "cpu", "io", "cpuset"]
            let cgroup = step.needs.contains(where: cgroupNeeds.contains) ? DelegatedCgroup.forTutorials?.path : nil
            let outcome = h.runAsUser(
                ["bash", "-c", "cd ~ && {\n" + assignments + step.command + "\n} 2>&1"],
                environment: ["PATH": bin + ":/usr/bin:/bin:/usr/sbin:/sbin", "URUN_ROOT": root, "HOME": home], cgroup: cgroup)
            if step.command.firstMatch(of: /^[A-Za-z_][A-Za-z0-9_]*=[^ ]/) != nil && !step.command.contains(";") {
                assignments += step.command + "\n"
            }
            #expect(step.matches(outcome.lines, status: outcome.status),
                    "\(page) \(step)\n--- the page shows\n\(step.expected.joined(separator: "\n"))\n--- urun printed (exit \(outcome.status))\n\(outcome.stdout)")
        }
        // Every block that could run has run; what could not is a skip, and under CI a failure.
        if !unrunnable.isEmpty {
            if isCI { Issue.record("CI=true: \(page) has blocks this machine must run: \(unrunnable.joined(separator: "; "))") }
            try Test.cancel("skipped: \(page): \(unrunnable.joined(separator: "; "))")
        }
    }

    @Test func theMatcherFollowsItsRules() {
        let step = TutorialStep(command: "x", expected: ["a", "...", "c [...] e", "[exit 1]"], needs: [], line: 1)
        #expect(step.matches(["a", "b", "b", "c d e"], status: 1))
        #expect(step.matches(["a", "c  e"], status: 1))
        #expect(!step.matches(["a", "c d e"], status: 0))
        #expect(!step.matches(["a", "c d f"], status: 1))
        let parsed = TutorialStep.parse("text\n<!-- needs: memory -->\n```console\n$ echo a \\\n  b\na b\n$ true\n```\n")
        #expect(parsed.map(\.command) == ["echo a \\\n  b", "true"] && parsed[0].expected == ["a b"] && parsed[1].needs == ["memory"])
    }
}
