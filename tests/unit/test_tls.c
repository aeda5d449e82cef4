/*
 * test_tls.c - unit tests for proxy/security/tls.c and proxy/conn/upstream.c.
 *
 * Certificates come from tests/tools/mkcerts.sh, run into a temporary
 * directory. Context errors: missing, garbage and encrypted files, a
 * directory, keys that do not match, half a client certificate; each
 * message names the file and quotes none of it. Handshakes run for real
 * between two bufferevent_openssl ends of a socketpair on one event loop:
 * host name and IP verification, SNI, verify off, an unknown CA, TLS 1.2
 * accepted and TLS 1.1 refused both ways, mutual TLS (no, rogue and good
 * client certificates, tls_peer_name). Then upstream_connect against a
 * small broker written here on a loopback port (SaslHandshake and
 * SaslAuthenticate v1 encoded by hand; SCRAM through scram.c's server
 * side), plaintext and over TLS: PLAIN and SCRAM-SHA-256/512 logins handed
 * over to the caller (callbacks, leftover bytes, MiB-sized writes), a
 * refused password, a mechanism the broker does not enable, a forged SCRAM
 * server signature, too many SCRAM iterations, certificate and protocol
 * mismatches, silent brokers (login and TLS timeouts), a bad frame size, a
 * closed port, upstream_free mid-login and from the caller's callback; the
 * metrics each failure counts and that no log line carries the password.
 * Run from the repository root.
 */
#include "kbuf.h"
#include "log.h"
#include "metrics.h"
#include "proxy.h"
#include "scram.h"
#include "tls.h"
#include "unit.h"
#include "upstream.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/test_tls.XXXXXX";
static char err[1024];

/* dir/name in a rotating set of static buffers (enough for one call's arguments). */
static const char *P(const char *name)
{
    static char bufs[8][600];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof(bufs[0]), "%s/%s", dir, name);
    return b;
}

static void write_file(const char *name, const char *s)
{
    FILE *f = fopen(P(name), "wb");
    if (!f) {
        perror(P(name));
        exit(1);
    }
    fputs(s, f);
    fclose(f);
}

/* The base64 lines of a PEM file, concatenated, so tests can check an error quotes none of it. */
static void pem_body(const char *name, char *out, size_t outlen)
{
    FILE *f = fopen(P(name), "rb");
    char line[256];
    size_t o = 0;
    out[0] = '\0';
    while (f && fgets(line, sizeof(line), f)) {
        if (line[0] == '-')
            continue;
        size_t n = strcspn(line, "\r\n");
        if (o + n + 1 > outlen)
            break;
        memcpy(out + o, line, n);
        o += n;
        out[o] = '\0';
    }
    if (f)
        fclose(f);
}

/* 1 if msg contains any 12-character run of body. */
static int quotes(const char *msg, const char *body)
{
    size_t n = strlen(body);
    for (size_t i = 0; i + 12 <= n; i++) {
        char piece[13];
        memcpy(piece, body + i, 12);
        piece[12] = '\0';
        if (strstr(msg, piece))
            return 1;
    }
    return 0;
}

/* Expects a context error that starts with file and contains want. */
static void expect_err_at(int line, SSL_CTX *ctx, const char *file, const char *want)
{
    if (!ctx && strncmp(err, file, strlen(file)) == 0 && strstr(err, want)) {
        unit_passed++;
        return;
    }
    unit_failed++;
    fprintf(stderr, "FAIL %s:%d: want \"%s: ...%s...\", got %s \"%s\"\n", __FILE__, line, file,
            want, ctx ? "a context" : "error", err);
    SSL_CTX_free(ctx);
}
#define EXPECT_ERR(ctx, file, want) expect_err_at(__LINE__, ctx, file, want)

static SSL_CTX *server_ctx(const char *cert, const char *key, const char *ca)
{
    err[0] = '\0';
    return tls_server_ctx_new(cert ? P(cert) : NULL, key ? P(key) : NULL, ca ? P(ca) : NULL, err,
                              sizeof(err));
}

static SSL_CTX *client_ctx(const char *ca, int verify, const char *cert, const char *key)
{
    err[0] = '\0';
    return tls_client_ctx_new(ca ? P(ca) : NULL, verify, cert ? P(cert) : NULL, key ? P(key) : NULL,
                              err, sizeof(err));
}

static void test_ctx_errors(void)
{
    char body[4096];
    SSL_CTX *ctx = server_ctx("server.pem", "server.key", NULL);
    CHECK(ctx != NULL);
    SSL_CTX_free(ctx);
    ctx = server_ctx("server.pem", "server.key", "ca.pem");
    CHECK(ctx != NULL);
    CHECK(ctx && (SSL_CTX_get_verify_mode(ctx) & SSL_VERIFY_FAIL_IF_NO_PEER_CERT));
    CHECK(ctx && SSL_CTX_get_min_proto_version(ctx) == TLS1_2_VERSION);
    SSL_CTX_free(ctx);

    EXPECT_ERR(server_ctx("missing.pem", "server.key", NULL), P("missing.pem"),
               "No such file or directory");
    EXPECT_ERR(server_ctx("server.pem", "missing.key", NULL), P("missing.key"),
               "No such file or directory");
    EXPECT_ERR(server_ctx("server.pem", "server.key", "missing-ca.pem"), P("missing-ca.pem"),
               "No such file or directory");
    /* A key that belongs to another certificate. */
    pem_body("client.key", body, sizeof(body));
    EXPECT_ERR(server_ctx("server.pem", "client.key", NULL), P("client.key"),
               "does not match the certificate");
    CHECK(!quotes(err, body));
    /* The certificate given as the key and the key given as the certificate. */
    EXPECT_ERR(server_ctx("server.pem", "server.pem", NULL), P("server.pem"),
               "no usable PEM private key");
    pem_body("server.key", body, sizeof(body));
    EXPECT_ERR(server_ctx("server.key", "server.key", NULL), P("server.key"),
               "no usable PEM certificate");
    CHECK(!quotes(err, body));
    /* Garbage between PEM markers and files with no PEM at all. */
    write_file("garbage.key", "-----BEGIN PRIVATE KEY-----\n"
                              "U2VjcmV0S2V5TWF0ZXJpYWxUaGF0TXVzdE5vdExlYWtJbnRvTG9ncw==\n"
                              "-----END PRIVATE KEY-----\n");
    EXPECT_ERR(server_ctx("server.pem", "garbage.key", NULL), P("garbage.key"),
               "no usable PEM private key");
    CHECK(!quotes(err, "U2VjcmV0S2V5TWF0ZXJpYWxUaGF0TXVzdE5vdExlYWtJbnRvTG9ncw=="));
    write_file("garbage.pem", "this is not a certificate\n");
    EXPECT_ERR(server_ctx("garbage.pem", "server.key", NULL), P("garbage.pem"),
               "no usable PEM certificate");
    CHECK(strstr(err, "this is not") == NULL);
    EXPECT_ERR(server_ctx("server.pem", "server.key", "garbage.pem"), P("garbage.pem"),
               "no usable PEM CA certificate");
    write_file("empty.pem", "");
    EXPECT_ERR(server_ctx("empty.pem", "server.key", NULL), P("empty.pem"),
               "no usable PEM certificate");
    /* An encrypted key is refused, never prompted for. */
    char cmd[1400];
    snprintf(cmd, sizeof(cmd),
             "openssl pkey -in %s -aes256 -passout pass:sesame -out %s </dev/null 2>/dev/null",
             P("server.key"), P("encrypted.key"));
    CHECK_EQ(system(cmd), 0);
    EXPECT_ERR(server_ctx("server.pem", "encrypted.key", NULL), P("encrypted.key"),
               "encrypted private keys are not supported");
    /* A directory is not a certificate. */
    mkdir(P("adir"), 0700);
    EXPECT_ERR(server_ctx("adir", "server.key", NULL), P("adir"), "");
    err[0] = '\0';
    CHECK(tls_server_ctx_new(NULL, P("server.key"), NULL, err, sizeof(err)) == NULL);
    CHECK(err[0] != '\0');

    ctx = client_ctx("ca.pem", 1, NULL, NULL);
    CHECK(ctx != NULL);
    CHECK(ctx && SSL_CTX_get_verify_mode(ctx) == SSL_VERIFY_PEER);
    CHECK(ctx && SSL_CTX_get_min_proto_version(ctx) == TLS1_2_VERSION);
    SSL_CTX_free(ctx);
    ctx = client_ctx(NULL, 1, NULL, NULL); /* the system store */
    CHECK(ctx != NULL);
    SSL_CTX_free(ctx);
    ctx = client_ctx("ca.pem", 0, "client.pem", "client.key");
    CHECK(ctx != NULL);
    CHECK(ctx && SSL_CTX_get_verify_mode(ctx) == SSL_VERIFY_NONE);
    SSL_CTX_free(ctx);
    EXPECT_ERR(client_ctx("missing-ca.pem", 1, NULL, NULL), P("missing-ca.pem"),
               "No such file or directory");
    EXPECT_ERR(client_ctx("garbage.pem", 0, NULL, NULL), P("garbage.pem"),
               "no usable PEM CA certificate");
    EXPECT_ERR(client_ctx("ca.pem", 1, "client.pem", NULL), P("client.pem"),
               "needs both a certificate and a key");
    EXPECT_ERR(client_ctx("ca.pem", 1, NULL, "client.key"), P("client.key"),
               "needs both a certificate and a key");
    pem_body("server.key", body, sizeof(body));
    EXPECT_ERR(client_ctx("ca.pem", 1, "client.pem", "server.key"), P("server.key"),
               "does not match the certificate");
    CHECK(!quotes(err, body));
    CHECK(ERR_peek_error() == 0); /* nothing left behind for the next TLS connection */

    ctx = client_ctx("ca.pem", 1, NULL, NULL);
    CHECK(tls_client_ssl_new(ctx, NULL, 1) == NULL);
    CHECK(tls_client_ssl_new(ctx, "", 1) == NULL);
    CHECK(tls_client_ssl_new(NULL, "localhost", 1) == NULL);
    SSL_CTX_free(ctx);
}

