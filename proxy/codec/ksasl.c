/*
 * ksasl.c - SaslHandshake / SaslAuthenticate codec and SASL/PLAIN. See
 * ksasl.h for the field layout. Arguments are checked before anything is
 * written, so a refused call leaves the writer as it was.
 */
#include "ksasl.h"

#include "kproto.h"

#include <string.h>

static int auth_version_ok(int16_t ver)
{
    return ver >= 0 && ver <= KSASL_AUTHENTICATE_MAX_VERSION;
}

static int auth_flex(int16_t ver)
{
    return ver >= KSASL_AUTHENTICATE_FLEX_VERSION;
}

/* Length of s if it fits an INT16 STRING, else -1 (NULL s too). */
static int32_t str_len16(const char *s)
{
    if (!s)
        return -1;
    size_t n = strnlen(s, (size_t)INT16_MAX + 1);
    return n > INT16_MAX ? -1 : (int32_t)n;
}

/* ---- server side: parse requests, write responses ---- */

int ksasl_handshake_req_parse(const uint8_t *body, size_t len, kstr_t *mechanism)
{
    *mechanism = (kstr_t){NULL, -1};
    kreader_t r;
    kr_init(&r, body, len);
    kstr_t m = kr_str_nn(&r, 0);
    kr_expect_end(&r);
    if (!kr_ok(&r))
        return -1;
    *mechanism = m;
    return 0;
}

int ksasl_handshake_resp_write(kwriter_t *w, int32_t corr, int16_t error_code,
                               const char *const *mechs, size_t n)
{
    if (n > KSASL_MAX_MECHANISMS || (n > 0 && !mechs))
        return -1;
    for (size_t i = 0; i < n; i++)
        if (str_len16(mechs[i]) < 0)
            return -1;
    size_t start = w->len;
    kw_i32(w, 0); /* size, patched below */
    kw_i32(w, corr);
    kw_i16(w, error_code);
    kw_array(w, 0, (int32_t)n);
    for (size_t i = 0; i < n; i++)
        kw_str(w, 0, mechs[i], str_len16(mechs[i]));
    return kw_finish_frame(w, start);
}

int ksasl_authenticate_req_parse(int16_t ver, const uint8_t *body, size_t len, kbytes_t *auth_bytes)
{
    *auth_bytes = (kbytes_t){NULL, -1};
    if (!auth_version_ok(ver))
        return -1;
    int flex = auth_flex(ver);
    kreader_t r;
    kr_init(&r, body, len);
    kbytes_t b = kr_bytes(&r, flex);
    if (kr_ok(&r) && b.len < 0)
        kr_fail(&r, KR_ENULL);
    kr_tags_if(&r, flex);
    kr_expect_end(&r);
    if (!kr_ok(&r))
        return -1;
    *auth_bytes = b;
    return 0;
}

int ksasl_authenticate_resp_write(kwriter_t *w, int16_t ver, int32_t corr, int16_t error_code,
                                  const char *error_message, const uint8_t *auth, size_t alen,
                                  int64_t session_lifetime_ms)
{
    if (!auth_version_ok(ver) || alen > INT32_MAX || (alen > 0 && !auth))
        return -1;
    int32_t mlen = -1;
    if (error_message && (mlen = str_len16(error_message)) < 0)
        return -1;
    int flex = auth_flex(ver);
    size_t start = w->len;
    kw_i32(w, 0);
    kw_i32(w, corr);
    if (flex)
        kw_tags_empty(w); /* response header v1 */
    kw_i16(w, error_code);
    kw_str(w, flex, error_message, mlen);
    kw_bytes(w, flex, auth, (int32_t)alen);
    if (ver >= 1)
        kw_i64(w, session_lifetime_ms);
    if (flex)
        kw_tags_empty(w);
    return kw_finish_frame(w, start);
}

/* ---- client side: write requests, parse responses ---- */

/* client_id as a kstr for the header: NULL (or over-long) is written as null.
 */
static kstr_t client_id_kstr(const char *client_id)
{
    int32_t n = str_len16(client_id);
    return n < 0 ? (kstr_t){NULL, -1} : (kstr_t){client_id, n};
}

int ksasl_handshake_req_write(kwriter_t *w, int16_t ver, int32_t corr, const char *client_id,
                              const char *mechanism)
{
    int32_t mlen = str_len16(mechanism);
    if (ver < 0 || ver > KSASL_HANDSHAKE_MAX_VERSION || mlen < 0)
        return -1;
    size_t start = w->len;
    kw_i32(w, 0);
    kproto_write_request_header(w, KAPI_SaslHandshake, ver, corr, client_id_kstr(client_id));
    kw_str(w, 0, mechanism, mlen);
    return kw_finish_frame(w, start);
}

