import CUrunCurl
import Glibc
import UrunKernel

/// HTTP and TLS through Debian's libcurl (OpenSSL, the system's CA store, the
/// proxy environment variables), several transfers at once on one thread
/// through curl's multi interface. Used only by urun-transfer, a process that
/// never clones a container: libcurl may start a resolver thread.
public final class CurlTransport: HTTPTransport {
    private let tls: TLSSettings
    private let parallel: Int
    /// The system's CA bundle plus the extra authorities, handed to each
    /// handle: a blob replaces curl's default bundle rather than adding to it.
    private let authorities: [UInt8]?
    private static let initialized: Bool = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK }()

    public init(tls: TLSSettings, parallel: Int = 3) {
        _ = Self.initialized
        self.tls = tls
        self.parallel = max(1, parallel)
        if tls.extraAuthorities.isEmpty {
            authorities = nil
        } else {
            let system = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"]
                .lazy.compactMap { try? readFile($0) }.first ?? []
            authorities = system + [0x0A] + tls.extraAuthorities
        }
    }

    public func perform(_ requests: [HTTPRequest]) -> [Result<HTTPResponse, HTTPFailure>] {
        var results = [Result<HTTPResponse, HTTPFailure>?](repeating: nil, count: requests.count)
        guard let multi = curl_multi_init() else {
            return requests.map { _ in .failure(HTTPFailure(.other, "libcurl could not start")) }
        }
        defer { curl_multi_cleanup(multi) }
        var next = 0
        var running: [UnsafeMutableRawPointer: Transfer] = [:]
        func startNext() {
            let transfer = Transfer(index: next, request: requests[next])
            next += 1
            if let failure = transfer.configure(tls: tls, authorities: authorities) {
                results[transfer.index] = .failure(failure)
                return
            }
            curl_multi_add_handle(multi, transfer.easy)
            running[transfer.easy] = transfer
        }
        while next < requests.count || !running.isEmpty {
            while running.count < parallel && next < requests.count { startNext() }
            if running.isEmpty { continue }
            var active: CInt = 0
            curl_multi_perform(multi, &active)
            var queued: CInt = 0
            while let message = curl_multi_info_read(multi, &queued) {
                guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle,
                    let transfer = running.removeValue(forKey: easy)
                else { continue }
                let code = message.pointee.data.result
                curl_multi_remove_handle(multi, easy)
                results[transfer.index] = transfer.finish(code)
            }
            if !running.isEmpty && active > 0 { curl_multi_poll(multi, nil, 0, 200, nil) }
        }
        return results.map { $0 ?? .failure(HTTPFailure(.other, "not performed")) }
    }
}

/// One transfer's handle, the request's callbacks and what came back.
private final class Transfer {
    let index: Int
    let request: HTTPRequest
    let easy: UnsafeMutableRawPointer
    private var headerList: UnsafeMutablePointer<curl_slist>?
    private var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
    private var headers = HTTPHeaders()
    private var status = 0
    private var headersDone = false
    private var body: [UInt8] = []
    private var failure: HTTPFailure?
    private var uploaded: Int64 = 0
    /// C strings curl keeps pointers to until the handle is cleaned up.
    private var strings: [UnsafeMutablePointer<CChar>] = []

    init(index: Int, request: HTTPRequest) {
        self.index = index
        self.request = request
        easy = curl_easy_init()!
    }

    deinit {
        curl_slist_free_all(headerList)
        curl_easy_cleanup(easy)
        strings.forEach { free($0) }
    }

    private func keep(_ string: String) -> UnsafeMutablePointer<CChar> {
        let copy = strdup(string)!
        strings.append(copy)
        return copy
    }

