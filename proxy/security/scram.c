/*
 * scram.c - SCRAM-SHA-256/512 (RFC 5802, RFC 7677): the key derivations,
 * the four messages, and a small state machine per side so that messages
 * are only accepted in order. See scram.h for the exchange.
 *
 * Parsing works on (pointer, end) spans of the received bytes: a message is
 * first checked for length and NUL bytes, then taken apart attribute by
 * attribute ("x=value" separated by ','). Nothing here logs.
 */
#include "scram.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest saslname on the wire: every byte of a SCRAM_MAX_USER name escaped as
 * "=2C". */
#define SASLNAME_MAX (3 * SCRAM_MAX_USER)
/* Longest gs2 header: "n,a=" SASLNAME "," */
#define GS2_MAX (SASLNAME_MAX + 5)
/* base64 of n bytes, with its NUL. */
#define B64_LEN(n) (4 * (((n) + 2) / 3) + 1)

enum scram_state { ST_START, ST_FIRST, ST_SENT, ST_DONE };

struct scram_server {
    scram_mech_t mech;
    enum scram_state state;
    char user[SCRAM_MAX_USER + 1];
    size_t ulen;
    char gs2[GS2_MAX + 1]; /* the gs2 header as received, for the channel binding */
    size_t gs2_len;
    char bare[SCRAM_MAX_MESSAGE + 1]; /* client-first-message-bare */
    size_t bare_len;
    char nonce[2 * SCRAM_MAX_NONCE + 1]; /* cnonce + snonce */
    size_t nonce_len;
    char test_nonce[SCRAM_MAX_NONCE + 1];
    char first[SCRAM_MAX_MESSAGE + 1]; /* server-first-message */
    size_t first_len;
    scram_cred_t cred;
};

struct scram_client {
    scram_mech_t mech;
    enum scram_state state;
    char name[SASLNAME_MAX + 1]; /* the user, saslname-encoded */
    char password[SCRAM_MAX_PASSWORD];
    size_t plen;
    scram_salt_cache_t *cache;
    char nonce[SCRAM_MAX_NONCE + 1]; /* cnonce */
    size_t nonce_len;
    char bare[SCRAM_MAX_MESSAGE + 1]; /* client-first-message-bare */
    size_t bare_len;
    uint8_t server_sig[SCRAM_MAX_DIGEST];
};

/* ---- mechanisms and primitives ---- */

static const char *const mech_names[] = {"SCRAM-SHA-256", "SCRAM-SHA-512"};

static int mech_ok(scram_mech_t m)
{
    return m == SCRAM_SHA_256 || m == SCRAM_SHA_512;
}

int scram_mech_from_name(const char *name, size_t len)
{
    for (int i = 0; name && i < 2; i++)
        if (len == strlen(mech_names[i]) && memcmp(name, mech_names[i], len) == 0)
            return i;
    return -1;
}

const char *scram_mech_name(scram_mech_t m)
{
    return mech_ok(m) ? mech_names[m] : "unknown";
}

size_t scram_digest_len(scram_mech_t m)
{
    return m == SCRAM_SHA_256 ? 32 : m == SCRAM_SHA_512 ? 64 : 0;
}

static const EVP_MD *mech_md(scram_mech_t m)
{
    return m == SCRAM_SHA_256 ? EVP_sha256() : EVP_sha512();
}

/*
 * HMAC-H(key) over the concatenation of n parts into out (digest length
 * bytes). 0 or -1.
 */
static int hmac_parts(scram_mech_t m, const uint8_t *key, size_t klen, const void *const *parts,
                      const size_t *lens, size_t n, uint8_t *out)
{
    char digest[16];
    snprintf(digest, sizeof(digest), "%s", m == SCRAM_SHA_256 ? "SHA256" : "SHA512");
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    int rc = -1;
    if (!ctx || EVP_MAC_init(ctx, key, klen, params) != 1)
        goto done;
    for (size_t i = 0; i < n; i++)
        if (lens[i] && EVP_MAC_update(ctx, parts[i], lens[i]) != 1)
            goto done;
    size_t outl = 0;
    if (EVP_MAC_final(ctx, out, &outl, SCRAM_MAX_DIGEST) == 1 && outl == scram_digest_len(m))
        rc = 0;
done:
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return rc;
}

