// OpenSSL (Debian's libssl-dev): TLS for HTTPS in the HTTP layer's connections, and libcrypto.
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
// libcrypto for API keys and signed requests: SHA-256, HMAC, random bytes, constant-time compare.
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

// Macros Swift does not import.
static inline long mserve_ssl_ctx_set_mode(SSL_CTX *ctx, long mode) { return SSL_CTX_set_mode(ctx, mode); }
static inline long mserve_ssl_ctx_set_min_tls12(SSL_CTX *ctx) { return SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION); }
// SHA-256 with a context on the stack: EVP_Digest allocates a context and dispatches through a
// provider on every call, which is most of the cost of hashing an API key.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static inline void mserve_sha256(const void *data, size_t length, unsigned char *out) {
    SHA256_CTX ctx;
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, data, length);
    SHA256_Final(out, &ctx);
}
#pragma GCC diagnostic pop
static inline const long mserve_ssl_mode_partial_write(void) { return SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER; }
