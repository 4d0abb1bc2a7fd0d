import Glibc
import UrunKernel

/// Resource limits with docker's flag names and units, checked when parsed
/// (before anything is created) and turned into cgroup v2 file writes.
public struct ResourceLimits: Equatable, Sendable {
    /// One cgroup file write, and the flag and controller it comes from.
    public struct Setting: Equatable, Sendable {
        public let flag: String
        public let controller: String
        public let file: String
        public let value: String

        public init(flag: String, controller: String, file: String, value: String) {
            self.flag = flag
            self.controller = controller
            self.file = file
            self.value = value
        }
    }

    public private(set) var settings: [Setting] = []

    public init() {}

    /// Limits read back from a container's config.
    public init(settings: [Setting]) {
        self.settings = settings
    }

    public var isEmpty: Bool { settings.isEmpty }

    /// Controllers the settings need, in a stable order.
    public var controllers: [String] {
        var seen: [String] = []
        for setting in settings where !seen.contains(setting.controller) { seen.append(setting.controller) }
        return seen
    }

    /// The memory limit in bytes, if one was set (for the OOM message).
    public var memoryMax: UInt64? {
        settings.first { $0.file == "memory.max" }.flatMap { UInt64($0.value) }
    }

    private mutating func add(_ flag: String, _ controller: String, _ file: String, _ value: String) {
        settings.removeAll { $0.file == file && !file.hasPrefix("io.max") }
        settings.append(Setting(flag: flag, controller: controller, file: file, value: value))
    }

    // MARK: flags

    /// `--memory 512m`: memory.max. docker's floor is 6 MiB.
    public mutating func setMemory(_ text: String) throws(UrunError) {
        let bytes = try Self.bytes(text, flag: "--memory")
        guard bytes >= 6 << 20 else { throw .usage("--memory \(text): the minimum is 6m") }
        add("--memory", "memory", "memory.max", "\(bytes)")
    }

    /// `--memory-swap`: docker's total of memory and swap (-1: unlimited swap);
    /// cgroup v2 counts swap alone, so memory.swap.max = total − memory.
    public mutating func setMemorySwap(_ text: String) throws(UrunError) {
        if text == "-1" {
            add("--memory-swap", "memory", "memory.swap.max", "max")
            return
        }
        let total = try Self.bytes(text, flag: "--memory-swap")
        guard let memory = memoryMax else { throw .usage("--memory-swap needs --memory as well") }
        guard total >= memory else { throw .usage("--memory-swap \(text) must not be less than --memory") }
        add("--memory-swap", "memory", "memory.swap.max", "\(total - memory)")
    }

    /// `--memory-reservation`: memory.low, the soft guarantee.
    public mutating func setMemoryReservation(_ text: String) throws(UrunError) {
        add("--memory-reservation", "memory", "memory.low", "\(try Self.bytes(text, flag: "--memory-reservation"))")
    }

    /// `--cpus 1.5`: cpu.max "150000 100000" (quota per 100 ms period).
    public mutating func setCPUs(_ text: String, available: Int) throws(UrunError) {
        guard let cpus = Double(text), cpus.isFinite, cpus >= 0.01 else {
            throw .usage("--cpus \(text): expected a number of CPUs, at least 0.01")
        }
        guard cpus <= Double(available) else {
            throw .usage("--cpus \(text): this machine has \(available) CPU\(available == 1 ? "" : "s")")
        }
        add("--cpus", "cpu", "cpu.max", "\(Int((cpus * 100_000).rounded())) 100000")
    }

    /// `--cpu-quota` and `--cpu-period` (microseconds, CFS's): cpu.max
    /// "QUOTA PERIOD"; a quota of -1 is "max". Not with --cpus, as docker.
    public mutating func setCPUQuota(quota: String?, period: String?) throws(UrunError) {
        guard quota != nil || period != nil else { return }
        if settings.contains(where: { $0.flag == "--cpus" }) {
            throw .usage("--cpu-quota and --cpu-period conflict with --cpus (which sets both)")
        }
        let periodValue = try period.map { (text) throws(UrunError) -> Int in
            guard let value = Int(text), (1000...1_000_000).contains(value) else {
                throw .usage("--cpu-period \(text): expected microseconds from 1000 to 1000000")
            }
            return value
        } ?? 100_000
        let quotaValue = try quota.map { (text) throws(UrunError) -> String in
            if text == "-1" { return "max" }
            guard let value = Int(text), (1000...1_000_000_000_000).contains(value) else {
                throw .usage("--cpu-quota \(text): expected microseconds per period, at least 1000 (-1: no limit)")
            }
            return String(value)
        } ?? "max"
        add(quota != nil ? "--cpu-quota" : "--cpu-period", "cpu", "cpu.max", "\(quotaValue) \(periodValue)")
    }

    /// `--cpu-shares` (docker's 2..262144, default 1024) → cpu.weight (1..10000, default 100),
    /// with the conversion runc and crun use.
    public mutating func setCPUShares(_ text: String) throws(UrunError) {
        guard let shares = UInt64(text), (2...262_144).contains(shares) else {
            throw .usage("--cpu-shares \(text): expected 2 to 262144")
        }
        add("--cpu-shares", "cpu", "cpu.weight", "\(1 + ((shares - 2) * 9999) / 262_142)")
    }

