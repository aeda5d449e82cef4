/*
 * tls.h - OpenSSL contexts for both sides of eosproxy, and what to say
 * when a TLS connection fails.
 *
 * The server context serves listen.tls (clients connect to eosproxy); the
 * client context serves upstream.tls (eosproxy connects to brokers). Both
 * refuse anything below TLS 1.2. Loading errors come back as one line
 * "file: what is wrong", naming the file and never quoting its contents,
 * so a private key never reaches a log. Encrypted private keys are
 * refused rather than prompted for.
 */
#ifndef EOSPROXY_TLS_H
#define EOSPROXY_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

struct bufferevent;

/*
 * Server context for listen.tls: TLS >= 1.2, the PEM chain cert_file and
 * the PEM private key key_file (checked to match the certificate). When
 * client_ca_file is set, clients must present a certificate it signed
 * (SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT: mutual TLS), and the
 * CA's name is sent in the CertificateRequest. Returns a context owned by
 * the caller (SSL_CTX_free), or NULL with "file: what" in err.
 */
SSL_CTX *tls_server_ctx_new(const char *cert_file, const char *key_file, const char *client_ca_file,
                            char *err, size_t errlen);

/*
 * Client context for upstream.tls: TLS >= 1.2; trusts the PEM bundle
 * ca_file, or the system's default store when ca_file is NULL; verify 1
 * checks the broker's chain (host names are checked per connection, see
 * tls_client_ssl_new), 0 checks nothing. cert_file and key_file (both or
 * neither) are a client certificate for brokers that require one. Returns
 * a context owned by the caller, or NULL with "file: what" in err.
 */
SSL_CTX *tls_client_ctx_new(const char *ca_file, int verify, const char *cert_file,
                            const char *key_file, char *err, size_t errlen);

/*
 * A client SSL on ctx for a connection to host (a name or an IP literal,
 * IPv6 with or without brackets): SNI when host is a name; with verify,
 * the certificate must match host (SSL_set1_host for names,
 * X509_VERIFY_PARAM_set1_ip_asc for addresses). Returns an SSL owned by
 * the caller (or by the bufferevent it is handed to), NULL on error.
 */
SSL *tls_client_ssl_new(SSL_CTX *ctx, const char *host, int verify);

/*
 * One line on why a TLS bufferevent failed, for logs: the OpenSSL reason
 * (bufferevent_get_openssl_error, whose queue this drains), the
 * certificate verification result when that is what failed, else the
 * socket error. Never a secret. Writes into buf[0..len) and returns buf.
 */
const char *tls_describe_error(struct bufferevent *bev, char *buf, size_t len);

/*
 * The subject CN of the peer's certificate on a TLS bufferevent, for logs:
 * bytes outside printable ASCII are replaced by '?'. "-" when bev is not
 * TLS or the peer sent no certificate. Writes into buf[0..len), returns buf.
 */
const char *tls_peer_name(struct bufferevent *bev, char *buf, size_t len);

/*
 * Kernel TLS. tls_ctx_set_ktls(ctx, on) asks OpenSSL to hand record
 * encryption and decryption to the kernel once a handshake is done
 * (SSL_OP_ENABLE_KTLS), for connections of ctx; OpenSSL does it itself
 * where the kernel cannot (no `tls` module, a cipher it does not
 * offload, an OpenSSL built without kTLS).
 * tls_ktls(bev): after the handshake, what the kernel took over on that
 * connection: TLS_KTLS_SEND | TLS_KTLS_RECV, 0 for neither or not TLS.
 * tls_note_ktls(bev, side): counts a completed handshake of side
 * (TLS_SIDE_CLIENT, TLS_SIDE_UPSTREAM) in eosproxy_tls_connections_total
 * and logs once per side and outcome which one is in use.
 */
#define TLS_KTLS_SEND 1
#define TLS_KTLS_RECV 2
#define TLS_SIDE_CLIENT 0
#define TLS_SIDE_UPSTREAM 1
void tls_ctx_set_ktls(SSL_CTX *ctx, int on);
int tls_ktls(struct bufferevent *bev);
void tls_note_ktls(struct bufferevent *bev, int side);

#endif