/* ---- handshakes between two bufferevent_openssl ends of a socketpair ---- */

struct end {
    int ktls;    /* tls_ktls() when connected */
    size_t got;  /* bytes read once connected */
    short what;  /* the first event: BEV_EVENT_CONNECTED or an error */
    short later; /* an error after CONNECTED (a TLS 1.3 client hears of refusal late) */
    char why[300];
    char peer[100];
};

static void end_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct end *e = arg;
    if (e->what & BEV_EVENT_CONNECTED) {
        if (!e->later) {
            e->later = what;
            tls_describe_error(bev, e->why, sizeof(e->why));
        }
        return;
    }
    if (e->what)
        return;
    e->what = what;
    if (what & BEV_EVENT_CONNECTED) {
        tls_peer_name(bev, e->peer, sizeof(e->peer));
        e->ktls = tls_ktls(bev);
    } else
        tls_describe_error(bev, e->why, sizeof(e->why));
}

/* Drains what a connected end reads (it would be the peer's alert, if any). */
static void end_read_cb(struct bufferevent *bev, void *arg)
{
    struct end *e = arg;
    e->got += evbuffer_get_length(bufferevent_get_input(bev));
    evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
}

static int ok(const struct end *e);

struct hs {
    struct end s, c;
    char sni[100];    /* the name the server saw in SNI, "" if none */
    char version[16]; /* the protocol the client negotiated */
};

static int hs_settled(const struct hs *h)
{
    int s_done = h->s.what != 0;
    int c_done = h->c.what != 0 && (!(h->c.what & BEV_EVENT_CONNECTED) || h->c.later ||
                                    (h->s.what & BEV_EVENT_CONNECTED));
    return s_done && c_done;
}

/*
 * One handshake: sctx serves, cssl (consumed) connects. Returns once both ends settled
 * (or after 5 s). The ends' results land in h.
 */
/* A connected TCP pair on the loopback into sv (kernel TLS needs TCP);
 * -1 if the machine cannot make one. */
static int tcp_pair(int sv[2])
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    sv[1] = socket(AF_INET, SOCK_STREAM, 0);
    int ok = l >= 0 && sv[1] >= 0 && bind(l, (struct sockaddr *)&a, sizeof(a)) == 0 &&
             listen(l, 1) == 0 && getsockname(l, (struct sockaddr *)&a, &al) == 0 &&
             connect(sv[1], (struct sockaddr *)&a, sizeof(a)) == 0 &&
             (sv[0] = accept(l, NULL, NULL)) >= 0;
    if (l >= 0)
        close(l);
    if (!ok && sv[1] >= 0)
        close(sv[1]);
    return ok ? 0 : -1;
}

/* One handshake over sv (taken), then client_bytes written by the client
 * end; runs until both settled and the server read them (or 5 s). */
static void handshake_on(SSL_CTX *sctx, SSL *cssl, struct hs *h, int sv[2], size_t client_bytes);

static void handshake(SSL_CTX *sctx, SSL *cssl, struct hs *h)
{
    int sv[2];
    if (!cssl || socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) {
        fprintf(stderr, "handshake set-up failed\n");
        exit(1);
    }
    handshake_on(sctx, cssl, h, sv, 0);
}

