/*
 * fuzz_sasl.c - libFuzzer target for the SASL codec (proxy/codec/ksasl.c).
 *
 * The input is read every way eosproxy reads SASL bytes: as a SaslHandshake
 * request body, as a SaslAuthenticate request body (v0-2), as a
 * SaslHandshake response and a SaslAuthenticate response frame (v0-2,
 * without the size prefix), as a SASL/PLAIN token, and as a whole request
 * frame (header, validation, then the SASL body parsers). Nothing may
 * crash, read out of bounds or trip UBSan. Seeds: tests/fuzz/seeds/sasl-*
 * and req-Sasl*.
 *
 * Invariants checked (abort on violation, so the fuzzer reports them):
 *  - every view a parser returns lies inside the input;
 *  - write(parse(x)) parses back to the same fields, and for the
 *    non-flexible responses reproduces x byte for byte;
 *  - a PLAIN token that parses has a non-empty user and password with no
 *    NUL, and an authzid that is empty or equal to the user;
 *  - a SASL request body that ksasl accepts also passes kproto's validator.
 */
#include "kproto.h"
#include "ksasl.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t *g_data;
static size_t g_size;

/* Aborts unless [p, p+len) lies inside the input (len -1: null, no pointer check). */
static void inside(const void *p, int32_t len)
{
    if (len < 0)
        return;
    const uint8_t *b = p;
    if (len > 0 && (b < g_data || (size_t)len > g_size || b + len > g_data + g_size))
        abort();
}

static int has_nul(kstr_t s)
{
    return s.len > 0 && memchr(s.ptr, '\0', (size_t)s.len) != NULL;
}

/* A NUL-terminated heap copy of s (never NULL for a non-null s). */
static char *cstr(kstr_t s)
{
    char *c = malloc((size_t)s.len + 1);
    if (!c)
        abort();
    if (s.len > 0)
        memcpy(c, s.ptr, (size_t)s.len);
    c[s.len] = '\0';
    return c;
}

static void handshake_req(void)
{
    kstr_t m;
    if (ksasl_handshake_req_parse(g_data, g_size, &m) != 0)
        return;
    inside(m.ptr, m.len);
    if (m.len < 0 || has_nul(m))
        return;
    char *name = cstr(m);
    kwriter_t w;
    kw_init(&w, 64);
    if (ksasl_handshake_req_write(&w, 1, 1, "fuzz", name) != 0)
        abort();
    kreq_hdr_t h;
    const char *err = NULL;
    kstr_t back;
    if (kproto_parse_request_header(w.buf + 4, w.len - 4, &h, &err) != 0 ||
        ksasl_handshake_req_parse(w.buf + 4 + h.body_off, w.len - 4 - h.body_off, &back) != 0 ||
        back.len != m.len || memcmp(back.ptr, m.ptr, (size_t)m.len) != 0)
        abort();
    kw_free(&w);
    free(name);
}

static void authenticate_req(int16_t v)
{
    kbytes_t b;
    if (ksasl_authenticate_req_parse(v, g_data, g_size, &b) != 0)
        return;
    if (b.len < 0)
        abort();
    inside(b.ptr, b.len);
    kwriter_t w;
    kw_init(&w, 64);
    if (ksasl_authenticate_req_write(&w, v, 2, NULL, b.ptr, (size_t)b.len) != 0)
        abort();
    kreq_hdr_t h;
    const char *err = NULL;
    size_t eoff = 0;
    kbytes_t back;
    if (kproto_parse_request_header(w.buf + 4, w.len - 4, &h, &err) != 0 ||
        kproto_validate_request(&h, w.buf + 4, w.len - 4, &eoff, &err) != 0 ||
        ksasl_authenticate_req_parse(v, w.buf + 4 + h.body_off, w.len - 4 - h.body_off, &back) !=
            0 ||
        back.len != b.len || (b.len && memcmp(back.ptr, b.ptr, (size_t)b.len) != 0))
        abort();
    kw_free(&w);
}