int ksasl_authenticate_req_write(kwriter_t *w, int16_t ver, int32_t corr, const char *client_id,
                                 const uint8_t *auth, size_t alen)
{
    if (!auth_version_ok(ver) || alen > INT32_MAX || (alen > 0 && !auth))
        return -1;
    int flex = auth_flex(ver);
    size_t start = w->len;
    kw_i32(w, 0);
    kproto_write_request_header(w, KAPI_SaslAuthenticate, ver, corr, client_id_kstr(client_id));
    kw_bytes(w, flex, auth, (int32_t)alen);
    if (flex)
        kw_tags_empty(w);
    return kw_finish_frame(w, start);
}

int ksasl_handshake_resp_parse(const uint8_t *frame, size_t len, int32_t *corr, int16_t *error_code,
                               kstr_t *mechs, size_t cap, size_t *n)
{
    *corr = 0;
    *error_code = 0;
    *n = 0;
    kreader_t r;
    kr_init(&r, frame, len);
    int32_t c = kr_i32(&r);
    int16_t ec = kr_i16(&r);
    int32_t count = kr_array(&r, 0, 2); /* each name takes >= 2 bytes */
    if (kr_ok(&r) && count < 0)
        kr_fail(&r, KR_ENULL);
    for (int32_t i = 0; i < count && kr_ok(&r); i++) {
        kstr_t m = kr_str_nn(&r, 0);
        if ((size_t)i < cap && mechs)
            mechs[i] = m;
    }
    kr_expect_end(&r);
    if (!kr_ok(&r))
        return -1;
    *corr = c;
    *error_code = ec;
    *n = (size_t)count;
    return 0;
}

int ksasl_authenticate_resp_parse(int16_t ver, const uint8_t *frame, size_t len, int32_t *corr,
                                  int16_t *error_code, kstr_t *error_message, kbytes_t *auth_bytes,
                                  int64_t *session_lifetime_ms)
{
    *corr = 0;
    *error_code = 0;
    *error_message = (kstr_t){NULL, -1};
    *auth_bytes = (kbytes_t){NULL, -1};
    *session_lifetime_ms = 0;
    if (!auth_version_ok(ver))
        return -1;
    int flex = auth_flex(ver);
    kreader_t r;
    kr_init(&r, frame, len);
    int32_t c = kr_i32(&r);
    kr_tags_if(&r, flex); /* response header v1 */
    int16_t ec = kr_i16(&r);
    kstr_t msg = kr_str(&r, flex);
    kbytes_t b = kr_bytes(&r, flex);
    if (kr_ok(&r) && b.len < 0)
        kr_fail(&r, KR_ENULL);
    int64_t life = ver >= 1 ? kr_i64(&r) : 0;
    kr_tags_if(&r, flex);
    kr_expect_end(&r);
    if (!kr_ok(&r))
        return -1;
    *corr = c;
    *error_code = ec;
    *error_message = msg;
    *auth_bytes = b;
    *session_lifetime_ms = life;
    return 0;
}

/* ---- SASL/PLAIN ---- */

int ksasl_plain_parse(const uint8_t *tok, size_t len, kstr_t *authzid, kstr_t *user,
                      kstr_t *password)
{
    *authzid = *user = *password = (kstr_t){NULL, -1};
    if (!tok || len > INT32_MAX)
        return -1;
    const uint8_t *end = tok + len;
    const uint8_t *nul1 = memchr(tok, '\0', len);
    if (!nul1)
        return -1;
    const uint8_t *nul2 = memchr(nul1 + 1, '\0', (size_t)(end - nul1 - 1));
    if (!nul2 || memchr(nul2 + 1, '\0', (size_t)(end - nul2 - 1)))
        return -1;
    kstr_t z = {(const char *)tok, (int32_t)(nul1 - tok)};
    kstr_t u = {(const char *)nul1 + 1, (int32_t)(nul2 - nul1 - 1)};
    kstr_t p = {(const char *)nul2 + 1, (int32_t)(end - nul2 - 1)};
    if (u.len == 0 || p.len == 0)
        return -1;
    if (z.len > 0 && (z.len != u.len || memcmp(z.ptr, u.ptr, (size_t)u.len) != 0))
        return -1;
    *authzid = z;
    *user = u;
    *password = p;
    return 0;
}

int ksasl_plain_write(kwriter_t *w, const char *user, const char *password)
{
    if (!user || !password || !*user || !*password)
        return -1;
    size_t ulen = strlen(user), plen = strlen(password);
    kw_i8(w, 0);
    kw_raw(w, user, ulen);
    kw_i8(w, 0);
    kw_raw(w, password, plen);
    return w->err ? -1 : 0;
}