static int hmac(scram_mech_t m, const uint8_t *key, size_t klen, const void *data, size_t len,
                uint8_t *out)
{
    const void *parts[] = {data};
    size_t lens[] = {len};
    return hmac_parts(m, key, klen, parts, lens, 1, out);
}

static int hash(scram_mech_t m, const uint8_t *in, size_t len, uint8_t *out)
{
    unsigned outl = 0;
    if (EVP_Digest(in, len, out, &outl, mech_md(m), NULL) != 1 || outl != scram_digest_len(m))
        return -1;
    return 0;
}

int scram_salted_password(scram_mech_t m, const char *pw, size_t plen, const uint8_t *salt,
                          size_t salt_len, unsigned iterations, uint8_t *out)
{
    if (!mech_ok(m) || (!pw && plen) || plen > SCRAM_MAX_PASSWORD || (!salt && salt_len) ||
        salt_len > SCRAM_MAX_SALT || iterations == 0 || iterations > SCRAM_MAX_ITERATIONS || !out)
        return -1;
    if (PKCS5_PBKDF2_HMAC(plen ? pw : "", (int)plen, salt_len ? salt : (const uint8_t *)"",
                          (int)salt_len, (int)iterations, mech_md(m), (int)scram_digest_len(m),
                          out) != 1)
        return -1;
    return 0;
}

int scram_cred_from_salted(scram_mech_t m, const uint8_t *salted, size_t len, const uint8_t *salt,
                           size_t salt_len, unsigned iterations, scram_cred_t *out)
{
    if (!out)
        return -1;
    memset(out, 0, sizeof(*out));
    size_t dl = scram_digest_len(m);
    if (dl == 0 || !salted || len != dl || !salt || salt_len == 0 || salt_len > SCRAM_MAX_SALT ||
        iterations < SCRAM_MIN_ITERATIONS || iterations > SCRAM_MAX_ITERATIONS)
        return -1;
    uint8_t client_key[SCRAM_MAX_DIGEST];
    int rc = -1;
    if (hmac(m, salted, len, "Client Key", 10, client_key) == 0 &&
        hash(m, client_key, dl, out->stored_key) == 0 &&
        hmac(m, salted, len, "Server Key", 10, out->server_key) == 0)
        rc = 0;
    OPENSSL_cleanse(client_key, sizeof(client_key));
    if (rc != 0) {
        OPENSSL_cleanse(out, sizeof(*out));
        return -1;
    }
    out->mech = m;
    memcpy(out->salt, salt, salt_len);
    out->salt_len = salt_len;
    out->iterations = iterations;
    return 0;
}

/* ---- base64 (RFC 4648 section 4, padded, canonical) ---- */

static const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t scram_b64_encode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = b64_chars[(v >> 18) & 63];
        out[o++] = b64_chars[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64_chars[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64_chars[v & 63] : '=';
    }
    out[o] = '\0';
    return o;
}

static int b64_value(char c)
{
    const char *p = c ? strchr(b64_chars, c) : NULL;
    return p ? (int)(p - b64_chars) : -1;
}

long scram_b64_decode(const char *in, size_t len, uint8_t *out, size_t max)
{
    if (!in || len == 0 || len % 4 != 0)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int last = i + 4 == len;
        int pad = 0;
        if (last && in[i + 3] == '=')
            pad = in[i + 2] == '=' ? 2 : 1;
        uint32_t v = 0;
        for (int k = 0; k < 4; k++) {
            int d = k >= 4 - pad ? 0 : b64_value(in[i + k]);
            if (d < 0)
                return -1;
            v = v << 6 | (uint32_t)d;
        }
        if ((pad == 1 && (v & 0xff)) || (pad == 2 && (v & 0xffff)))
            return -1;
        size_t nb = 3 - (size_t)pad;
        if (o + nb > max)
            return -1;
        out[o++] = (uint8_t)(v >> 16);
        if (nb > 1)
            out[o++] = (uint8_t)(v >> 8);
        if (nb > 2)
            out[o++] = (uint8_t)v;
    }
    return (long)o;
}

/* ---- message pieces ---- */

/* 1 if c may appear in a nonce: printable ASCII except ','. */
static int nonce_char(char c)
{
    return c >= 0x21 && c <= 0x7e && c != ',';
}

