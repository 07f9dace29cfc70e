import COpenSSL

#if canImport(Glibc)
    import Glibc
#endif

/// A server's TLS configuration (OpenSSL's SSL_CTX): its certificate chain and key, and the CAs
/// client certificates are checked against.  Made in each worker, so HUP loads new files.
public final class TLSContext: @unchecked Sendable {
    /// gunicorn's --cert-reqs: whether a client must present a certificate signed by --ca-certs.
    public enum ClientCertificates: String, Sendable, CaseIterable { case none, optional, required }

    let ctx: OpaquePointer

    public init(certificate: String, key: String, caCertificates: String?, clientCertificates: ClientCertificates) throws(SystemError) {
        guard let ctx = SSL_CTX_new(TLS_server_method()) else { throw TLSContext.error("cannot create a TLS context") }
        self.ctx = ctx
        _ = mserve_ssl_ctx_set_min_tls12(ctx)
        _ = mserve_ssl_ctx_set_mode(ctx, mserve_ssl_mode_partial_write())
        guard SSL_CTX_use_certificate_chain_file(ctx, certificate) == 1 else { throw TLSContext.error("cannot load certfile \(certificate)") }
        guard SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) == 1 else { throw TLSContext.error("cannot load keyfile \(key)") }
        guard SSL_CTX_check_private_key(ctx) == 1 else { throw TLSContext.error("keyfile \(key) does not match certfile \(certificate)") }
        if let caCertificates {
            guard SSL_CTX_load_verify_locations(ctx, caCertificates, nil) == 1 else {
                throw TLSContext.error("cannot load ca_certs \(caCertificates)")
            }
            SSL_CTX_set_client_CA_list(ctx, SSL_load_client_CA_file(caCertificates))
        }
        switch clientCertificates {
        case .none: SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nil)
        case .optional: SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
        case .required: SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nil)
        }
    }

    deinit { SSL_CTX_free(ctx) }

    /// A session for an accepted connection, or nil if OpenSSL cannot make one.
    public func session(fd: Int32) -> TLSSession? {
        guard let ssl = SSL_new(ctx) else { return nil }
        SSL_set_fd(ssl, fd)
        SSL_set_accept_state(ssl)
        return TLSSession(ssl)
    }

    /// The first error on OpenSSL's queue, with `what` it was doing (the queue is emptied).
    static func error(_ what: String) -> SystemError {
        let code = ERR_get_error()
        ERR_clear_error()
        guard code != 0 else { return SystemError(what) }
        var buf = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buf, buf.count)
        return SystemError("\(what): \(String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))")
    }
}

/// One connection's TLS (OpenSSL's SSL) over a non-blocking socket.
public final class TLSSession {
    private let ssl: OpaquePointer
    public private(set) var handshakeDone = false
    /// The last operation needs the socket writable before it can go on.
    public private(set) var wantsWrite = false

    init(_ ssl: OpaquePointer) { self.ssl = ssl }
    deinit { SSL_free(ssl) }

    public enum Handshake: Equatable { case done, wouldBlock, failed(String) }

    public func handshake() -> Handshake {
        let rc = SSL_do_handshake(ssl)
        if rc == 1 {
            handshakeDone = true
            wantsWrite = false
            return .done
        }
        switch SSL_get_error(ssl, rc) {
        case SSL_ERROR_WANT_READ: wantsWrite = false; return .wouldBlock
        case SSL_ERROR_WANT_WRITE: wantsWrite = true; return .wouldBlock
        default: return .failed(TLSContext.error("TLS handshake failed").description)
        }
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) -> Socket.ReadOutcome {
        let n = SSL_read(ssl, buffer.baseAddress, Int32(buffer.count))
        if n > 0 { wantsWrite = false; return .data(Int(n)) }
        switch SSL_get_error(ssl, n) {
        case SSL_ERROR_WANT_READ: wantsWrite = false; return .wouldBlock
        case SSL_ERROR_WANT_WRITE: wantsWrite = true; return .wouldBlock
        case SSL_ERROR_ZERO_RETURN: return .end
        default:
            ERR_clear_error()
            return .failed
        }
    }

    public func send(_ bytes: UnsafeRawBufferPointer) -> Socket.SendOutcome {
        guard !bytes.isEmpty else { return .sent(0) }
        let n = SSL_write(ssl, bytes.baseAddress, Int32(min(bytes.count, Int(Int32.max))))
        if n > 0 { wantsWrite = false; return .sent(Int(n)) }
        switch SSL_get_error(ssl, n) {
        case SSL_ERROR_WANT_WRITE: wantsWrite = true; return .wouldBlock
        case SSL_ERROR_WANT_READ: wantsWrite = false; return .wouldBlock
        default:
            ERR_clear_error()
            return .failed
        }
    }

    /// Decrypted bytes OpenSSL holds that a read of the socket would not announce.
    public var pending: Int { Int(SSL_pending(ssl)) }

    /// Sends close_notify (best effort: the socket is non-blocking).
    public func shutdown() {
        _ = SSL_shutdown(ssl)
        ERR_clear_error()
    }
}
