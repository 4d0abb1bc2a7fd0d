import Foundation
import Glibc
import Testing

/// `urun doctor` as the unprivileged test user, its report checked against
/// what this host really has, and a host where user namespaces are blocked
/// (user.max_user_namespaces=0 inside a throwaway user namespace).
@Suite(harnessAvailable) struct DoctorTests {
    let h = Harness.shared

    func line(_ outcome: Outcome, _ check: String) -> String {
        outcome.lines.first { $0.dropFirst(2).hasPrefix(check) } ?? ""
    }

    @Test func theReportMatchesThisHost() throws {
        let r = h.urun(["doctor"])
        #expect(r.status == 0, "\(r)")
        let maximum = try String(contentsOfFile: "/proc/sys/user/max_user_namespaces", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(line(r, "user namespace settings").contains("user.max_user_namespaces=\(maximum)"), "\(r)")
        #expect(line(r, "user namespace trial").hasPrefix("✓"), "\(r)")
        #expect(line(r, "overlayfs in a user namespace").hasPrefix("✓"), "\(r)")

        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let majorMinor = release.split(separator: ".").prefix(2).joined(separator: ".")
        #expect(line(r, "kernel").contains("Linux \(majorMinor)"), "\(r)")

        let mountinfo = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
        let hybrid = mountinfo.split(separator: "\n").contains { $0.contains(" - cgroup ") }
        let cgroups = line(r, "cgroups")
        #expect(cgroups.contains(hybrid ? "hybrid" : "cgroup v2"), "\(cgroups)")

        let subordinate = line(r, "subordinate ids")
        if let range = h.subordinateRange {
            #expect(subordinate.hasPrefix("✓") && subordinate.contains("uids \(range.start)-\(range.start + range.count - 1)"), "\(subordinate)")
        } else {
            #expect(subordinate.hasPrefix("!"), "\(subordinate)")
        }
        // Every ! and ✗ comes with its fix.
        for (index, text) in r.lines.enumerated() where text.hasPrefix("!") || text.hasPrefix("✗") {
            #expect(r.lines.indices.contains(index + 1) && r.lines[index + 1].hasPrefix("    fix: "), "\(text)")
        }

        let json = h.urun(["doctor", "--json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(object["canRun"] as? Bool == true)
        let checks = try #require(object["checks"] as? [[String: Any]])
        #expect(checks.count == r.lines.filter { ["✓", "!", "✗"].contains(String($0.prefix(1))) }.count)
        #expect(checks.allSatisfy { ["ok", "warn", "fail"].contains($0["status"] as? String ?? "") })
    }

    /// In a user namespace whose user.max_user_namespaces is 0, no nested one
    /// can be made: doctor says so with the fix and exits 1, and a container
    /// start fails pointing at doctor.
    @Test func aBlockedUserNamespaceIsAFailureWithItsFix() throws {
        let env = ["URUN_ROOT": h.sharedRoot]
        let blocked = "echo 0 > /proc/sys/user/max_user_namespaces && exec \"$@\""
        let r = h.runAsUser(["unshare", "--user", "--map-root-user", "sh", "-c", blocked, "sh", h.binary, "doctor"], environment: env)
        #expect(r.status == 1, "\(r)")
        #expect(line(r, "user namespace settings").hasPrefix("✗ ") && r.stdout.contains("fix: sudo sysctl -w user.max_user_namespaces=15000"), "\(r)")
        #expect(line(r, "user namespace trial").hasPrefix("✗ ") && line(r, "user namespace trial").contains("ENOSPC"), "\(r)")
        #expect(r.lines.last == "urun cannot run containers here until each ✗ is fixed.")

        let run = h.runAsUser(["unshare", "--user", "--map-root-user", "sh", "-c", blocked, "sh", h.binary, h.image(), "true"], environment: env)
        #expect(run.status == 125 && run.stderr.contains("user.max_user_namespaces") && run.stderr.contains("(run 'urun doctor' for details)"), "\(run)")
    }
}