static void handshake_on(SSL_CTX *sctx, SSL *cssl, struct hs *h, int sv[2], size_t client_bytes)
{
    memset(h, 0, sizeof(*h));
    struct event_base *base = event_base_new();
    if (!base) {
        fprintf(stderr, "handshake set-up failed\n");
        exit(1);
    }
    evutil_make_socket_nonblocking(sv[0]);
    evutil_make_socket_nonblocking(sv[1]);
    SSL *sssl = SSL_new(sctx);
    struct bufferevent *sb = bufferevent_openssl_socket_new(
        base, sv[0], sssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    struct bufferevent *cb = bufferevent_openssl_socket_new(
        base, sv[1], cssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(sb, end_read_cb, NULL, end_event_cb, &h->s);
    bufferevent_setcb(cb, end_read_cb, NULL, end_event_cb, &h->c);
    bufferevent_enable(sb, EV_READ | EV_WRITE);
    bufferevent_enable(cb, EV_READ | EV_WRITE);
    struct timeval start, now;
    evutil_gettimeofday(&start, NULL);
    struct timeval slice = {0, 20000};
    int sent = 0;
    do {
        event_base_loopexit(base, &slice);
        event_base_dispatch(base);
        evutil_gettimeofday(&now, NULL);
        if (client_bytes && !sent && ok(&h->c) && (h->s.what & BEV_EVENT_CONNECTED)) {
            char *buf = calloc(1, client_bytes);
            if (buf)
                bufferevent_write(cb, buf, client_bytes);
            free(buf);
            sent = 1;
        }
    } while ((!hs_settled(h) || (client_bytes && h->s.got < client_bytes)) &&
             now.tv_sec - start.tv_sec < 5);
    const char *sni = SSL_get_servername(sssl, TLSEXT_NAMETYPE_host_name);
    snprintf(h->sni, sizeof(h->sni), "%s", sni ? sni : "");
    snprintf(h->version, sizeof(h->version), "%s", SSL_get_version(cssl));
    bufferevent_free(sb);
    bufferevent_free(cb);
    event_base_free(base);
}

static int ok(const struct end *e)
{
    return (e->what & BEV_EVENT_CONNECTED) && !e->later;
}

static int refused(const struct end *e)
{
    return (e->what & BEV_EVENT_ERROR) || (e->later & (BEV_EVENT_ERROR | BEV_EVENT_EOF));
}

/* 1 if this kernel offers the `tls` upper-layer protocol (kTLS). */
static int kernel_has_tls(void)
{
    char line[256] = "";
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "r");
    if (f) {
        if (!fgets(line, sizeof(line), f))
            line[0] = 0;
        fclose(f);
    }
    for (char *t = strtok(line, " \n"); t; t = strtok(NULL, " \n"))
        if (strcmp(t, "tls") == 0)
            return 1;
    return 0;
}

/*
 * Kernel TLS: tls_ctx_set_ktls sets and clears SSL_OP_ENABLE_KTLS; over a
 * TCP loopback pair with AES-GCM on TLS 1.2, where the kernel offers the
 * `tls` module both ends' sending is the kernel's, elsewhere neither is
 * (and with ktls off, never); 1 MiB crosses either way; tls_note_ktls
 * counts the outcome under its side.
 */
static void test_ktls(void)
{
    SSL_CTX *sctx = server_ctx("server.pem", "server.key", NULL);
    SSL_CTX *cctx = client_ctx("ca.pem", 1, NULL, NULL);
    CHECK(sctx && cctx);
    if (!sctx || !cctx)
        return;
    tls_ctx_set_ktls(sctx, 1);
    CHECK((SSL_CTX_get_options(sctx) & SSL_OP_ENABLE_KTLS) != 0);
    tls_ctx_set_ktls(sctx, 0);
    CHECK((SSL_CTX_get_options(sctx) & SSL_OP_ENABLE_KTLS) == 0);
    int want = kernel_has_tls();
    for (int on = 0; on <= 1; on++) {
        tls_ctx_set_ktls(sctx, on);
        tls_ctx_set_ktls(cctx, on);
        SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION);
        SSL_CTX_set_cipher_list(cctx, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256");
        int sv[2];
        int made = tcp_pair(sv) == 0;
        CHECK(made);
        if (!made)
            continue;
        struct hs h;
        handshake_on(sctx, tls_client_ssl_new(cctx, "localhost", 1), &h, sv, 1u << 20);
        CHECK(ok(&h.c) && ok(&h.s));
        CHECK_EQ(h.s.got, 1u << 20);
        CHECK_EQ((h.c.ktls & TLS_KTLS_SEND) != 0, on && want);
        CHECK_EQ((h.s.ktls & TLS_KTLS_SEND) != 0, on && want);
        if (!on || !want) {
            CHECK_EQ(h.c.ktls, 0);
            CHECK_EQ(h.s.ktls, 0);
        }
    }
    /* counting: a plain bufferevent is "none" */
    uint64_t before = g_metrics.tls_conns[TLS_SIDE_UPSTREAM][0];
    struct event_base *base = event_base_new();
    struct bufferevent *bev = bufferevent_socket_new(base, -1, 0);
    tls_note_ktls(bev, TLS_SIDE_UPSTREAM);
    tls_note_ktls(bev, 7); /* no such side: ignored */
    CHECK_EQ(g_metrics.tls_conns[TLS_SIDE_UPSTREAM][0], before + 1);
    bufferevent_free(bev);
    event_base_free(base);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
}

static void test_verify(void)
{
    SSL_CTX *sctx = server_ctx("server.pem", "server.key", NULL);
    SSL_CTX *trust = client_ctx("ca.pem", 1, NULL, NULL);
    SSL_CTX *lax = client_ctx("ca.pem", 0, NULL, NULL);
    SSL_CTX *rogue = client_ctx("rogue-ca.pem", 1, NULL, NULL);
    struct hs h;
    CHECK(sctx && trust && lax && rogue);

    handshake(sctx, tls_client_ssl_new(trust, "localhost", 1), &h);
    CHECK(ok(&h.c));
    CHECK(ok(&h.s));
    CHECK_STR(h.c.peer, "eosproxy");
    CHECK_STR(h.s.peer, "-"); /* no client certificate */
    CHECK_STR(h.sni, "localhost");
    CHECK_STR(h.version, "TLSv1.3");

    handshake(sctx, tls_client_ssl_new(trust, "broker.example.com", 1), &h);
    CHECK(h.c.what & BEV_EVENT_ERROR);
    CHECK(strstr(h.c.why, "certificate verify failed: hostname mismatch") != NULL);
    CHECK(refused(&h.s));
    CHECK_STR(h.sni, "broker.example.com");
    handshake(sctx, tls_client_ssl_new(lax, "broker.example.com", 0), &h);
    CHECK(ok(&h.c));
    CHECK(ok(&h.s));
    /* verify 0 on the SSL skips the name check; its context still checks the chain. */
    handshake(sctx, tls_client_ssl_new(trust, "broker.example.com", 0), &h);
    CHECK(ok(&h.c));

    handshake(sctx, tls_client_ssl_new(trust, "127.0.0.1", 1), &h);
    CHECK(ok(&h.c));
    CHECK_STR(h.sni, ""); /* no SNI for an address */
    handshake(sctx, tls_client_ssl_new(trust, "::1", 1), &h);
    CHECK(ok(&h.c));
    handshake(sctx, tls_client_ssl_new(trust, "[::1]", 1), &h);
    CHECK(ok(&h.c));
    handshake(sctx, tls_client_ssl_new(trust, "10.11.12.13", 1), &h);
    CHECK(h.c.what & BEV_EVENT_ERROR);
    CHECK(strstr(h.c.why, "IP address mismatch") != NULL);
    CHECK_STR(h.sni, "");

    handshake(sctx, tls_client_ssl_new(rogue, "localhost", 1), &h);
    CHECK(h.c.what & BEV_EVENT_ERROR);
    CHECK(strstr(h.c.why, "certificate verify failed: unable to get local issuer") != NULL);
    CHECK(refused(&h.s));

    /* TLS 1.2 is the floor: a 1.2 client gets in, a 1.1 client does not. */
    SSL_CTX *v12 = client_ctx("ca.pem", 1, NULL, NULL);
    SSL_CTX_set_max_proto_version(v12, TLS1_2_VERSION);
    handshake(sctx, tls_client_ssl_new(v12, "localhost", 1), &h);
    CHECK(ok(&h.c));
    CHECK(ok(&h.s));
    CHECK_STR(h.version, "TLSv1.2");
    SSL_CTX *v11 = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_security_level(v11, 0);
    SSL_CTX_set_min_proto_version(v11, TLS1_VERSION);
    SSL_CTX_set_max_proto_version(v11, TLS1_1_VERSION);
    SSL_CTX_set_cipher_list(v11, "DEFAULT:@SECLEVEL=0");
    handshake(sctx, SSL_new(v11), &h);
    CHECK(h.s.what & BEV_EVENT_ERROR);
    CHECK(strstr(h.s.why, "unsupported protocol") != NULL);
    CHECK(refused(&h.c));
    /* And a TLS 1.1 server is refused by eosproxy's client context. */
    SSL_CTX *s11 = server_ctx("server.pem", "server.key", NULL);
    SSL_CTX_set_security_level(s11, 0);
    SSL_CTX_set_min_proto_version(s11, TLS1_VERSION);
    SSL_CTX_set_max_proto_version(s11, TLS1_1_VERSION);
    SSL_CTX_set_cipher_list(s11, "DEFAULT:@SECLEVEL=0");
    handshake(s11, tls_client_ssl_new(trust, "localhost", 1), &h);
    CHECK(h.c.what & BEV_EVENT_ERROR);
    CHECK(strstr(h.c.why, "protocol version") != NULL);
    CHECK(refused(&h.s));

    SSL_CTX_free(v12);
    SSL_CTX_free(v11);
    SSL_CTX_free(s11);
    SSL_CTX_free(sctx);
    SSL_CTX_free(trust);
    SSL_CTX_free(lax);
    SSL_CTX_free(rogue);
}

static void test_mtls(void)
{
    SSL_CTX *sctx = server_ctx("server.pem", "server.key", "ca.pem");
    SSL_CTX *anon = client_ctx("ca.pem", 1, NULL, NULL);
    SSL_CTX *good = client_ctx("ca.pem", 1, "client.pem", "client.key");
    SSL_CTX *bad = client_ctx("ca.pem", 1, "rogue-client.pem", "rogue-client.key");
    struct hs h;
    CHECK(sctx && anon && good && bad);

    handshake(sctx, tls_client_ssl_new(anon, "localhost", 1), &h);
    CHECK(h.s.what & BEV_EVENT_ERROR);
    CHECK(strstr(h.s.why, "peer did not return a certificate") != NULL);
    CHECK(refused(&h.c));

    handshake(sctx, tls_client_ssl_new(bad, "localhost", 1), &h);
    CHECK(h.s.what & BEV_EVENT_ERROR);
    CHECK(strstr(h.s.why, "certificate verify failed") != NULL);
    CHECK(refused(&h.c));

    handshake(sctx, tls_client_ssl_new(good, "localhost", 1), &h);
    CHECK(ok(&h.s));
    CHECK(ok(&h.c));
    CHECK_STR(h.s.peer, "app");
    CHECK_STR(h.c.peer, "eosproxy");

    /* The same over TLS 1.2, where the client hears of a refusal during the handshake. */
    SSL_CTX_set_max_proto_version(anon, TLS1_2_VERSION);
    handshake(sctx, tls_client_ssl_new(anon, "localhost", 1), &h);
    CHECK(h.s.what & BEV_EVENT_ERROR);
    CHECK(h.c.what & BEV_EVENT_ERROR);
    CHECK(h.c.why[0] != '\0');

    SSL_CTX_free(sctx);
    SSL_CTX_free(anon);
    SSL_CTX_free(good);
    SSL_CTX_free(bad);
}

static void test_plain_bev(void)
{
    struct event_base *base = event_base_new();
    struct bufferevent *bev = bufferevent_socket_new(base, -1, 0);
    char buf[64];
    CHECK_STR(tls_peer_name(bev, buf, sizeof(buf)), "-");
    CHECK(tls_describe_error(bev, buf, sizeof(buf))[0] != '\0');
    CHECK_STR(tls_peer_name(NULL, buf, sizeof(buf)), "-");
    char tiny[2];
    CHECK(strlen(tls_describe_error(bev, tiny, sizeof(tiny))) <= 1);
    bufferevent_free(bev);
    event_base_free(base);
}

/* ---- upstream_connect against a small broker on a loopback port ---- */

enum br_mode {
    BR_SASL,      /* SaslHandshake, SaslAuthenticate, then echo */
    BR_ECHO,      /* echo from the first byte (no SASL) */
    BR_SILENT,    /* reads and never answers */
    BR_BAD_FRAME, /* answers SaslHandshake with a frame size of 2 GiB */
};

/* The broker: one connection at a time; what it saw is kept for the checks. */
struct fake_broker {
    struct event_base *base;
    struct evconnlistener *lst;
    int port;
    SSL_CTX *tls; /* NULL: plaintext */
    enum br_mode mode;
    const char *offer[4]; /* mechanisms enabled, NULL-terminated */
    const char *user, *password;
    unsigned iterations; /* SCRAM */
    int tamper;          /* SCRAM: corrupt the server signature */
    const char *extra;   /* sent right behind the last SaslAuthenticate response */
    struct bufferevent *conn;
    scram_server_t *scram;
    int authed;
    /* seen */
    int nreq;
    int16_t apis[8], versions[8];
    int32_t corrs[8];
    char client_id[64], mechanism[64];
    uint8_t token[600];
    size_t ntoken;
};

static struct fake_broker br;

static void br_reset(enum br_mode mode, SSL_CTX *tls, const char *mech)
{
    if (br.conn)
        bufferevent_free(br.conn);
    scram_server_free(br.scram);
    struct event_base *base = br.base;
    struct evconnlistener *lst = br.lst;
    int port = br.port;
    memset(&br, 0, sizeof(br));
    br.base = base;
    br.lst = lst;
    br.port = port;
    br.mode = mode;
    br.tls = tls;
    br.offer[0] = mech;
    br.user = "alice";
    br.password = "s3cret-pw";
    br.iterations = 4096;
}

static int mech_offered(const char *m)
{
    for (int i = 0; br.offer[i]; i++)
        if (strcmp(br.offer[i], m) == 0)
            return 1;
    return 0;
}

/* Frame helpers for responses: a size placeholder patched at the end. */
static void resp_begin(kwriter_t *w, int32_t corr)
{
    kw_init(w, 256);
    kw_i32(w, 0);
    kw_i32(w, corr);
}

static void resp_send(kwriter_t *w, struct bufferevent *bev)
{
    kw_patch_i32(w, 0, (int32_t)(w->len - 4));
    bufferevent_write(bev, w->buf, w->len);
    kw_free(w);
}

static void br_handshake(kreader_t *r, int32_t corr, struct bufferevent *bev)
{
    kstr_t m = kr_str_nn(r, 0);
    kr_expect_end(r);
    if (!kr_ok(r))
        return;
    snprintf(br.mechanism, sizeof(br.mechanism), "%.*s", (int)m.len, m.ptr);
    if (br.mode == BR_BAD_FRAME) {
        bufferevent_write(bev, "\x7f\xff\xff\xff", 4);
        return;
    }
    kwriter_t w;
    resp_begin(&w, corr);
    kw_i16(&w, mech_offered(br.mechanism) ? 0 : 33);
    int n = 0;
    while (br.offer[n])
        n++;
    kw_array(&w, 0, n);
    for (int i = 0; i < n; i++)
        kw_str(&w, 0, br.offer[i], (int32_t)strlen(br.offer[i]));
    resp_send(&w, bev);
    if (strncmp(br.mechanism, "SCRAM-", 6) == 0)
        br.scram = scram_server_new(strcmp(br.mechanism, "SCRAM-SHA-512") == 0 ? SCRAM_SHA_512
                                                                               : SCRAM_SHA_256);
}

static void auth_resp(struct bufferevent *bev, int32_t corr, int16_t ec, const char *msg,
                      const char *auth)
{
    kwriter_t w;
    resp_begin(&w, corr);
    kw_i16(&w, ec);
    kw_str(&w, 0, msg, msg ? (int32_t)strlen(msg) : -1);
    kw_bytes(&w, 0, auth, (int32_t)strlen(auth));
    kw_i64(&w, 3600000);
    resp_send(&w, bev);
    if (ec == 0 && br.authed && br.extra)
        bufferevent_write(bev, br.extra, strlen(br.extra));
}

/* SCRAM, server side, with scram.c's server and a credential made from br.password. */
static void br_scram(kbytes_t a, int32_t corr, struct bufferevent *bev)
{
    char out[1024];
    const char *user;
    size_t ulen;
    if (br.nreq == 2) {
        scram_mech_t m = strcmp(br.mechanism, "SCRAM-SHA-512") == 0 ? SCRAM_SHA_512 : SCRAM_SHA_256;
        uint8_t salt[16], salted[SCRAM_MAX_DIGEST];
        memset(salt, 7, sizeof(salt));
        scram_cred_t cred;
        int ok = scram_server_client_first(br.scram, a.ptr, (size_t)a.len, &user, &ulen) == 0 &&
                 strcmp(user, br.user) == 0 &&
                 scram_salted_password(m, br.password, strlen(br.password), salt, sizeof(salt),
                                       br.iterations, salted) == 0 &&
                 scram_cred_from_salted(m, salted, scram_digest_len(m), salt, sizeof(salt),
                                        br.iterations, &cred) == 0 &&
                 scram_server_first_message(br.scram, &cred, out, sizeof(out)) > 0;
        if (!ok) {
            auth_resp(bev, corr, 58, "Authentication failed: unknown user", "");
            return;
        }
        auth_resp(bev, corr, 0, NULL, out);
        return;
    }
    int rc = scram_server_client_final(br.scram, a.ptr, (size_t)a.len, out, sizeof(out));
    if (rc != 1) {
        auth_resp(bev, corr, 58,
                  "Authentication failed during authentication due to invalid credentials with "
                  "SASL mechanism SCRAM-SHA-256",
                  "");
        return;
    }
    if (br.tamper)
        out[3] = out[3] == 'A' ? 'B' : 'A';
    br.authed = 1;
    auth_resp(bev, corr, 0, NULL, out);
}

static void br_authenticate(kreader_t *r, int32_t corr, struct bufferevent *bev)
{
    kbytes_t a = kr_bytes(r, 0);
    kr_expect_end(r);
    if (!kr_ok(r) || a.len < 0)
        return;
    if (strcmp(br.mechanism, "PLAIN") != 0) {
        br_scram(a, corr, bev);
        return;
    }
    br.ntoken = (size_t)a.len < sizeof(br.token) ? (size_t)a.len : sizeof(br.token);
    memcpy(br.token, a.ptr, br.ntoken);
    char want[300];
    int n = snprintf(want, sizeof(want), "%c%s%c%s", 0, br.user, 0, br.password);
    if ((size_t)n == br.ntoken && memcmp(want, br.token, br.ntoken) == 0) {
        br.authed = 1;
        auth_resp(bev, corr, 0, NULL, "");
    } else {
        auth_resp(bev, corr, 58, "Authentication failed: Invalid username or password", "");
    }
}

/* One request frame (no size prefix): header v1, then the body. */
static void br_request(const uint8_t *frame, size_t len, struct bufferevent *bev)
{
    kreader_t r;
    kr_init(&r, frame, len);
    int16_t api = kr_i16(&r), ver = kr_i16(&r);
    int32_t corr = kr_i32(&r);
    kstr_t cid = kr_str(&r, 0);
    if (!kr_ok(&r) || br.nreq >= 8)
        return;
    br.apis[br.nreq] = api;
    br.versions[br.nreq] = ver;
    br.corrs[br.nreq] = corr;
    br.nreq++;
    snprintf(br.client_id, sizeof(br.client_id), "%.*s", cid.len > 0 ? (int)cid.len : 0,
             cid.ptr ? cid.ptr : "");
    if (api == 17)
        br_handshake(&r, corr, bev);
    else if (api == 36)
        br_authenticate(&r, corr, bev);
}

static void br_read_cb(struct bufferevent *bev, void *arg)
{
    (void)arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (!br.authed && br.mode != BR_ECHO && evbuffer_get_length(in) >= 4) {
        if (br.mode == BR_SILENT) {
            uint8_t b[4];
            evbuffer_copyout(in, b, 4);
            if (br.nreq == 0 && evbuffer_get_length(in) >= (size_t)kbe32(b) + 4)
                br.nreq = 1; /* a whole request arrived */
            return;
        }
        uint8_t frame[4096];
        evbuffer_copyout(in, frame, 4);
        size_t size = (size_t)kbe32(frame);
        if (size > sizeof(frame) - 4) {
            evbuffer_drain(in, evbuffer_get_length(in));
            return;
        }
        if (evbuffer_get_length(in) < size + 4)
            return;
        evbuffer_remove(in, frame, size + 4);
        br_request(frame + 4, size, bev);
    }
    if (br.authed || br.mode == BR_ECHO)
        evbuffer_add_buffer(bufferevent_get_output(bev), in);
}

static void br_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        bufferevent_free(bev);
        if (br.conn == bev)
            br.conn = NULL;
    }
}