static int nonce_ok(const char *p, size_t len)
{
    if (len == 0 || len > SCRAM_MAX_NONCE)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!nonce_char(p[i]))
            return 0;
    return 1;
}

/* 1 if msg (len bytes) is acceptable as a message at all: bounded, no NUL. */
static int msg_ok(const uint8_t *msg, size_t len)
{
    return msg && len > 0 && len <= SCRAM_MAX_MESSAGE && !memchr(msg, '\0', len);
}

/*
 * Reads attribute "name=value" at *p (value runs to the next ',' or end).
 * Sets the value's start and length and leaves *p on the ',' or at end. 0, or
 * -1 if the attribute is not there.
 */
static int attr(const char **p, const char *end, char name, const char **val, size_t *vlen)
{
    const char *s = *p;
    if (end - s < 2 || s[0] != name || s[1] != '=')
        return -1;
    s += 2;
    const char *c = memchr(s, ',', (size_t)(end - s));
    if (!c)
        c = end;
    *val = s;
    *vlen = (size_t)(c - s);
    *p = c;
    return 0;
}

/* Steps over the ',' at *p; -1 if there is none. */
static int comma(const char **p, const char *end)
{
    if (*p >= end || **p != ',')
        return -1;
    (*p)++;
    return 0;
}

/*
 * What a server may add after its attributes: zero or more ",x=value" with
 * x a letter other than 'm'. 0 if [p, end) is that, else -1.
 */
static int ignorable_extensions(const char *p, const char *end)
{
    while (p < end) {
        if (comma(&p, end) != 0 || end - p < 2 || p[1] != '=')
            return -1;
        char x = p[0];
        if (!((x >= 'a' && x <= 'z') || (x >= 'A' && x <= 'Z')) || x == 'm')
            return -1;
        const char *v;
        size_t vlen;
        if (attr(&p, end, x, &v, &vlen) != 0)
            return -1;
    }
    return 0;
}

/* Decodes a saslname ("=2C" -> ',', "=3D" -> '='; any other '=' is malformed)
 * into out (room for max bytes plus NUL). Returns the length, or -1 (also for
 * an empty name). */
static long saslname_decode(const char *in, size_t len, char *out, size_t max)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '=') {
            if (len - i < 3)
                return -1;
            if (in[i + 1] == '2' && in[i + 2] == 'C')
                c = ',';
            else if (in[i + 1] == '3' && in[i + 2] == 'D')
                c = '=';
            else
                return -1;
            i += 2;
        }
        if (o == max)
            return -1;
        out[o++] = c;
    }
    if (o == 0)
        return -1;
    out[o] = '\0';
    return (long)o;
}

/* Encodes name (len bytes) as a saslname into out (room for 3 * len + 1). */
static void saslname_encode(const char *name, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (name[i] == ',') {
            memcpy(out + o, "=2C", 3);
            o += 3;
        } else if (name[i] == '=') {
            memcpy(out + o, "=3D", 3);
            o += 3;
        } else {
            out[o++] = name[i];
        }
    }
    out[o] = '\0';
}

/* A fresh nonce: SCRAM_NONCE_BYTES random bytes in base64 (printable, no ',').
 */
static int random_nonce(char *out, size_t cap)
{
    uint8_t r[SCRAM_NONCE_BYTES];
    if (cap < B64_LEN(SCRAM_NONCE_BYTES) || RAND_bytes(r, sizeof(r)) != 1)
        return -1;
    scram_b64_encode(r, sizeof(r), out);
    return 0;
}

/* Parses decimal iterations without a leading zero into [MIN, MAX]. 0 or -1. */
static int parse_iterations(const char *p, size_t len, unsigned *out)
{
    if (len == 0 || len > 8 || p[0] == '0')
        return -1;
    unsigned long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (unsigned long)(p[i] - '0');
    }
    if (v < SCRAM_MIN_ITERATIONS || v > SCRAM_MAX_ITERATIONS)
        return -1;
    *out = (unsigned)v;
    return 0;
}

/* Writes s into out (cap bytes) with a NUL; returns the length or -1 if it does
 * not fit. */
static int put(char *out, size_t cap, const char *s, size_t len)
{
    if (!out || len + 1 > cap || len > SCRAM_MAX_MESSAGE)
        return -1;
    memcpy(out, s, len);
    out[len] = '\0';
    return (int)len;
}