static void handshake_resp(void)
{
    int32_t corr;
    int16_t ec;
    kstr_t mechs[KSASL_MAX_MECHANISMS];
    size_t n;
    if (ksasl_handshake_resp_parse(g_data, g_size, &corr, &ec, mechs, KSASL_MAX_MECHANISMS, &n) !=
        0)
        return;
    size_t kept = n < KSASL_MAX_MECHANISMS ? n : KSASL_MAX_MECHANISMS;
    int nul = 0;
    for (size_t i = 0; i < kept; i++) {
        inside(mechs[i].ptr, mechs[i].len);
        if (mechs[i].len < 0)
            abort();
        nul |= has_nul(mechs[i]);
    }
    if (n > KSASL_MAX_MECHANISMS || nul)
        return;
    char *names[KSASL_MAX_MECHANISMS];
    for (size_t i = 0; i < n; i++)
        names[i] = cstr(mechs[i]);
    kwriter_t w;
    kw_init(&w, 64);
    if (ksasl_handshake_resp_write(&w, corr, ec, (const char *const *)names, n) != 0)
        abort();
    /* Not flexible: the encoding is unique, so the bytes must come back. */
    if (w.len - 4 != g_size || memcmp(w.buf + 4, g_data, g_size) != 0)
        abort();
    kw_free(&w);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
}

static void authenticate_resp(int16_t v)
{
    int32_t corr;
    int16_t ec;
    kstr_t msg;
    kbytes_t b;
    int64_t life;
    if (ksasl_authenticate_resp_parse(v, g_data, g_size, &corr, &ec, &msg, &b, &life) != 0)
        return;
    inside(msg.ptr, msg.len);
    inside(b.ptr, b.len);
    if (b.len < 0 || (v == 0 && life != 0))
        abort();
    if (has_nul(msg))
        return;
    char *m = msg.len >= 0 ? cstr(msg) : NULL;
    kwriter_t w;
    kw_init(&w, 64);
    if (ksasl_authenticate_resp_write(&w, v, corr, ec, m, b.ptr, (size_t)b.len, life) != 0)
        abort();
    if (v < 2 && (w.len - 4 != g_size || memcmp(w.buf + 4, g_data, g_size) != 0))
        abort();
    int32_t corr2;
    int16_t ec2;
    kstr_t msg2;
    kbytes_t b2;
    int64_t life2;
    if (ksasl_authenticate_resp_parse(v, w.buf + 4, w.len - 4, &corr2, &ec2, &msg2, &b2, &life2) !=
            0 ||
        corr2 != corr || ec2 != ec || life2 != life || msg2.len != msg.len || b2.len != b.len ||
        (msg.len > 0 && memcmp(msg2.ptr, msg.ptr, (size_t)msg.len) != 0) ||
        (b.len > 0 && memcmp(b2.ptr, b.ptr, (size_t)b.len) != 0))
        abort();
    kw_free(&w);
    free(m);
}

static void plain(void)
{
    kstr_t z, u, p;
    if (ksasl_plain_parse(g_data, g_size, &z, &u, &p) != 0)
        return;
    inside(z.ptr, z.len);
    inside(u.ptr, u.len);
    inside(p.ptr, p.len);
    if (u.len <= 0 || p.len <= 0 || z.len < 0 || has_nul(u) || has_nul(p) || has_nul(z))
        abort();
    if (z.len > 0 && (z.len != u.len || memcmp(z.ptr, u.ptr, (size_t)u.len) != 0))
        abort();
    if ((size_t)z.len + (size_t)u.len + (size_t)p.len + 2 != g_size)
        abort();
}

/* The input as a whole request frame, the way a client connection sees it. */
static void request_frame(void)
{
    kreq_hdr_t h;
    const char *err = NULL;
    if (kproto_parse_request_header(g_data, g_size, &h, &err) != 0)
        return;
    if (h.body_off > g_size)
        abort();
    size_t eoff = 0;
    int valid = kproto_validate_request(&h, g_data, g_size, &eoff, &err) == 0;
    const uint8_t *body = g_data + h.body_off;
    size_t blen = g_size - h.body_off;
    int ours = -1;
    if (h.api_key == KAPI_SaslHandshake) {
        kstr_t m;
        ours = ksasl_handshake_req_parse(body, blen, &m);
    } else if (h.api_key == KAPI_SaslAuthenticate) {
        kbytes_t b;
        ours = ksasl_authenticate_req_parse(h.api_version, body, blen, &b);
    }
    if (ours == 0 && !valid)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_data = data;
    g_size = size;
    handshake_req();
    for (int16_t v = 0; v <= 2; v++) {
        authenticate_req(v);
        authenticate_resp(v);
    }
    handshake_resp();
    plain();
    request_frame();
    return 0;
}
