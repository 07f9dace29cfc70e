// OpenSSL (Debian's libssl-dev): TLS for HTTPS in the HTTP layer's connections, and libcrypto.
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
// libcrypto for API keys and signed requests: SHA-256, HMAC, random bytes, constant-time compare.
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/crypto.h>

// Macros Swift does not import.
static inline long mserve_ssl_ctx_set_mode(SSL_CTX *ctx, long mode) { return SSL_CTX_set_mode(ctx, mode); }
static inline long mserve_ssl_ctx_set_min_tls12(SSL_CTX *ctx) { return SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION); }
static inline const long mserve_ssl_mode_partial_write(void) { return SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER; }