static void br_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int sl,
                         void *arg)
{
    (void)l;
    (void)sa;
    (void)sl;
    (void)arg;
    if (br.conn)
        bufferevent_free(br.conn);
    br.conn = br.tls
                  ? bufferevent_openssl_socket_new(br.base, fd, SSL_new(br.tls),
                                                   BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE)
                  : bufferevent_socket_new(br.base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(br.conn, br_read_cb, NULL, br_event_cb, NULL);
    bufferevent_enable(br.conn, EV_READ | EV_WRITE);
}

static void br_start(struct event_base *base)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    br.base = base;
    br.lst =
        evconnlistener_new_bind(base, br_accept_cb, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                16, (struct sockaddr *)&sin, sizeof(sin));
    socklen_t sl = sizeof(sin);
    if (!br.lst || getsockname(evconnlistener_get_fd(br.lst), (struct sockaddr *)&sin, &sl)) {
        fprintf(stderr, "cannot listen on loopback\n");
        exit(1);
    }
    br.port = ntohs(sin.sin_port);
}

/* ---- the caller of upstream_connect ---- */

struct caller {
    int connected, failed;
    short what; /* the last event */
    char got[256];
    size_t ngot;
    const char *say; /* written on BEV_EVENT_CONNECTED */
    int free_on_connect;
    struct bufferevent *bev;
};