/* ---- server side ---- */

scram_server_t *scram_server_new(scram_mech_t m)
{
    if (!mech_ok(m))
        return NULL;
    scram_server_t *s = calloc(1, sizeof(*s));
    if (s)
        s->mech = m;
    return s;
}

void scram_server_free(scram_server_t *s)
{
    if (!s)
        return;
    OPENSSL_cleanse(s, sizeof(*s));
    free(s);
}

void scram_server_set_nonce(scram_server_t *s, const char *nonce)
{
    if (s && nonce && nonce_ok(nonce, strnlen(nonce, SCRAM_MAX_NONCE + 1)))
        snprintf(s->test_nonce, sizeof(s->test_nonce), "%s", nonce);
}

/*
 * The gs2 header: "n," / "y," then an optional "a=authzid", then ','.
 * Decodes the authzid into buf (room for SCRAM_MAX_USER + 1) with its
 * length in *alen (0 when absent) and leaves *p after the header. 0 or -1.
 */
static int parse_gs2(const char **p, const char *end, char *buf, size_t *alen)
{
    const char *s = *p;
    *alen = 0;
    if (end - s < 3 || (s[0] != 'n' && s[0] != 'y') || s[1] != ',')
        return -1; /* 'p' (channel binding) lands here too */
    s += 2;
    if (*s != ',') {
        const char *v;
        size_t vlen;
        if (attr(&s, end, 'a', &v, &vlen) != 0)
            return -1;
        long n = saslname_decode(v, vlen, buf, SCRAM_MAX_USER);
        if (n < 0)
            return -1;
        *alen = (size_t)n;
    }
    if (comma(&s, end) != 0)
        return -1;
    *p = s;
    return 0;
}

int scram_server_client_first(scram_server_t *s, const uint8_t *msg, size_t len, const char **user,
                              size_t *ulen)
{
    if (user)
        *user = NULL;
    if (ulen)
        *ulen = 0;
    if (!s || s->state != ST_START || !msg_ok(msg, len))
        return -1;
    s->state = ST_DONE; /* until it parses */
    const char *p = (const char *)msg, *end = p + len;
    char authz[SCRAM_MAX_USER + 1];
    size_t alen = 0;
    if (parse_gs2(&p, end, authz, &alen) != 0)
        return -1;
    size_t gs2_len = (size_t)(p - (const char *)msg);
    if (gs2_len > GS2_MAX)
        return -1;
    const char *bare = p, *v;
    size_t vlen;
    /* client-first-message-bare: n=saslname,r=nonce and nothing after ("m=" fails
     * here). */
    if (attr(&p, end, 'n', &v, &vlen) != 0)
        return -1;
    long n = saslname_decode(v, vlen, s->user, SCRAM_MAX_USER);
    if (n < 0)
        return -1;
    s->ulen = (size_t)n;
    if (alen && (alen != s->ulen || memcmp(authz, s->user, alen) != 0))
        return -1;
    if (comma(&p, end) != 0 || attr(&p, end, 'r', &v, &vlen) != 0 || p != end || !nonce_ok(v, vlen))
        return -1;
    memcpy(s->gs2, msg, gs2_len);
    s->gs2_len = gs2_len;
    memcpy(s->nonce, v, vlen);
    s->nonce_len = vlen;
    s->bare_len = (size_t)(end - bare);
    memcpy(s->bare, bare, s->bare_len);
    s->state = ST_FIRST;
    if (user)
        *user = s->user;
    if (ulen)
        *ulen = s->ulen;
    return 0;
}

