import Foundation
import Glibc
import Testing
import UrunTestSupport

/// --help, the man page, the CLI reference and the shell completions all come
/// from the command declarations: the checked-in ones must equal what the
/// binary generates, and the completions must load and complete in bash.
@Suite(harnessAvailable) struct CLIDocsTests {
    let h = Harness.shared

    func checkedIn(_ path: String) throws -> String {
        try String(contentsOfFile: Harness.packageRoot + "/" + path, encoding: .utf8)
    }

    @Test func theManPageAndTheCLIReferenceAreTheBinarysOwn() throws {
        let man = h.urun(["manpage"])
        #expect(man.status == 0)
        #expect(man.stdout == (try checkedIn("Docs/urun.1")), "Docs/urun.1 is stale: urun manpage > Docs/urun.1")
        let markdown = h.urun(["manpage", "--markdown"])
        #expect(markdown.stdout == (try checkedIn("Docs/cli.md")), "Docs/cli.md is stale: urun manpage --markdown > Docs/cli.md")
    }

    /// Docs/docker-compatibility.md names every `docker run` flag urun does
    /// not take: each of docker's is either in `urun run --help` or there,
    /// and each listed one is really refused.
    @Test func everyDockerRunFlagIsSupportedOrListedAsNot() throws {
        let docker = """
            add-host annotation attach blkio-weight blkio-weight-device cap-add cap-drop cgroup-parent cgroupns cidfile cpu-count
            cpu-percent cpu-period cpu-quota cpu-rt-period cpu-rt-runtime cpu-shares cpus cpuset-cpus cpuset-mems detach detach-keys
            device device-cgroup-rule device-read-bps device-read-iops device-write-bps device-write-iops disable-content-trust dns
            dns-option dns-search domainname entrypoint env env-file expose gpus group-add health-cmd health-interval health-retries
            health-start-interval health-start-period health-timeout hostname init interactive ip ip6 ipc isolation kernel-memory label
            label-file link link-local-ip log-driver log-opt mac-address memory memory-reservation memory-swap memory-swappiness mount
            name network network-alias no-healthcheck oom-kill-disable oom-score-adj pid pids-limit platform privileged publish
            publish-all pull quiet read-only restart rm runtime security-opt shm-size sig-proxy stop-signal stop-timeout storage-opt
            sysctl tmpfs tty ulimit user userns uts volume volume-driver volumes-from workdir
            """.split(whereSeparator: \.isWhitespace).map(String.init)
        let help = h.urun(["run", "--help"]).stdout
        let supported = Set(help.matches(of: /--([a-z0-9-]+)/).map { String($0.1) })
        let page = try checkedIn("Docs/docker-compatibility.md")
        let table = page.components(separatedBy: "## Verbs")[0]
        let listed = Set(table.split(separator: "\n").filter { $0.hasPrefix("| `--") }.flatMap { line in
            line.split(separator: "|")[0].matches(of: /`--([a-z0-9-]+)`/).map { String($0.1) }
        })
        for flag in docker {
            #expect(supported.contains(flag) != listed.contains(flag), "--\(flag): \(supported.contains(flag) ? "supported and listed as not" : "neither supported nor listed")")
        }
        for flag in listed.sorted() {
            let refused = h.urun(["run", "--\(flag)", "x", h.image(), "true"])
            #expect(refused.status == 125 && refused.stderr.contains("--\(flag)"), "--\(flag): \(refused)")
        }
    }

    @Test(.requiring(access("/usr/bin/groff", X_OK) == 0, "groff is not installed (groff-base)"))
    func theManPageHasNoRoffWarnings() {
        let warnings = Harness.sh("groff -man -ww -z '\(Harness.packageRoot)/Docs/urun.1' 2>&1")
        #expect(warnings.stdout.isEmpty, "\(warnings)")
    }