static void caller_read_cb(struct bufferevent *bev, void *arg)
{
    struct caller *c = arg;
    c->ngot +=
        evbuffer_remove(bufferevent_get_input(bev), c->got + c->ngot, sizeof(c->got) - 1 - c->ngot);
    c->got[c->ngot] = '\0';
}

static void caller_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct caller *c = arg;
    c->what = what;
    if (what & BEV_EVENT_CONNECTED) {
        c->connected++;
        if (c->say)
            bufferevent_write(bev, c->say, strlen(c->say));
        if (!c->free_on_connect)
            return;
    } else {
        c->failed++;
    }
    upstream_free(bev);
    c->bev = NULL;
}

static config_t cfg;
static struct proxy px;
static char logpath[600];
static int saved_stderr = -1;

/* Sends log lines (stderr) to a file until log_end. */
static void log_begin(void)
{
    fflush(stderr);
    saved_stderr = dup(2);
    int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    close(fd);
}

/* Restores stderr; the captured lines are in out. */
static void log_end(char *out, size_t outlen)
{
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    FILE *f = fopen(logpath, "rb");
    size_t n = f ? fread(out, 1, outlen - 1, f) : 0;
    out[n] = '\0';
    if (f)
        fclose(f);
}

/* Runs the loop until c failed, or connected and got want bytes back, or 5 s passed. */
static void run_caller(struct caller *c, size_t want)
{
    struct timeval start, now, slice = {0, 10000};
    evutil_gettimeofday(&start, NULL);
    do {
        event_base_loopexit(px.base, &slice);
        event_base_dispatch(px.base);
        evutil_gettimeofday(&now, NULL);
    } while (!c->failed && !(c->connected && c->ngot >= want) && now.tv_sec - start.tv_sec < 5);
}

static void run_for_ms(int ms)
{
    struct timeval tv = {0, ms * 1000};
    event_base_loopexit(px.base, &tv);
    event_base_dispatch(px.base);
}

/* Replaces px.upsec for (mechanism, TLS trusting ca or not at all, password). */
static void set_sec(sasl_mech_t mech, const char *ca, const char *password)
{
    upstream_sec_free(px.upsec);
    cfg.upstream.tls.enabled = ca != NULL;
    cfg.upstream.tls.ca_file = ca ? (char *)P(ca) : NULL;
    cfg.upstream.tls.verify = 1;
    cfg.upstream.sasl.mechanism = mech;
    cfg.upstream.sasl.username = "alice";
    cfg.upstream.sasl.password = (char *)password;
    err[0] = '\0';
    char logs[1024];
    log_begin(); /* warnings about clear-text passwords */
    px.upsec = upstream_sec_new(&cfg, err, sizeof(err));
    log_end(logs, sizeof(logs));
    if (!px.upsec) {
        fprintf(stderr, "upstream_sec_new: %s\n", err);
        exit(1);
    }
}

