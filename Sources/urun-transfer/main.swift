import Glibc
import UrunHTTP
import UrunKernel
import UrunRegistry

// urun-transfer: moves images between registries and urun's store, for urun.
// It reads one request (JSON) on stdin; progress goes to stderr, and an error
// as one line to descriptor 3 (urun's pipe; stderr when run by hand), exit 125.
do throws(UrunError) {
    let input = try readAll(0, path: "stdin", limit: 1 << 20)
    let json: JSON
    do { json = try JSON(parsing: input) } catch { throw .invalid("urun-transfer: the request is not JSON (\(error)); it is run by urun") }
    let request = try TransferRequest(json: json)
    try Transfer.perform(request) { CurlTransport(tls: $0, parallel: Pull.parallelLayers) }
    exit(0)
} catch {
    var st = stat()
    if fstat(3, &st) == 0 && st.st_mode & S_IFMT == S_IFIFO {
        writeQuietly(3, printableMessage(error.description) + "\n")
    } else {
        writeQuietly(2, "urun-transfer: \(printableMessage(error.description))\n")
    }
    exit(error.exitCode)
}