int scram_server_first_message(scram_server_t *s, const scram_cred_t *cred, char *out,
                               size_t outlen)
{
    if (out && outlen)
        out[0] = '\0';
    if (!s || s->state != ST_FIRST || !cred || cred->mech != s->mech || cred->salt_len == 0 ||
        cred->salt_len > SCRAM_MAX_SALT || cred->iterations < SCRAM_MIN_ITERATIONS ||
        cred->iterations > SCRAM_MAX_ITERATIONS)
        return -1;
    char snonce[SCRAM_MAX_NONCE + 1];
    if (s->test_nonce[0])
        snprintf(snonce, sizeof(snonce), "%s", s->test_nonce);
    else if (random_nonce(snonce, sizeof(snonce)) != 0)
        return -1;
    size_t sl = strlen(snonce);
    memcpy(s->nonce + s->nonce_len, snonce, sl);
    s->nonce_len += sl;
    s->nonce[s->nonce_len] = '\0';
    char salt[B64_LEN(SCRAM_MAX_SALT)];
    scram_b64_encode(cred->salt, cred->salt_len, salt);
    int n =
        snprintf(s->first, sizeof(s->first), "r=%s,s=%s,i=%u", s->nonce, salt, cred->iterations);
    s->state = ST_DONE;
    if (n < 0 || (size_t)n >= sizeof(s->first))
        return -1;
    s->first_len = (size_t)n;
    if (put(out, outlen, s->first, s->first_len) < 0)
        return -1;
    s->cred = *cred;
    s->state = ST_SENT;
    return n;
}

/* 1 if the base64 channel binding cb (len chars) is exactly the gs2 header s
 * received. */
static int channel_binding_ok(const scram_server_t *s, const char *cb, size_t len)
{
    uint8_t raw[GS2_MAX + 3];
    long n = scram_b64_decode(cb, len, raw, sizeof(raw));
    return n >= 0 && (size_t)n == s->gs2_len && memcmp(raw, s->gs2, s->gs2_len) == 0;
}

int scram_server_client_final(scram_server_t *s, const uint8_t *msg, size_t len, char *out,
                              size_t outlen)
{
    size_t dl = s ? scram_digest_len(s->mech) : 0;
    if (out && outlen)
        out[0] = '\0';
    if (!s || s->state != ST_SENT || !out || outlen < 3 + B64_LEN(SCRAM_MAX_DIGEST))
        return -1;
    s->state = ST_DONE;
    if (!msg_ok(msg, len))
        return -1;
    const char *p = (const char *)msg, *end = p + len, *cb, *nonce, *proof64;
    size_t cblen, nlen, plen;
    if (attr(&p, end, 'c', &cb, &cblen) != 0 || comma(&p, end) != 0 ||
        attr(&p, end, 'r', &nonce, &nlen) != 0)
        return -1;
    size_t without_proof = (size_t)(p - (const char *)msg);
    if (comma(&p, end) != 0 || attr(&p, end, 'p', &proof64, &plen) != 0 || p != end)
        return -1; /* extensions before p= land here */
    if (!channel_binding_ok(s, cb, cblen))
        return -1;
    uint8_t proof[SCRAM_MAX_DIGEST + 2];
    long pn = scram_b64_decode(proof64, plen, proof, sizeof(proof));
    if (pn < 0 || (size_t)pn != dl) {
        OPENSSL_cleanse(proof, sizeof(proof));
        return -1;
    }
    /* The nonce must END with ours, as Kafka's ScramSaslServer checks
     * (endsWith): librdkafka 2.0 sends its client nonce again in front of the
     * combined one, and its proof covers what it sent. */
    int nonce_good =
        nlen >= s->nonce_len && memcmp(nonce + nlen - s->nonce_len, s->nonce, s->nonce_len) == 0;

    /* ClientKey = proof XOR HMAC(StoredKey, AuthMessage); good if H(ClientKey) ==
     * StoredKey. */
    const void *parts[] = {s->bare, ",", s->first, ",", msg};
    size_t lens[] = {s->bare_len, 1, s->first_len, 1, without_proof};
    uint8_t sig[SCRAM_MAX_DIGEST], key[SCRAM_MAX_DIGEST], stored[SCRAM_MAX_DIGEST];
    int rc = -1;
    if (hmac_parts(s->mech, s->cred.stored_key, dl, parts, lens, 5, sig) != 0)
        goto done;
    for (size_t i = 0; i < dl; i++)
        key[i] = proof[i] ^ sig[i];
    if (hash(s->mech, key, dl, stored) != 0)
        goto done;
    int proof_good = CRYPTO_memcmp(stored, s->cred.stored_key, dl) == 0;
    if (!(proof_good && nonce_good)) {
        rc = put(out, outlen, "e=invalid-proof", 15) < 0 ? -1 : 0;
        goto done;
    }
    if (hmac_parts(s->mech, s->cred.server_key, dl, parts, lens, 5, sig) != 0)
        goto done;
    memcpy(out, "v=", 2);
    scram_b64_encode(sig, dl, out + 2);
    rc = 1;
done:
    OPENSSL_cleanse(proof, sizeof(proof));
    OPENSSL_cleanse(sig, sizeof(sig));
    OPENSSL_cleanse(key, sizeof(key));
    OPENSSL_cleanse(stored, sizeof(stored));
    OPENSSL_cleanse(&s->cred, sizeof(s->cred));
    if (rc < 0)
        out[0] = '\0';
    return rc;
}

