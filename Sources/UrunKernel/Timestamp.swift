import Glibc

/// A point in wall-clock time, to the nanosecond, written as RFC 3339 in UTC
/// ("2026-11-23T18:20:01.123456789Z"), as docker writes its times.
public struct Timestamp: Comparable, Sendable, CustomStringConvertible {
    public let seconds: Int
    public let nanoseconds: Int

    public init(seconds: Int, nanoseconds: Int = 0) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }

    public static func now() -> Timestamp {
        var t = timespec()
        clock_gettime(CLOCK_REALTIME, &t)
        return Timestamp(seconds: t.tv_sec, nanoseconds: t.tv_nsec)
    }

    public static func < (a: Timestamp, b: Timestamp) -> Bool {
        (a.seconds, a.nanoseconds) < (b.seconds, b.nanoseconds)
    }

    public var description: String { rfc3339 }

    public var rfc3339: String {
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        let fraction = String(nanoseconds)
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))."
            + String(repeating: "0", count: 9 - fraction.count) + fraction + "Z"
    }

    /// Parses what `rfc3339` writes, and also a shorter fraction or none, or
    /// a numeric offset instead of Z.
    public init?(rfc3339 text: String) {
        let bytes = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int? {
            guard range.upperBound <= bytes.count else { return nil }
            return Int(String(decoding: bytes[range], as: UTF8.self))
        }
        guard bytes.count >= 20, let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19)
        else { return nil }
        var index = 19
        var nanoseconds = 0
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            var digits = 0
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) {
                if digits < 9 { nanoseconds = nanoseconds * 10 + Int(bytes[index] - UInt8(ascii: "0")) }
                digits += 1
                index += 1
            }
            if digits < 9 { for _ in digits..<9 { nanoseconds *= 10 } }
        }
        var offset = 0
        if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
            guard let hours = number((index + 1)..<(index + 3)), let minutes = number((index + 4)..<(index + 6)) else {
                return nil
            }
            offset = (hours * 3600 + minutes * 60) * (bytes[index] == UInt8(ascii: "-") ? -1 : 1)
        } else if !(index < bytes.count && bytes[index] == UInt8(ascii: "Z")) {
            return nil
        }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(second)
        self.init(seconds: timegm(&parts) - offset, nanoseconds: nanoseconds)
    }

    /// docker's `--since` forms: an RFC 3339 time, a Unix timestamp, or a
    /// duration before now ("10m", "1h30m", "45s").
    public init?(since text: String, now: Timestamp = .now()) {
        if let parsed = Timestamp(rfc3339: text) {
            self = parsed
            return
        }
        if let seconds = Double(text) {
            // Beyond ±10^12 s (30,000 years) is no time at all: nil, never a trap.
            guard seconds.isFinite, abs(seconds) < 1e12 else { return nil }
            self.init(seconds: Int(seconds), nanoseconds: Int((seconds - seconds.rounded(.down)) * 1e9))
            return
        }
        guard let duration = Timestamp.duration(text) else { return nil }
        self.init(seconds: now.seconds - duration, nanoseconds: now.nanoseconds)
    }

    /// "1h30m" → 5400 (seconds); nil when malformed.
    public static func duration(_ text: String) -> Int? {
        var total = 0
        var value = 0
        var sawDigit = false
        for c in text {
            if let digit = c.wholeNumberValue, c.isASCII {
                // At most 10^12 seconds, so no sum or product below can overflow.
                value = value * 10 + digit
                guard value < 1_000_000_000_000 else { return nil }
                sawDigit = true
                continue
            }
            guard sawDigit else { return nil }
            switch c {
            case "s": total += value
            case "m": total += value * 60
            case "h": total += value * 3600
            case "d": total += value * 86400
            default: return nil
            }
            guard total < 1_000_000_000_000_000 else { return nil }
            value = 0
            sawDigit = false
        }
        return sawDigit || total == 0 ? nil : total
    }

    /// "5 seconds", "About a minute", "3 hours": docker's wording for `ps`.
    public func humanDistance(to later: Timestamp = .now()) -> String {
        let seconds = max(0, later.seconds - self.seconds)
        switch seconds {
        case ..<1: return "Less than a second"
        case ..<60: return seconds == 1 ? "1 second" : "\(seconds) seconds"
        case ..<120: return "About a minute"
        case ..<3600: return "\(seconds / 60) minutes"
        case ..<7200: return "About an hour"
        case ..<172_800: return "\(seconds / 3600) hours"
        default: return "\(seconds / 86400) days"
        }
    }
}

/// A Go-style duration, as docker's flags and Dockerfiles write them ("500ms",
/// "30s", "1m30s", "2h"; a bare number is seconds), in milliseconds, at most
/// `limit`; nil when malformed.
public func goDurationMilliseconds(_ text: String, limit: Int) -> Int? {
    var total = 0
    var rest = Substring(text)
    guard !rest.isEmpty else { return nil }
    while !rest.isEmpty {
        let digits = rest.prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty, digits.count <= 12, let value = Int(digits) else { return nil }
        rest = rest.dropFirst(digits.count)
        let unit = rest.prefix { $0.isASCII && $0.isLetter }
        rest = rest.dropFirst(unit.count)
        // A bare number is seconds, alone.
        let bare = unit.isEmpty && rest.isEmpty && total == 0
        guard let scale = bare ? 1000 : ["ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000][String(unit)] else { return nil }
        total += value * scale
        guard total <= limit else { return nil }
    }
    return total
}