static struct bufferevent *dial(struct caller *c, int port)
{
    memset(c, 0, sizeof(*c));
    c->say = "ping";
    c->bev = upstream_connect(&px, "127.0.0.1", port, 0, caller_read_cb, NULL, caller_event_cb, c);
    return c->bev;
}

static uint64_t uperr(int kind)
{
    return g_metrics.upstream_errors[kind];
}

static void test_upstream_sec(void)
{
    memset(&cfg, 0, sizeof(cfg));
    cfg.upstream.connect_timeout_ms = 3000;
    cfg.upstream.request_timeout_ms = 3000;
    struct upstream_sec *s = upstream_sec_new(&cfg, err, sizeof(err));
    CHECK(s != NULL);
    CHECK_EQ(upstream_sec_holds_writes(s), 0);
    CHECK_EQ(upstream_sec_holds_writes(NULL), 0);
    upstream_sec_free(s);
    upstream_sec_free(NULL);

    cfg.upstream.tls.enabled = 1;
    cfg.upstream.tls.verify = 1;
    cfg.upstream.tls.ca_file = (char *)P("missing-ca.pem");
    err[0] = '\0';
    CHECK(upstream_sec_new(&cfg, err, sizeof(err)) == NULL);
    char want[700];
    snprintf(want, sizeof(want), "upstream.tls: %s: No such file", P("missing-ca.pem"));
    CHECK(strncmp(err, want, strlen(want)) == 0);
    cfg.upstream.tls.ca_file = (char *)P("ca.pem");
    cfg.upstream.tls.cert_file = (char *)P("client.pem");
    cfg.upstream.tls.key_file = (char *)P("server.key");
    CHECK(upstream_sec_new(&cfg, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "does not match") != NULL);
    cfg.upstream.tls.key_file = (char *)P("client.key");
    s = upstream_sec_new(&cfg, err, sizeof(err));
    CHECK(s != NULL);
    CHECK_EQ(upstream_sec_holds_writes(s), 0); /* TLS alone holds nothing */
    upstream_sec_free(s);
    memset(&cfg.upstream.tls, 0, sizeof(cfg.upstream.tls));

    cfg.upstream.sasl.mechanism = SASL_SCRAM_SHA_256;
    cfg.upstream.sasl.password = "pw";
    err[0] = '\0';
    CHECK(upstream_sec_new(&cfg, err, sizeof(err)) == NULL);
    CHECK(strncmp(err, "upstream.sasl.username:", 23) == 0);
    cfg.upstream.sasl.username = "alice";
    cfg.upstream.sasl.password = NULL;
    CHECK(upstream_sec_new(&cfg, err, sizeof(err)) == NULL);
    CHECK(strncmp(err, "upstream.sasl.password:", 23) == 0);
    cfg.upstream.sasl.password = "pw";
    cfg.upstream.sasl.mechanism = (sasl_mech_t)9;
    CHECK(upstream_sec_new(&cfg, err, sizeof(err)) == NULL);
    CHECK(strncmp(err, "upstream.sasl.mechanism:", 24) == 0);
    cfg.upstream.sasl.mechanism = SASL_PLAIN;
    s = upstream_sec_new(&cfg, err, sizeof(err));
    CHECK(s != NULL);
    CHECK_EQ(upstream_sec_holds_writes(s), 1);
    upstream_sec_free(s);
    memset(&cfg.upstream.sasl, 0, sizeof(cfg.upstream.sasl));
}

/* No TLS, no SASL: the caller's callbacks from the start. */
static void test_up_plain(void)
{
    struct caller c;
    upstream_sec_free(px.upsec);
    px.upsec = NULL;
    br_reset(BR_ECHO, NULL, NULL);
    CHECK(dial(&c, br.port) != NULL);
    run_caller(&c, 4);
    CHECK_EQ(c.connected, 1);
    CHECK_STR(c.got, "ping");
    struct bufferevent *bev = c.bev;
    bufferevent_data_cb rcb = NULL;
    bufferevent_getcb(bev, &rcb, NULL, NULL, NULL);
    CHECK(rcb == caller_read_cb);
    upstream_free(bev);

    set_sec(SASL_NONE, NULL, NULL); /* an upstream_sec with nothing in it: the same */
    CHECK(dial(&c, br.port) != NULL);
    rcb = NULL;
    bufferevent_getcb(c.bev, &rcb, NULL, NULL, NULL);
    CHECK(rcb == caller_read_cb);
    CHECK(bufferevent_openssl_get_ssl(c.bev) == NULL);
    run_caller(&c, 4);
    CHECK_STR(c.got, "ping");
    upstream_free(c.bev);

    /* Arguments that cannot be dialled. */
    CHECK(upstream_connect(&px, "127.0.0.1", 0, 0, NULL, NULL, NULL, NULL) == NULL);
    CHECK(upstream_connect(&px, "", 9092, 0, NULL, NULL, NULL, NULL) == NULL);
    upstream_free(NULL);
}

/* A port where nothing listens. */
static int closed_port(void)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    bind(fd, (struct sockaddr *)&sin, sizeof(sin));
    getsockname(fd, (struct sockaddr *)&sin, &sl);
    close(fd);
    return ntohs(sin.sin_port);
}

static void test_up_plain_login(void)
{
    struct caller c;
    char logs[8192];
    set_sec(SASL_PLAIN, NULL, "s3cret-pw");
    br_reset(BR_SASL, NULL, "PLAIN");
    uint64_t auth0 = uperr(UPERR_AUTH);
    log_begin();
    CHECK(dial(&c, br.port) != NULL);
    run_caller(&c, 4);
    log_end(logs, sizeof(logs));
    CHECK_EQ(c.connected, 1);
    CHECK_EQ(c.failed, 0);
    CHECK_STR(c.got, "ping");
    CHECK_EQ(br.nreq, 2);
    CHECK_EQ(br.apis[0], 17);
    CHECK_EQ(br.versions[0], 1);
    CHECK_EQ(br.apis[1], 36);
    CHECK_EQ(br.versions[1], 1);
    CHECK(br.corrs[0] != br.corrs[1]);
    CHECK_STR(br.client_id, "eosproxy");
    CHECK_STR(br.mechanism, "PLAIN");
    CHECK_EQ(br.ntoken, 16);
    CHECK(memcmp(br.token, "\0alice\0s3cret-pw", 16) == 0);
    CHECK_EQ(uperr(UPERR_AUTH), auth0);
    CHECK(strstr(logs, "s3cret") == NULL);
    bufferevent_data_cb rcb = NULL;
    bufferevent_event_cb ecb = NULL;
    bufferevent_getcb(c.bev, &rcb, NULL, &ecb, NULL);
    CHECK(rcb == caller_read_cb && ecb == caller_event_cb);
    upstream_free(c.bev);

    /* Bytes the broker sent behind the last SASL frame reach the caller's read callback. */
    br_reset(BR_SASL, NULL, "PLAIN");
    br.extra = "EXTRA";
    CHECK(dial(&c, br.port) != NULL);
    c.say = NULL;
    run_caller(&c, 5);
    CHECK_EQ(c.connected, 1);
    CHECK_STR(c.got, "EXTRA");
    upstream_free(c.bev);

    /* A refused password: the broker's message is logged, the password is not. */
    set_sec(SASL_PLAIN, NULL, "wrong-pw-123");
    br_reset(BR_SASL, NULL, "PLAIN");
    log_begin();
    CHECK(dial(&c, br.port) != NULL);
    run_caller(&c, 4);
    log_end(logs, sizeof(logs));
    CHECK_EQ(c.connected, 0);
    CHECK_EQ(c.failed, 1);
    CHECK((c.what & BEV_EVENT_ERROR) && (c.what & UPSTREAM_EVENT_COUNTED));
    CHECK_EQ(uperr(UPERR_AUTH), auth0 + 1);
    CHECK(strstr(logs, "Invalid username or password") != NULL);
    CHECK(strstr(logs, "alice") != NULL);
    char at[64];
    snprintf(at, sizeof(at), "127.0.0.1:%d", br.port);
    CHECK(strstr(logs, at) != NULL);
    CHECK(strstr(logs, "wrong-pw") == NULL);
    CHECK(strstr(logs, "s3cret") == NULL);
    CHECK_EQ(br.authed, 0);

    /* A mechanism the broker does not enable: what it offers is logged. */
    set_sec(SASL_SCRAM_SHA_512, NULL, "s3cret-pw");
    br_reset(BR_SASL, NULL, "PLAIN");
    br.offer[1] = "SCRAM-SHA-256";
    log_begin();
    CHECK(dial(&c, br.port) != NULL);
    run_caller(&c, 4);
    log_end(logs, sizeof(logs));
    CHECK_EQ(c.failed, 1);
    CHECK(c.what & UPSTREAM_EVENT_COUNTED);
    CHECK_EQ(uperr(UPERR_AUTH), auth0 + 2);
    CHECK_STR(br.mechanism, "SCRAM-SHA-512");
    CHECK(strstr(logs, "SCRAM-SHA-512 is not enabled") != NULL);
    CHECK(strstr(logs, "it offers: PLAIN, SCRAM-SHA-256") != NULL);
    CHECK_EQ(br.nreq, 1);

    /* The caller frees the bufferevent from its CONNECTED callback. */
    set_sec(SASL_PLAIN, NULL, "s3cret-pw");
    br_reset(BR_SASL, NULL, "PLAIN");
    CHECK(dial(&c, br.port) != NULL);
    c.free_on_connect = 1;
    run_caller(&c, 0);
    CHECK_EQ(c.connected, 1);
    CHECK(c.bev == NULL);
    run_for_ms(30);
}