/* ---- client side ---- */

scram_client_t *scram_client_new(scram_mech_t m, const char *user, const char *password,
                                 scram_salt_cache_t *cache)
{
    if (!mech_ok(m) || !user || !password)
        return NULL;
    size_t ulen = strnlen(user, SCRAM_MAX_USER + 1);
    size_t plen = strnlen(password, SCRAM_MAX_PASSWORD + 1);
    if (ulen == 0 || ulen > SCRAM_MAX_USER || plen == 0 || plen > SCRAM_MAX_PASSWORD)
        return NULL;
    scram_client_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->mech = m;
    saslname_encode(user, ulen, c->name);
    memcpy(c->password, password, plen);
    c->plen = plen;
    c->cache = cache;
    return c;
}

void scram_client_free(scram_client_t *c)
{
    if (!c)
        return;
    OPENSSL_cleanse(c, sizeof(*c));
    free(c);
}

void scram_client_set_nonce(scram_client_t *c, const char *nonce)
{
    if (c && nonce && nonce_ok(nonce, strnlen(nonce, SCRAM_MAX_NONCE + 1))) {
        snprintf(c->nonce, sizeof(c->nonce), "%s", nonce);
        c->nonce_len = strlen(c->nonce);
    }
}

int scram_client_first_message(scram_client_t *c, char *out, size_t outlen)
{
    if (out && outlen)
        out[0] = '\0';
    if (!c || c->state != ST_START)
        return -1;
    if (c->nonce_len == 0) {
        if (random_nonce(c->nonce, sizeof(c->nonce)) != 0)
            return -1;
        c->nonce_len = strlen(c->nonce);
    }
    int n = snprintf(c->bare, sizeof(c->bare), "n=%s,r=%s", c->name, c->nonce);
    if (n < 0 || (size_t)n >= sizeof(c->bare))
        return -1;
    c->bare_len = (size_t)n;
    if (!out || outlen < (size_t)n + 4)
        return -1;
    memcpy(out, "n,,", 3);
    memcpy(out + 3, c->bare, (size_t)n + 1);
    c->state = ST_FIRST;
    return n + 3;
}

/* SaltedPassword for (salt, iterations): from the cache if it holds them, else
 * PBKDF2 (and the cache is refilled). 0 or -1. */
static int client_salted(scram_client_t *c, const uint8_t *salt, size_t salt_len,
                         unsigned iterations, uint8_t *out)
{
    size_t dl = scram_digest_len(c->mech);
    scram_salt_cache_t *k = c->cache;
    if (k && k->valid && k->mech == c->mech && k->iterations == iterations &&
        k->salt_len == salt_len && memcmp(k->salt, salt, salt_len) == 0) {
        memcpy(out, k->salted, dl);
        return 0;
    }
    if (scram_salted_password(c->mech, c->password, c->plen, salt, salt_len, iterations, out) != 0)
        return -1;
    if (k) {
        OPENSSL_cleanse(k, sizeof(*k));
        k->mech = c->mech;
        memcpy(k->salt, salt, salt_len);
        k->salt_len = salt_len;
        k->iterations = iterations;
        memcpy(k->salted, out, dl);
        k->valid = 1;
    }
    return 0;
}

