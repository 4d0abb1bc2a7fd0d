import UrunKernel

/// Readable generated names, "adjective_scientist" as docker makes them.
enum ContainerNames {
    static let adjectives = [
        "admiring", "agitated", "amazing", "awesome", "blissful", "bold", "brave", "busy", "clever", "cool",
        "dazzling", "determined", "eager", "ecstatic", "elegant", "epic", "festive", "focused", "friendly", "gallant",
        "gifted", "happy", "hopeful", "jolly", "keen", "kind", "laughing", "lucid", "magical", "modest",
        "nice", "optimistic", "peaceful", "practical", "quirky", "relaxed", "serene", "sharp", "stoic", "sweet",
        "tender", "trusting", "upbeat", "vibrant", "vigilant", "wizardly", "wonderful", "youthful", "zealous", "zen",
    ]
    static let scientists = [
        "agnesi", "archimedes", "babbage", "bardeen", "bell", "bohr", "borg", "cerf", "curie", "darwin",
        "dijkstra", "einstein", "euclid", "euler", "faraday", "fermat", "fermi", "feynman", "franklin", "galileo",
        "gauss", "goldberg", "hamilton", "hawking", "hodgkin", "hopper", "hypatia", "johnson", "kepler", "knuth",
        "lamarr", "lovelace", "maxwell", "mclaren", "meitner", "morse", "newton", "noether", "pascal", "planck",
        "ritchie", "sammet", "shannon", "thompson", "torvalds", "turing", "volhard", "wilson", "wozniak", "yonath",
    ]

    static func random(suffix: Bool) -> String {
        let value = Int(UInt32(randomHex(bytes: 4), radix: 16)!)
        var name = adjectives[value % adjectives.count] + "_" + scientists[(value / 64) % scientists.count]
        if suffix { name += String((value / 4096) % 10) }
        return name
    }
}