    /// Every verb the global help lists has a --help that starts with its
    /// usage, and a section in the CLI reference.
    @Test func everyVerbHasHelpAndAReferenceSection() throws {
        let global = h.urun(["--help"])
        let verbs = global.stdout.components(separatedBy: "\n").drop { $0 != "Commands:" }.dropFirst().prefix { !$0.isEmpty }
            .compactMap { line -> String? in
                let words = line.split(separator: " ")
                guard let first = words.first else { return nil }
                // Two-word verbs: "image prune", "system df", "volume ls".
                if ["image", "system", "volume", "healthcheck", "generate"].contains(String(first)), words.count > 1 { return "\(first) \(words[1])" }
                return String(first)
            }
        #expect(verbs.count >= 20, "\(global)")
        let reference = try checkedIn("Docs/cli.md")
        for verb in verbs {
            let help = h.urun(verb.split(separator: " ").map(String.init) + ["--help"])
            #expect(help.status == 0 && help.stdout.hasPrefix("Usage:  urun \(verb)"), "\(verb): \(help)")
            #expect(reference.contains("\n## urun \(verb)\n"), "Docs/cli.md has no section for \(verb)")
        }
    }

    /// The bash completion, loaded into a real bash, completes verbs, fixed
    /// option values, subverbs and the names of existing containers.
    @Test func bashCompletionLoadsAndCompletes() throws {
        let root = h.freshRoot()
        let bin = h.pathDirectory(linking: [h.binary])
        #expect(h.urun(["create", "--name", "completion-target", "--network", "none", h.image(), "true"], root: root).status == 0)
        let script = """
            source <(urun completion bash) || exit 1
            complete -p urun
            t() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=(); _urun; echo "${COMPREPLY[*]}"; }
            t urun do
            t urun run --netw
            t urun run --network ""
            t urun image pr
            t urun rm completion-t
            """
        let r = h.runAsUser(["bash", "-c", script], environment: ["PATH": bin + ":/usr/bin:/bin", "URUN_ROOT": root])
        #expect(r.lines == [
            "complete -o filenames -F _urun urun", "doctor", "--network", "private none host pasta slirp4netns", "prune",
            "completion-target",
        ], "\(r)")
        // fish completes for real through `complete -C`; zsh through an interactive zsh on a pty (zpty)
        // that is sent `urun run --network <TAB><TAB>` and lists the choices.
        let directory = root + "-completion"
        #expect(Harness.sh("mkdir -p '\(directory)' && chown \(h.uid) '\(directory)'").status == 0)
        let zshDriver = """
            zmodload zsh/zpty
            zpty z 'zsh -f -i'
            zpty -w z 'PS1="> "; fpath=(\(directory) $fpath); autoload -U compinit; compinit -u -d \(directory)/dump; setopt nobeep; print REA""DY'
            local all="" chunk
            # Wait for the set-up to finish (the quotes keep the echoed command from matching).
            for i in {1..100}; do zpty -r -t z chunk && all+=$chunk; [[ $all == *READY* ]] && break; sleep 0.1; done
            all=""
            zpty -w -n z $'urun run --network \\t\\t'
            for i in {1..30}; do zpty -r -t z chunk && all+=$chunk; [[ $all == *slirp4netns* ]] && break; sleep 0.1; done
            print -r -- $all
            zpty -d z
            """
        for (shell, file, check) in [
            ("fish", directory + "/urun.fish", "source \(directory)/urun.fish && complete -C 'urun run --network ' && complete -C 'urun image pr'"),
            ("zsh", directory + "/_urun", zshDriver),
        ] {
            try require(access("/usr/bin/\(shell)", X_OK) == 0, "\(shell) is not installed: its completion script is not loaded")
            let generated = h.urun(["completion", shell])
            #expect(generated.status == 0)
            FileManager.default.createFile(atPath: file, contents: Data(generated.stdout.utf8))
            chmod(file, 0o644)
            let syntax = h.runAsUser([shell, "-n", file])
            #expect(syntax.status == 0, "\(shell): \(syntax)")
            let completed = h.runAsUser(shell == "zsh" ? [shell, "-f", "-c", check] : [shell, "-c", check], environment: ["PATH": bin + ":/usr/bin:/bin", "URUN_ROOT": root])
            if shell == "fish" {
                let words = completed.lines.map { String($0.split(separator: "\t").first ?? "") }
                #expect(words == ["host", "none", "pasta", "private", "slirp4netns", "prune"], "fish: \(completed)")
            } else {
                #expect(completed.stdout.contains(/host\s+none\s+pasta\s+private\s+slirp4netns/), "zsh: \(completed)")
            }
        }
        #expect(h.urun(["completion", "tcsh"]).status == 125)
    }
}