static void test_up_failures(void)
{
    struct caller c;
    char logs[8192];
    uint64_t timeouts0 = uperr(UPERR_TIMEOUT), proto0 = uperr(UPERR_PROTOCOL);

    /* A broker that never answers: the login is bounded by request_timeout. */
    cfg.upstream.request_timeout_ms = 300;
    set_sec(SASL_PLAIN, NULL, "s3cret-pw");
    br_reset(BR_SILENT, NULL, "PLAIN");
    struct timeval t0, t1;
    evutil_gettimeofday(&t0, NULL);
    log_begin();
    CHECK(dial(&c, br.port) != NULL);
    run_caller(&c, 4);
    log_end(logs, sizeof(logs));
    evutil_gettimeofday(&t1, NULL);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_usec - t0.tv_usec) / 1000;
    CHECK_EQ(c.failed, 1);
    CHECK(c.what & UPSTREAM_EVENT_COUNTED);
    CHECK(ms >= 280 && ms < 2000);
    CHECK_EQ(uperr(UPERR_TIMEOUT), timeouts0 + 1);
    CHECK(strstr(logs, "SASL login timed out") != NULL);
    cfg.upstream.request_timeout_ms = 3000;

    /* A frame size no SASL response has. */
    set_sec(SASL_PLAIN, NULL, "s3cret-pw");
    br_reset(BR_BAD_FRAME, NULL, "PLAIN");
    log_begin();
    CHECK(dial(&c, br.port) != NULL);
    run_caller(&c, 4);
    log_end(logs, sizeof(logs));
    CHECK_EQ(c.failed, 1);
    CHECK_EQ(uperr(UPERR_PROTOCOL), proto0 + 1);
    CHECK(strstr(logs, "bad frame size") != NULL);

    /* Nothing listening: the caller's to report, not counted here. */
    uint64_t before[UPERR_KINDS];
    memcpy(before, g_metrics.upstream_errors, sizeof(before));
    int port = closed_port();
    for (int tls = 0; tls < 2; tls++) {
        set_sec(SASL_PLAIN, tls ? "ca.pem" : NULL, "s3cret-pw");
        log_begin();
        struct bufferevent *bev = dial(&c, port);
        if (bev)
            run_caller(&c, 4);
        log_end(logs, sizeof(logs));
        CHECK(bev == NULL || (c.failed == 1 && !(c.what & UPSTREAM_EVENT_COUNTED)));
        CHECK(memcmp(before, g_metrics.upstream_errors, sizeof(before)) == 0);
        CHECK(strstr(logs, "warn") == NULL);
    }

    /* A TLS listener that never answers the ClientHello: bounded by connect_timeout. */
    uint64_t tls0 = uperr(UPERR_TLS);
    cfg.upstream.connect_timeout_ms = 300;
    set_sec(SASL_PLAIN, "ca.pem", "s3cret-pw");
    br_reset(BR_SILENT, NULL, NULL);
    log_begin();
    CHECK(dial(&c, br.port) != NULL);
    run_caller(&c, 4);
    log_end(logs, sizeof(logs));
    CHECK_EQ(c.failed, 1);
    CHECK(c.what & UPSTREAM_EVENT_COUNTED);
    CHECK_EQ(uperr(UPERR_TLS), tls0 + 1);
    CHECK(strstr(logs, "TLS handshake timed out") != NULL);
    cfg.upstream.connect_timeout_ms = 3000;

    /* upstream_free in the middle of a login: no callback, nothing leaks (ASan). */
    set_sec(SASL_PLAIN, NULL, "s3cret-pw");
    br_reset(BR_SILENT, NULL, "PLAIN");
    CHECK(dial(&c, br.port) != NULL);
    for (int i = 0; i < 100 && br.nreq == 0; i++)
        run_for_ms(10);
    CHECK_EQ(br.nreq, 1);
    upstream_free(c.bev);
    run_for_ms(50);
    CHECK_EQ(c.connected + c.failed, 0);
    /* ... and while still connecting (TLS handshake under way). */
    set_sec(SASL_PLAIN, "ca.pem", "s3cret-pw");
    CHECK(dial(&c, br.port) != NULL);
    upstream_free(c.bev);
    run_for_ms(50);
    CHECK_EQ(c.connected + c.failed, 0);
}

#define BULK_BYTES (3u << 20)

/* A caller that writes BULK_BYTES of a pattern on CONNECTED and checks the echo. */
struct bulk {
    int connected, failed;
    size_t got, bad;
};

static uint8_t bulk_byte(size_t i)
{
    return (uint8_t)(i * 131 + (i >> 12));
}

static void bulk_read_cb(struct bufferevent *bev, void *arg)
{
    struct bulk *b = arg;
    uint8_t buf[16384];
    size_t n;
    while ((n = evbuffer_remove(bufferevent_get_input(bev), buf, sizeof(buf))) > 0 &&
           n != (size_t)-1) {
        for (size_t i = 0; i < n; i++)
            b->bad += buf[i] != bulk_byte(b->got + i);
        b->got += n;
    }
}

static void bulk_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct bulk *b = arg;
    if (!(what & BEV_EVENT_CONNECTED)) {
        b->failed++;
        return;
    }
    b->connected++;
    uint8_t *data = malloc(BULK_BYTES);
    for (size_t i = 0; data && i < BULK_BYTES; i++)
        data[i] = bulk_byte(i);
    if (data)
        bufferevent_write(bev, data, BULK_BYTES);
    free(data);
}

