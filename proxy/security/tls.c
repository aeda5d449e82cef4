/*
 * tls.c - OpenSSL contexts for listen.tls and upstream.tls, the words for
 * TLS failures, and which connections kernel TLS took over. See tls.h.
 *
 * Files are opened first with fopen() so that a missing or unreadable file
 * is reported with its errno; what OpenSSL then says about the contents is
 * reduced to its reason string (e.g. "no start line"), which never quotes
 * the file. Private keys are read with a passphrase callback that refuses,
 * so an encrypted key fails instead of prompting on the terminal.
 */
#include "tls.h"
#include "log.h"
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define SESSION_ID_CONTEXT "eosproxy"

/* The reason of the newest OpenSSL error (a static string), and clears the queue. */
static const char *ossl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return r ? r : "unrecognised contents";
}

/* 0 if path can be opened for reading, else -1 with "path: strerror" in err. */
static int check_readable(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_err(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    fclose(f);
    return 0;
}

/* Passphrase callback: remembers that one was asked for and supplies none. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    *(int *)u = 1;
    return -1;
}

/* Loads the PEM chain cert_file into ctx (leaf first, then intermediates). */
static int load_chain(SSL_CTX *ctx, const char *cert_file, char *err, size_t errlen)
{
    if (check_readable(cert_file, err, errlen))
        return -1;
    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        set_err(err, errlen, "%s: no usable PEM certificate (%s)", cert_file, ossl_reason());
        return -1;
    }
    return 0;
}

/* Loads the PEM private key key_file into ctx and checks it matches the certificate. */
static int load_key(SSL_CTX *ctx, const char *key_file, const char *cert_file, char *err,
                    size_t errlen)
{
    if (check_readable(key_file, err, errlen))
        return -1;
    ERR_clear_error();
    BIO *bio = BIO_new_file(key_file, "rb");
    if (!bio) {
        set_err(err, errlen, "%s: cannot open (%s)", key_file, ossl_reason());
        return -1;
    }
    int asked = 0;
    EVP_PKEY *pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, &asked);
    BIO_free(bio);
    if (!pkey) {
        if (asked) {
            ERR_clear_error();
            set_err(err, errlen, "%s: encrypted private keys are not supported", key_file);
        } else {
            set_err(err, errlen, "%s: no usable PEM private key (%s)", key_file, ossl_reason());
        }
        return -1;
    }
    X509 *cert = SSL_CTX_get0_certificate(ctx);
    int ok = cert && X509_check_private_key(cert, pkey) == 1;
    if (ok)
        ok = SSL_CTX_use_PrivateKey(ctx, pkey) == 1;
    EVP_PKEY_free(pkey);
    ERR_clear_error();
    if (!ok) {
        set_err(err, errlen, "%s: does not match the certificate in %s", key_file, cert_file);
        return -1;
    }
    return 0;
}

/* Trusts the PEM bundle ca_file for verifying peers. */
static int load_ca(SSL_CTX *ctx, const char *ca_file, char *err, size_t errlen)
{
    if (check_readable(ca_file, err, errlen))
        return -1;
    ERR_clear_error();
    if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
        set_err(err, errlen, "%s: no usable PEM CA certificate (%s)", ca_file, ossl_reason());
        return -1;
    }
    return 0;
}

/* A context for method with the settings both sides share. */
static SSL_CTX *ctx_common(const SSL_METHOD *method, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(method);
    if (!ctx) {
        set_err(err, errlen, "cannot create a TLS context (%s)", ossl_reason());
        return NULL;
    }
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
        set_err(err, errlen, "cannot require TLS 1.2 (%s)", ossl_reason());
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    return ctx;
}