int scram_client_final_message(scram_client_t *c, const uint8_t *server_first, size_t len,
                               char *out, size_t outlen)
{
    if (out && outlen)
        out[0] = '\0';
    if (!c || c->state != ST_FIRST || !out)
        return -1;
    c->state = ST_DONE;
    if (!msg_ok(server_first, len))
        return -1;
    const char *p = (const char *)server_first, *end = p + len, *nonce, *salt64, *iter;
    size_t nlen, slen, ilen;
    if (attr(&p, end, 'r', &nonce, &nlen) != 0 || comma(&p, end) != 0 ||
        attr(&p, end, 's', &salt64, &slen) != 0 || comma(&p, end) != 0 ||
        attr(&p, end, 'i', &iter, &ilen) != 0 || ignorable_extensions(p, end) != 0)
        return -1; /* "m=" first lands here too */
    /* The nonce must extend ours. */
    if (nlen <= c->nonce_len || nlen > c->nonce_len + SCRAM_MAX_NONCE ||
        memcmp(nonce, c->nonce, c->nonce_len) != 0)
        return -1;
    for (size_t i = 0; i < nlen; i++)
        if (!nonce_char(nonce[i]))
            return -1;
    uint8_t salt[SCRAM_MAX_SALT];
    long sn = scram_b64_decode(salt64, slen, salt, sizeof(salt));
    unsigned iterations = 0;
    if (sn <= 0 || parse_iterations(iter, ilen, &iterations) != 0)
        return -1;

    /* client-final-message-without-proof, then the proof. */
    char msg[SCRAM_MAX_MESSAGE + 1];
    int wp = snprintf(msg, sizeof(msg), "c=biws,r=%.*s", (int)nlen, nonce);
    size_t dl = scram_digest_len(c->mech);
    if (wp < 0 || (size_t)wp + 3 + B64_LEN(dl) > sizeof(msg) ||
        (size_t)wp + 3 + B64_LEN(dl) > outlen)
        return -1;
    uint8_t salted[SCRAM_MAX_DIGEST], ckey[SCRAM_MAX_DIGEST], stored[SCRAM_MAX_DIGEST];
    uint8_t skey[SCRAM_MAX_DIGEST], sig[SCRAM_MAX_DIGEST];
    const void *parts[] = {c->bare, ",", server_first, ",", msg};
    size_t lens[] = {c->bare_len, 1, len, 1, (size_t)wp};
    int rc = -1;
    if (client_salted(c, salt, (size_t)sn, iterations, salted) != 0 ||
        hmac(c->mech, salted, dl, "Client Key", 10, ckey) != 0 ||
        hash(c->mech, ckey, dl, stored) != 0 ||
        hmac_parts(c->mech, stored, dl, parts, lens, 5, sig) != 0 ||
        hmac(c->mech, salted, dl, "Server Key", 10, skey) != 0 ||
        hmac_parts(c->mech, skey, dl, parts, lens, 5, c->server_sig) != 0)
        goto done;
    for (size_t i = 0; i < dl; i++)
        ckey[i] ^= sig[i]; /* ClientProof */
    memcpy(msg + wp, ",p=", 3);
    size_t pl = scram_b64_encode(ckey, dl, msg + wp + 3);
    rc = put(out, outlen, msg, (size_t)wp + 3 + pl);
    if (rc >= 0)
        c->state = ST_SENT;
done:
    OPENSSL_cleanse(salted, sizeof(salted));
    OPENSSL_cleanse(ckey, sizeof(ckey));
    OPENSSL_cleanse(stored, sizeof(stored));
    OPENSSL_cleanse(skey, sizeof(skey));
    OPENSSL_cleanse(sig, sizeof(sig));
    OPENSSL_cleanse(msg, sizeof(msg));
    if (rc < 0) {
        OPENSSL_cleanse(c->server_sig, sizeof(c->server_sig));
        out[0] = '\0';
    }
    return rc;
}

int scram_client_verify_server_final(scram_client_t *c, const uint8_t *msg, size_t len)
{
    if (!c || c->state != ST_SENT)
        return -1;
    c->state = ST_DONE;
    if (!msg_ok(msg, len))
        return -1;
    const char *p = (const char *)msg, *end = p + len, *v;
    size_t vlen;
    if (attr(&p, end, 'v', &v, &vlen) != 0 || ignorable_extensions(p, end) != 0)
        return -1; /* "e=..." lands here */
    size_t dl = scram_digest_len(c->mech);
    uint8_t sig[SCRAM_MAX_DIGEST + 2];
    long n = scram_b64_decode(v, vlen, sig, sizeof(sig));
    int ok = n >= 0 && (size_t)n == dl && CRYPTO_memcmp(sig, c->server_sig, dl) == 0;
    OPENSSL_cleanse(sig, sizeof(sig));
    OPENSSL_cleanse(c->server_sig, sizeof(c->server_sig));
    return ok ? 0 : -1;
}