static void test_up_tls(SSL_CTX *sctx)
{
    struct caller c;
    char logs[8192];
    uint64_t tls0 = uperr(UPERR_TLS), auth0 = uperr(UPERR_AUTH);

    set_sec(SASL_PLAIN, "ca.pem", "s3cret-pw");
    CHECK_EQ(upstream_sec_holds_writes(px.upsec), 1);
    br_reset(BR_SASL, sctx, "PLAIN");
    CHECK(dial(&c, br.port) != NULL);
    CHECK(bufferevent_openssl_get_ssl(c.bev) != NULL);
    run_caller(&c, 4);
    CHECK_EQ(c.connected, 1);
    CHECK_STR(c.got, "ping");
    CHECK_STR(br.mechanism, "PLAIN");
    CHECK_EQ(br.ntoken, 16);
    char peer[64];
    CHECK(c.bev && strcmp(tls_peer_name(c.bev, peer, sizeof(peer)), "eosproxy") == 0);
    upstream_free(c.bev);

    /* TLS without SASL: handed over right after the handshake. */
    set_sec(SASL_NONE, "ca.pem", NULL);
    CHECK_EQ(upstream_sec_holds_writes(px.upsec), 0);
    br_reset(BR_ECHO, sctx, NULL);
    CHECK(dial(&c, br.port) != NULL);
    run_caller(&c, 4);
    CHECK_EQ(c.connected, 1);
    CHECK_STR(c.got, "ping");
    upstream_free(c.bev);

    /* MiB-sized writes (as lanes make) cross TLS intact, with partial writes and reads. */
    struct bulk bk;
    memset(&bk, 0, sizeof(bk));
    br_reset(BR_ECHO, sctx, NULL);
    struct bufferevent *bev =
        upstream_connect(&px, "127.0.0.1", br.port, 0, bulk_read_cb, NULL, bulk_event_cb, &bk);
    CHECK(bev != NULL);
    bufferevent_set_max_single_write(bev, 1024 * 1024);
    for (int i = 0; i < 500 && !bk.failed && bk.got < BULK_BYTES; i++)
        run_for_ms(10);
    CHECK_EQ(bk.connected, 1);
    CHECK_EQ(bk.got, BULK_BYTES);
    CHECK_EQ(bk.bad, 0);
    upstream_free(bev);

    /* A broker certificate from another CA. */
    set_sec(SASL_PLAIN, "rogue-ca.pem", "s3cret-pw");
    br_reset(BR_SASL, sctx, "PLAIN");
    log_begin();
    CHECK(dial(&c, br.port) != NULL);
    run_caller(&c, 4);
    log_end(logs, sizeof(logs));
    CHECK_EQ(c.failed, 1);
    CHECK((c.what & BEV_EVENT_ERROR) && (c.what & UPSTREAM_EVENT_COUNTED));
    CHECK_EQ(uperr(UPERR_TLS), tls0 + 1);
    CHECK(strstr(logs, "TLS handshake failed: certificate verify failed") != NULL);
    CHECK_EQ(br.nreq, 0);

    /* TLS towards a plaintext listener (that echoes the ClientHello back). */
    set_sec(SASL_PLAIN, "ca.pem", "s3cret-pw");
    br_reset(BR_ECHO, NULL, NULL);
    log_begin();
    CHECK(dial(&c, br.port) != NULL);
    run_caller(&c, 4);
    log_end(logs, sizeof(logs));
    CHECK_EQ(c.failed, 1);
    CHECK_EQ(uperr(UPERR_TLS), tls0 + 2);
    CHECK(strstr(logs, "TLS handshake failed") != NULL);

    /* Plaintext SASL towards a TLS listener: it hangs up on the SaslHandshake. */
    set_sec(SASL_PLAIN, NULL, "s3cret-pw");
    br_reset(BR_SASL, sctx, "PLAIN");
    log_begin();
    CHECK(dial(&c, br.port) != NULL);
    run_caller(&c, 4);
    log_end(logs, sizeof(logs));
    CHECK_EQ(c.failed, 1);
    CHECK_EQ(uperr(UPERR_AUTH), auth0 + 1);
    CHECK(strstr(logs, "closed the connection during the SASL login") != NULL);
}

static void test_up_scram(SSL_CTX *sctx)
{
    struct caller c;
    char logs[8192];
    uint64_t auth0 = uperr(UPERR_AUTH);

    set_sec(SASL_SCRAM_SHA_256, NULL, "s3cret-pw");
    for (int round = 0; round < 2; round++) { /* the second login uses the salt cache */
        br_reset(BR_SASL, NULL, "SCRAM-SHA-256");
        log_begin();
        CHECK(dial(&c, br.port) != NULL);
        run_caller(&c, 4);
        log_end(logs, sizeof(logs));
        CHECK_EQ(c.connected, 1);
        CHECK_STR(c.got, "ping");
        CHECK_EQ(br.nreq, 3);
        CHECK_EQ(br.apis[2], 36);
        CHECK(br.corrs[1] != br.corrs[2]);
        CHECK(strstr(logs, "s3cret") == NULL);
        upstream_free(c.bev);
    }

    set_sec(SASL_SCRAM_SHA_512, "ca.pem", "s3cret-pw");
    br_reset(BR_SASL, sctx, "SCRAM-SHA-512");
    CHECK(dial(&c, br.port) != NULL);
    run_caller(&c, 4);
    CHECK_EQ(c.connected, 1);
    CHECK_STR(c.got, "ping");
    CHECK_STR(br.mechanism, "SCRAM-SHA-512");
    upstream_free(c.bev);

    /* The wrong password: the broker refuses the proof. */
    set_sec(SASL_SCRAM_SHA_256, NULL, "not-the-password");
    br_reset(BR_SASL, NULL, "SCRAM-SHA-256");
    log_begin();
    CHECK(dial(&c, br.port) != NULL);
    run_caller(&c, 4);
    log_end(logs, sizeof(logs));
    CHECK_EQ(c.failed, 1);
    CHECK_EQ(uperr(UPERR_AUTH), auth0 + 1);
    CHECK(strstr(logs, "invalid credentials") != NULL);
    CHECK(strstr(logs, "not-the-password") == NULL);

    /* A broker that does not know the password: its signature does not verify. */
    set_sec(SASL_SCRAM_SHA_256, NULL, "s3cret-pw");
    br_reset(BR_SASL, NULL, "SCRAM-SHA-256");
    br.tamper = 1;
    log_begin();
    CHECK(dial(&c, br.port) != NULL);
    run_caller(&c, 4);
    log_end(logs, sizeof(logs));
    CHECK_EQ(c.failed, 1);
    CHECK_EQ(c.connected, 0);
    CHECK_EQ(uperr(UPERR_AUTH), auth0 + 2);
    CHECK(strstr(logs, "server signature did not verify") != NULL);

    /* More PBKDF2 rounds than Kafka allows are refused before running them. */
    br_reset(BR_SASL, NULL, "SCRAM-SHA-256");
    br.iterations = 20000;
    log_begin();
    CHECK(dial(&c, br.port) != NULL);
    run_caller(&c, 4);
    log_end(logs, sizeof(logs));
    CHECK_EQ(c.failed, 1);
    CHECK_EQ(uperr(UPERR_AUTH), auth0 + 3);
    CHECK(strstr(logs, "asks for 20000 SCRAM iterations") != NULL);
}

static void test_upstream(void)
{
    snprintf(logpath, sizeof(logpath), "%s/log.txt", dir);
    log_setup(LOG_DEBUG, 0);
    test_upstream_sec();
    px.cfg = &cfg;
    px.base = event_base_new();
    br_start(px.base);
    SSL_CTX *sctx = server_ctx("server.pem", "server.key", NULL);
    test_up_plain();
    test_up_plain_login();
    test_up_failures();
    test_up_tls(sctx);
    test_up_scram(sctx);
    br_reset(BR_ECHO, NULL, NULL);
    upstream_sec_free(px.upsec);
    px.upsec = NULL;
    evconnlistener_free(br.lst);
    SSL_CTX_free(sctx);
    event_base_free(px.base);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "bash tests/tools/mkcerts.sh %s", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "tests/tools/mkcerts.sh failed (run from the repository root)\n");
        return 1;
    }
    test_ctx_errors();
    test_verify();
    test_mtls();
    test_plain_bev();
    test_ktls();
    test_upstream();
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return unit_done("test_tls");
}