SSL_CTX *tls_server_ctx_new(const char *cert_file, const char *key_file, const char *client_ca_file,
                            char *err, size_t errlen)
{
    if (!cert_file || !key_file) {
        set_err(err, errlen, "a certificate and a private key are both required");
        return NULL;
    }
    SSL_CTX *ctx = ctx_common(TLS_server_method(), err, errlen);
    if (!ctx)
        return NULL;
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)SESSION_ID_CONTEXT,
                                   sizeof(SESSION_ID_CONTEXT) - 1);
    if (load_chain(ctx, cert_file, err, errlen) || load_key(ctx, key_file, cert_file, err, errlen))
        goto fail;
    if (client_ca_file) {
        if (load_ca(ctx, client_ca_file, err, errlen))
            goto fail;
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(client_ca_file);
        if (!names) {
            set_err(err, errlen, "%s: no usable PEM CA certificate (%s)", client_ca_file,
                    ossl_reason());
            goto fail;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

SSL_CTX *tls_client_ctx_new(const char *ca_file, int verify, const char *cert_file,
                            const char *key_file, char *err, size_t errlen)
{
    if (!cert_file != !key_file) {
        set_err(err, errlen, "%s: a client certificate needs both a certificate and a key",
                cert_file ? cert_file : key_file);
        return NULL;
    }
    SSL_CTX *ctx = ctx_common(TLS_client_method(), err, errlen);
    if (!ctx)
        return NULL;
    if (ca_file) {
        if (load_ca(ctx, ca_file, err, errlen))
            goto fail;
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        set_err(err, errlen, "cannot load the system's CA store (%s)", ossl_reason());
        goto fail;
    }
    if (cert_file && (load_chain(ctx, cert_file, err, errlen) ||
                      load_key(ctx, key_file, cert_file, err, errlen)))
        goto fail;
    SSL_CTX_set_verify(ctx, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* Copies host into out without the brackets of "[v6]"; 1 if it is an IP literal. */
static int host_is_ip(const char *host, char *out, size_t outlen)
{
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        host++;
        n -= 2;
    }
    if (n >= outlen)
        return 0;
    memcpy(out, host, n);
    out[n] = '\0';
    unsigned char addr[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, out, addr) == 1 || inet_pton(AF_INET6, out, addr) == 1;
}

SSL *tls_client_ssl_new(SSL_CTX *ctx, const char *host, int verify)
{
    if (!ctx || !host || !*host)
        return NULL;
    SSL *ssl = SSL_new(ctx);
    if (!ssl)
        return NULL;
    char ip[INET6_ADDRSTRLEN + 8];
    int is_ip = host_is_ip(host, ip, sizeof(ip));
    int ok = 1;
    if (!is_ip)
        ok = SSL_set_tlsext_host_name(ssl, host) == 1;
    if (ok && verify) {
        if (is_ip) {
            ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), ip) == 1;
        } else {
            SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            ok = SSL_set1_host(ssl, host) == 1;
        }
    }
    if (!ok) {
        ERR_clear_error();
        SSL_free(ssl);
        return NULL;
    }
    return ssl;
}

/* Appends s to buf[0..len) after "; " when buf is not empty. */
static void append(char *buf, size_t len, const char *s)
{
    size_t used = strlen(buf);
    if (used + 1 >= len)
        return;
    snprintf(buf + used, len - used, "%s%s", used ? "; " : "", s);
}

const char *tls_describe_error(struct bufferevent *bev, char *buf, size_t len)
{
    if (!buf || len == 0)
        return "";
    buf[0] = '\0';
    int verify_failed = 0, n = 0;
    unsigned long e, seen[4] = {0};
    /* libevent keeps up to three errors and hands back the newest first. */
    while (bev && (e = bufferevent_get_openssl_error(bev)) != 0) {
        if (ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
            verify_failed = 1;
            continue;
        }
        const char *r = ERR_reason_error_string(e);
        if (!r && ERR_GET_LIB(e) == 0)
            continue; /* libevent 2.1 also records SSL_get_error()'s code (SSL_ERROR_SSL) */
        int dup = 0;
        for (int i = 0; i < n; i++)
            dup |= seen[i] == e;
        if (dup || n == 4)
            continue;
        seen[n++] = e;
        append(buf, len, r ? r : "unrecognised TLS error");
    }
    SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
    if (verify_failed) {
        long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_ERR_UNSPECIFIED;
        char v[256];
        snprintf(v, sizeof(v), "certificate verify failed: %s", X509_verify_cert_error_string(vr));
        append(buf, len, v);
    }
    if (buf[0])
        return buf;
    int se = EVUTIL_SOCKET_ERROR();
    if (se)
        snprintf(buf, len, "%s", evutil_socket_error_to_string(se));
    else
        snprintf(buf, len, "connection closed");
    return buf;
}

const char *tls_peer_name(struct bufferevent *bev, char *buf, size_t len)
{
    if (!buf || len == 0)
        return "-";
    snprintf(buf, len, "-");
    SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
    X509 *cert = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
    X509_NAME *subj = cert ? X509_get_subject_name(cert) : NULL;
    int idx = subj ? X509_NAME_get_index_by_NID(subj, NID_commonName, -1) : -1;
    if (idx < 0)
        return buf;
    ASN1_STRING *data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, idx));
    unsigned char *utf8 = NULL;
    int n = data ? ASN1_STRING_to_UTF8(&utf8, data) : -1;
    if (n <= 0) {
        OPENSSL_free(utf8);
        ERR_clear_error();
        return buf;
    }
    size_t o = 0;
    for (int i = 0; i < n && o + 1 < len; i++)
        buf[o++] = utf8[i] >= 0x20 && utf8[i] < 0x7f ? (char)utf8[i] : '?';
    buf[o] = '\0';
    OPENSSL_free(utf8);
    return buf;
}

/* ---------------------------------------------------------------- kernel TLS */

void tls_ctx_set_ktls(SSL_CTX *ctx, int on)
{
#ifdef SSL_OP_ENABLE_KTLS
    if (on)
        SSL_CTX_set_options(ctx, SSL_OP_ENABLE_KTLS);
    else
        SSL_CTX_clear_options(ctx, SSL_OP_ENABLE_KTLS);
#else
    (void)ctx;
    (void)on;
#endif
}

int tls_ktls(struct bufferevent *bev)
{
    SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
    if (!ssl)
        return 0;
    int k = 0;
#ifndef OPENSSL_NO_KTLS
    BIO *w = SSL_get_wbio(ssl), *r = SSL_get_rbio(ssl);
    if (w && BIO_get_ktls_send(w))
        k |= TLS_KTLS_SEND;
    if (r && BIO_get_ktls_recv(r))
        k |= TLS_KTLS_RECV;
#endif
    return k;
}

void tls_note_ktls(struct bufferevent *bev, int side)
{
    static unsigned logged[2]; /* per side: a bit per outcome already logged */
    static const char *const what[] = {
        "not in use: OpenSSL encrypts (the kernel has no `tls` module, the cipher is not "
        "offloaded, or ktls is off)",
        "in use for sending only", "in use for receiving only", "in use both ways"};
    if (side != TLS_SIDE_CLIENT && side != TLS_SIDE_UPSTREAM)
        return;
    int k = tls_ktls(bev);
    g_metrics.tls_conns[side][k]++;
    if (!(logged[side] & (1u << k))) {
        logged[side] |= 1u << k;
        SSL *ssl = bufferevent_openssl_get_ssl(bev);
        log_info("%s TLS connections: kernel TLS %s (first seen with %s %s)",
                 side == TLS_SIDE_CLIENT ? "client" : "upstream", what[k],
                 ssl ? SSL_get_version(ssl) : "?", ssl ? SSL_get_cipher_name(ssl) : "?");
    }
}
