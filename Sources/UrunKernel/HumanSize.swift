/// Sizes as docker prints them, to three significant digits: disk and I/O
/// in decimal units ("2.14MB", "512kB"), memory in binary ones ("1.5MiB").
public func humanSize(_ bytes: UInt64, binary: Bool = false) -> String {
    let units = binary ? ["B", "KiB", "MiB", "GiB", "TiB", "PiB"] : ["B", "kB", "MB", "GB", "TB", "PB"]
    let base: UInt64 = binary ? 1024 : 1000
    var unit = 0
    var scale: UInt64 = 1
    while unit < units.count - 1 && bytes / scale >= base {
        scale *= base
        unit += 1
    }
    let whole = bytes / scale
    let decimals = whole >= 100 ? 0 : whole >= 10 ? 1 : 2
    let factor: UInt64 = decimals == 0 ? 1 : decimals == 1 ? 10 : 100
    // Multiplied as a fraction of the unit, so that no size overflows.
    let rounded = whole * factor + ((bytes % scale) * factor + scale / 2) / scale
    if rounded >= base * factor && unit < units.count - 1 { return "1" + units[unit + 1] }  // 999.7kB is 1MB
    var text = "\(rounded / factor)"
    var fraction = rounded % factor
    var width = fraction == 0 ? 0 : decimals
    while width > 0 && fraction % 10 == 0 {  // "1.50" is "1.5"
        fraction /= 10
        width -= 1
    }
    if width > 0 {
        let digits = "\(fraction)"
        text += "." + String(repeating: "0", count: width - digits.count) + digits
    }
    return text + units[unit]
}
