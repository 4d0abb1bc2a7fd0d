import Glibc
import UrunKernel

/// Download progress on a terminal, one line per blob and a total, as
/// podman shows it; nothing when stderr is not a terminal.
final class ProgressDisplay {
    private let enabled: Bool
    private let names: [String]
    private let sizes: [Int64]
    private var done: [Int64]
    private var drawn = false
    private var lastDraw = 0.0

    init(enabled: Bool, names: [String], sizes: [Int64]) {
        self.enabled = enabled && isatty(2) == 1
        self.names = names
        self.sizes = sizes
        done = sizes.map { _ in 0 }
    }

    func update(_ index: Int, _ bytes: Int64) {
        done[index] = bytes
        let now = monotonicSeconds()
        guard enabled, now - lastDraw >= 0.1 else { return }
        lastDraw = now
        draw()
    }

    func finish() {
        guard enabled else { return }
        draw()
    }

    private func draw() {
        var text = drawn ? "\u{1B}[\(names.count + 1)A" : ""
        for i in names.indices { text += line("Copying blob " + names[i], done[i], sizes[i]) }
        text += line("Total" + String(repeating: " ", count: 20), done.reduce(0, +), sizes.reduce(0, +))
        drawn = true
        writeQuietly(2, text)
    }

    private func line(_ label: String, _ done: Int64, _ size: Int64) -> String {
        let width = 30
        let filled = size > 0 ? Int(min(done, size) * Int64(width) / size) : width
        let bar = String(repeating: "=", count: filled) + (filled < width ? ">" + String(repeating: " ", count: width - filled - 1) : "")
        return "\r\u{1B}[K\(label) [\(bar)] \(humanSize(UInt64(max(0, done)))) / \(humanSize(UInt64(max(0, size))))\n"
    }
}