    func configure(tls: TLSSettings, authorities: [UInt8]?) -> HTTPFailure? {
        let context = Unmanaged.passUnretained(self).toOpaque()
        var code = CURLE_OK
        func set(_ option: CURLoption, _ value: Int) { if code == CURLE_OK { code = urun_curl_set_long(easy, option, value) } }
        func set(_ option: CURLoption, _ value: String) {
            if code == CURLE_OK { code = urun_curl_set_pointer(easy, option, keep(value)) }
        }
        set(CURLOPT_URL, request.url)
        set(CURLOPT_PROTOCOLS_STR, "http,https")
        set(CURLOPT_NOSIGNAL, 1)
        set(CURLOPT_USERAGENT, "urun")
        set(CURLOPT_CONNECTTIMEOUT, 30)
        // A stalled transfer (under a byte a second for a minute) fails and is retried.
        set(CURLOPT_LOW_SPEED_LIMIT, 1)
        set(CURLOPT_LOW_SPEED_TIME, 60)
        if code == CURLE_OK { code = urun_curl_set_pointer(easy, CURLOPT_ERRORBUFFER, &errorBuffer) }
        if !tls.verify {
            set(CURLOPT_SSL_VERIFYPEER, 0)
            set(CURLOPT_SSL_VERIFYHOST, 0)
        }
        if let authorities, code == CURLE_OK {
            code = authorities.withUnsafeBytes { urun_curl_set_blob(easy, CURLOPT_CAINFO_BLOB, $0.baseAddress, $0.count) }
        }
        if let certificate = tls.clientCertificate { set(CURLOPT_SSLCERT, certificate) }
        if let key = tls.clientKey { set(CURLOPT_SSLKEY, key) }
        switch request.method {
        case "GET": break
        case "HEAD": set(CURLOPT_NOBODY, 1)
        default: set(CURLOPT_CUSTOMREQUEST, request.method)
        }
        switch request.body {
        case .none:
            if request.method == "POST" || request.method == "PUT" || request.method == "PATCH" {
                set(CURLOPT_POSTFIELDSIZE, 0)
                set(CURLOPT_POSTFIELDS, "")
            }
        case .bytes(let bytes):
            if code == CURLE_OK { code = urun_curl_set_offset(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(bytes.count)) }
            if code == CURLE_OK {
                // Copied by curl (its size set just before): the request's array need not outlive the call.
                code = bytes.withUnsafeBytes { urun_curl_set_pointer(easy, CURLOPT_COPYPOSTFIELDS, $0.baseAddress) }
            }
        case .file(_, let length):
            set(CURLOPT_UPLOAD, 1)
            if code == CURLE_OK { code = urun_curl_set_offset(easy, CURLOPT_INFILESIZE_LARGE, curl_off_t(length)) }
            if code == CURLE_OK { code = urun_curl_set_pointer(easy, CURLOPT_READDATA, context) }
            if code == CURLE_OK { code = urun_curl_set_callback(easy, CURLOPT_READFUNCTION, readCallback) }
        }
        // Bytes exactly as the registry sent them: a digest is of those.
        headerList = curl_slist_append(headerList, "Accept-Encoding:")
        if case .file = request.body { headerList = curl_slist_append(headerList, "Expect:") }
        for (name, value) in request.headers { headerList = curl_slist_append(headerList, "\(name): \(value)") }
        if code == CURLE_OK { code = urun_curl_set_pointer(easy, CURLOPT_HTTPHEADER, headerList) }
        if code == CURLE_OK { code = urun_curl_set_pointer(easy, CURLOPT_WRITEDATA, context) }
        if code == CURLE_OK { code = urun_curl_set_callback(easy, CURLOPT_WRITEFUNCTION, writeCallback) }
        if code == CURLE_OK { code = urun_curl_set_pointer(easy, CURLOPT_HEADERDATA, context) }
        if code == CURLE_OK { code = urun_curl_set_callback(easy, CURLOPT_HEADERFUNCTION, headerCallback) }
        return code == CURLE_OK ? nil : HTTPFailure(.other, "libcurl: " + String(cString: curl_easy_strerror(code)))
    }

    func header(_ line: UnsafeRawBufferPointer) {
        var text = String(decoding: line, as: UTF8.self)
        while text.hasSuffix("\n") || text.hasSuffix("\r") { text.removeLast() }
        if text.hasPrefix("HTTP/") {
            // A new response (after a 100 Continue): its headers start afresh.
            headers = HTTPHeaders()
            headersDone = false
            status = text.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        } else if text.isEmpty {
            guard status >= 200, !headersDone else { return }
            headersDone = true
            if let onResponse = request.onResponse, !onResponse(status, headers) {
                failure = HTTPFailure(.aborted, "stopped by the client")
            }
        } else if let colon = text.firstIndex(of: ":") {
            headers.add(String(text[..<colon]), String(text[text.index(after: colon)...]).trimmingWhitespace())
        }
    }

    func data(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if failure != nil { return false }
        if (200..<300).contains(status), let sink = request.sink {
            if !sink(bytes) { failure = HTTPFailure(.aborted, "stopped by the client") }
            return failure == nil
        }
        guard body.count + bytes.count <= request.limit else {
            failure = HTTPFailure(.tooLarge, "a response longer than \(request.limit) bytes")
            return false
        }
        body.append(contentsOf: bytes)
        return true
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard case .file(let fd, let length) = request.body else { return 0 }
        let wanted = Int(min(Int64(buffer.count), length - uploaded))
        guard wanted > 0 else { return 0 }
        let n = Glibc.read(fd, buffer.baseAddress, wanted)
        guard n > 0 else {
            failure = HTTPFailure(.other, "reading the upload: \(n < 0 ? Errno.current.message : "the file is shorter than its size")")
            return Int(CURL_READFUNC_ABORT)
        }
        uploaded += Int64(n)
        return n
    }

    func finish(_ code: CURLcode) -> Result<HTTPResponse, HTTPFailure> {
        if let failure { return .failure(failure) }
        guard code == CURLE_OK else {
            let detail = errorBuffer[0] != 0
                ? String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                : String(cString: curl_easy_strerror(code))
            let kind: HTTPFailure.Kind
            switch code {
            case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY, CURLE_COULDNT_CONNECT, CURLE_SEND_ERROR,
                CURLE_RECV_ERROR, CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE, CURLE_HTTP2, CURLE_HTTP2_STREAM:
                kind = .connection
            case CURLE_OPERATION_TIMEDOUT: kind = .timeout
            case CURLE_SSL_CONNECT_ERROR: kind = .tls
            case CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CACERT_BADFILE: kind = .untrusted
            default: kind = .other
            }
            return .failure(HTTPFailure(kind, detail))
        }
        let final = Int(urun_curl_info_long(easy, CURLINFO_RESPONSE_CODE))
        return .success(HTTPResponse(status: final, headers: headers, body: body))
    }
}

private func transfer(_ context: UnsafeMutableRawPointer?) -> Transfer {
    Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
}

private let writeCallback: urun_curl_data_callback = { data, size, count, context in
    let bytes = UnsafeRawBufferPointer(start: data, count: size * count)
    return transfer(context).data(bytes) ? size * count : 0
}

private let headerCallback: urun_curl_data_callback = { data, size, count, context in
    transfer(context).header(UnsafeRawBufferPointer(start: data, count: size * count))
    return size * count
}

private let readCallback: urun_curl_data_callback = { data, size, count, context in
    transfer(context).read(into: UnsafeMutableRawBufferPointer(start: data, count: size * count))
}