    /// `--cpu-weight`: cpu.weight directly (1..10000).
    public mutating func setCPUWeight(_ text: String) throws(UrunError) {
        guard let weight = UInt64(text), (1...10_000).contains(weight) else {
            throw .usage("--cpu-weight \(text): expected 1 to 10000")
        }
        add("--cpu-weight", "cpu", "cpu.weight", "\(weight)")
    }

    /// `--cpuset-cpus 0-3,7` / `--cpuset-mems 0`: cpuset.cpus / cpuset.mems.
    public mutating func setCPUSet(_ text: String, mems: Bool, available: Int) throws(UrunError) {
        let flag = mems ? "--cpuset-mems" : "--cpuset-cpus"
        let numbers = try Self.cpuList(text, flag: flag)
        if !mems, let highest = numbers.max(), highest >= available {
            throw .usage("\(flag) \(text): this machine's CPUs are 0-\(available - 1)")
        }
        add(flag, "cpuset", mems ? "cpuset.mems" : "cpuset.cpus", text)
    }

    /// `--pids-limit N`: pids.max (0 or -1: unlimited, as docker).
    public mutating func setPidsLimit(_ text: String) throws(UrunError) {
        guard let limit = Int64(text), limit >= -1 else { throw .usage("--pids-limit \(text): expected a number") }
        add("--pids-limit", "pids", "pids.max", limit <= 0 ? "max" : "\(limit)")
    }

    /// `--blkio-weight` (docker's 10..1000) → io.weight (1..10000).
    public mutating func setBlkioWeight(_ text: String) throws(UrunError) {
        guard let weight = UInt64(text), (10...1000).contains(weight) else {
            throw .usage("--blkio-weight \(text): expected 10 to 1000")
        }
        add("--blkio-weight", "io", "io.weight", "default \(1 + (weight - 10) * 9999 / 990)")
    }

    public enum DeviceLimit: String, Sendable {
        case readBPS = "rbps", writeBPS = "wbps", readIOPS = "riops", writeIOPS = "wiops"

        var flag: String {
            switch self {
            case .readBPS: return "--device-read-bps"
            case .writeBPS: return "--device-write-bps"
            case .readIOPS: return "--device-read-iops"
            case .writeIOPS: return "--device-write-iops"
            }
        }
    }

    /// `--device-read-bps /dev/sda:10mb` and friends: io.max "MAJ:MIN rbps=N".
    public mutating func setDeviceLimit(_ text: String, _ kind: DeviceLimit) throws(UrunError) {
        guard let colon = text.lastIndex(of: ":") else { throw .usage("\(kind.flag) \(text): expected DEVICE:RATE") }
        let device = String(text[..<colon])
        let rate = String(text[text.index(after: colon)...])
        var st = stat()
        guard stat(device, &st) == 0, st.st_mode & S_IFMT == S_IFBLK else {
            throw .usage("\(kind.flag) \(text): \(device) is not a block device")
        }
        let value: UInt64
        if kind == .readBPS || kind == .writeBPS {
            value = try Self.bytes(rate, flag: kind.flag)
        } else {
            guard let iops = UInt64(rate), iops > 0 else { throw .usage("\(kind.flag) \(text): expected a number of operations") }
            value = iops
        }
        let major = (st.st_rdev >> 8) & 0xfff | ((st.st_rdev >> 32) & ~0xfff)
        let minor = (st.st_rdev & 0xff) | ((st.st_rdev >> 12) & ~0xff)
        settings.append(Setting(flag: kind.flag, controller: "io", file: "io.max", value: "\(major):\(minor) \(kind.rawValue)=\(value)"))
    }

    // MARK: units

    /// docker's sizes: a number with an optional b, k, m, g or t suffix (also
    /// "mb" or "mib"), in units of 1024.
    public static func bytes(_ text: String, flag: String) throws(UrunError) -> UInt64 {
        let failure = UrunError.usage("\(flag) \(text): expected a size such as 512m or 2g")
        let units: [Character: UInt64] = ["b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40]
        var rest = text.lowercased()
        if rest.hasSuffix("ib") {
            rest.removeLast(2)
        } else if rest.hasSuffix("b"), rest.dropLast().last?.isLetter == true {
            rest.removeLast()
        }
        var multiplier: UInt64 = 1
        if let last = rest.last, last.isLetter {
            guard let unit = units[last] else { throw failure }
            multiplier = unit
            rest.removeLast()
        }
        guard let number = UInt64(rest), number > 0 else { throw failure }
        let (bytes, overflow) = number.multipliedReportingOverflow(by: multiplier)
        guard !overflow else { throw .usage("\(flag) \(text): too large") }
        return bytes
    }

    /// "0-3,7" → [0, 1, 2, 3, 7]. Numbers stop at the kernel's own bound
    /// (NR_CPUS and MAX_NUMNODES are at most 8192), checked before a range is
    /// expanded: "0-9999999999999" is an error, not an array of that size.
    static func cpuList(_ text: String, flag: String) throws(UrunError) -> [Int] {
        var numbers: [Int] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(bounds.count), let low = Int(bounds[0]), low >= 0,
                let high = bounds.count == 2 ? Int(bounds[1]) : low, high >= low
            else { throw .usage("\(flag) \(printable(text)): expected a list such as 0-3,7") }
            guard high < maxCPUNumber else { throw .usage("\(flag) \(printable(text)): \(high) is beyond any machine's CPUs and memory nodes") }
            numbers += Array(low...high)
        }
        return numbers
    }

    static let maxCPUNumber = 8192
}
