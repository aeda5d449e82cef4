/*
 * users.c - the users file: parse, keep sorted, verify in constant time,
 * and hand out SCRAM credentials (real or fake).
 *
 * The format and the limits are in users.h. The file is read whole (it is
 * small and bounded), cut into lines, and each line is checked completely
 * before the next: name, then the four '$' fields of each hash. Entries are
 * then sorted by name so that a duplicate is found next to its twin and a
 * lookup is a binary search.
 */
#include "users.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SALT_NEW 16 /* bytes of salt users_hash_password makes */
#define SALT_MIN 16
#define SALT_MAX SCRAM_MAX_SALT
#define DK_MAX SCRAM_MAX_DIGEST

/* One kind of hash field: its prefix, derived key length and mechanism, and the parts of the
 * messages that depend on it. */
struct hash_kind {
    const char *prefix;
    size_t dk_len;
    scram_mech_t mech;
    const char *bad_prefix; /* follows the field's label */
    const char *bad_dk;
};

static const struct hash_kind kind256 = {
    "pbkdf2-sha256$", 32, SCRAM_SHA_256,
    " does not start with \"pbkdf2-sha256$\" (make one with eosproxy passwd)",
    ": derived key is not canonical base64 of 32 bytes"};
static const struct hash_kind kind512 = {
    "pbkdf2-sha512$", 64, SCRAM_SHA_512,
    " does not start with \"pbkdf2-sha512$\" (make one with eosproxy passwd)",
    ": derived key is not canonical base64 of 64 bytes"};

/* One parsed hash field. dk holds kind->dk_len bytes. */
struct pbkdf2_hash {
    unsigned iterations;
    uint8_t salt[SALT_MAX];
    size_t salt_len;
    uint8_t dk[DK_MAX];
};

/* One user of the file. name is NUL-terminated; line is for error messages. h512 is valid
 * when has512. */
struct user_entry {
    char name[USERS_NAME_MAX + 1];
    size_t name_len;
    struct pbkdf2_hash h256;
    int has512;
    struct pbkdf2_hash h512;
    unsigned line;
};

/* v is sorted by name; dummy stands in for unknown users in users_verify; fake_iterations are
 * the counts fake SCRAM credentials carry, per scram_mech_t. */
struct users {
    struct user_entry *v;
    size_t n;
    struct user_entry dummy;
    unsigned fake_iterations[2];
    char warning[256];
};

/* ---- names and hashes ---- */

int users_name_valid(const char *name, size_t len)
{
    if (!name || len == 0 || len > USERS_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '@' || c == '-';
        if (!ok)
            return 0;
    }
    return 1;
}

int users_pbkdf2_sha256(const char *password, size_t plen, const uint8_t *salt, size_t saltlen,
                        unsigned iterations, uint8_t *out, size_t outlen)
{
    if (plen > USERS_PASSWORD_MAX || saltlen > SALT_MAX || iterations == 0 ||
        iterations > USERS_MAX_ITERATIONS || outlen == 0 || outlen > 1024)
        return -1;
    if (PKCS5_PBKDF2_HMAC(plen ? password : "", (int)plen, salt, (int)saltlen, (int)iterations,
                          EVP_sha256(), (int)outlen, out) != 1)
        return -1;
    return 0;
}

/* 1 if password is acceptable input for hashing: 1..USERS_PASSWORD_MAX bytes, no NUL. */
static int password_ok(const char *password, size_t plen)
{
    return password && plen > 0 && plen <= USERS_PASSWORD_MAX && !memchr(password, '\0', plen);
}

/*
 * Writes one hash field of kind k for password into out (NUL-terminated) with a fresh salt.
 * iterations already defaulted. 0, or -1 with out "".
 */
static int hash_field(const struct hash_kind *k, const char *password, size_t plen,
                      unsigned iterations, char *out, size_t outlen)
{
    out[0] = '\0';
    if (!password_ok(password, plen) || iterations < USERS_MIN_ITERATIONS ||
        iterations > USERS_MAX_ITERATIONS)
        return -1;
    uint8_t salt[SALT_NEW], dk[DK_MAX];
    char salt_b64[4 * ((SALT_NEW + 2) / 3) + 1], dk_b64[4 * ((DK_MAX + 2) / 3) + 1];
    int rc = -1;
    if (RAND_bytes(salt, sizeof(salt)) != 1)
        goto done;
    if (scram_salted_password(k->mech, password, plen, salt, sizeof(salt), iterations, dk) != 0)
        goto done;
    scram_b64_encode(salt, sizeof(salt), salt_b64);
    scram_b64_encode(dk, k->dk_len, dk_b64);
    int n = snprintf(out, outlen, "%s%u$%s$%s", k->prefix, iterations, salt_b64, dk_b64);
    if (n > 0 && (size_t)n < outlen)
        rc = 0;
    else
        out[0] = '\0';
done:
    OPENSSL_cleanse(dk, sizeof(dk));
    OPENSSL_cleanse(dk_b64, sizeof(dk_b64));
    return rc;
}

int users_hash_password(const char *password, size_t plen, unsigned iterations, char *out,
                        size_t outlen)
{
    if (!out || outlen == 0)
        return -1;
    return hash_field(&kind256, password, plen, iterations ? iterations : USERS_DEFAULT_ITERATIONS,
                      out, outlen);
}

int users_hash_entry(const char *password, size_t plen, unsigned iterations, char *out,
                     size_t outlen)
{
    if (!out || outlen == 0)
        return -1;
    out[0] = '\0';
    if (iterations == 0)
        iterations = USERS_DEFAULT_ITERATIONS;
    if (hash_field(&kind256, password, plen, iterations, out, outlen) != 0)
        return -1;
    size_t n = strlen(out);
    if (n + 2 > outlen ||
        hash_field(&kind512, password, plen, iterations, out + n + 1, outlen - n - 1) != 0) {
        OPENSSL_cleanse(out, outlen);
        out[0] = '\0';
        return -1;
    }
    out[n] = ':';
    return 0;
}

/*
 * Parses the hash field s (len bytes) of kind k into h. Returns NULL, or
 * what is wrong as a constant string that never quotes s and that follows
 * the field's label ("hash", "second hash") directly.
 */
static const char *parse_hash(const struct hash_kind *k, const char *s, size_t len,
                              struct pbkdf2_hash *h)
{
    size_t plen = strlen(k->prefix);
    if (len < plen || memcmp(s, k->prefix, plen) != 0)
        return k->bad_prefix;
    const char *p = s + plen, *end = s + len;

    /* ITERATIONS$ */
    const char *d = memchr(p, '$', (size_t)(end - p));
    if (!d || d == p)
        return ": missing iteration count";
    if (*p == '0')
        return ": iteration count has a leading zero";
    if (d - p > 9)
        return ": iteration count out of range 10000..10000000";
    unsigned long it = 0;
    for (const char *q = p; q < d; q++) {
        if (*q < '0' || *q > '9')
            return ": iteration count is not a decimal number";
        it = it * 10 + (unsigned long)(*q - '0');
    }
    if (it < USERS_MIN_ITERATIONS || it > USERS_MAX_ITERATIONS)
        return ": iteration count out of range 10000..10000000";
    h->iterations = (unsigned)it;

    /* SALT_B64$ */
    p = d + 1;
    d = memchr(p, '$', (size_t)(end - p));
    if (!d)
        return ": missing salt or hash field";
    long n = scram_b64_decode(p, (size_t)(d - p), h->salt, sizeof(h->salt));
    if (n < 0)
        return ": salt is not canonical base64 of at most 64 bytes";
    if (n < SALT_MIN)
        return ": salt shorter than 16 bytes";
    h->salt_len = (size_t)n;

    /* HASH_B64 */
    p = d + 1;
    if (memchr(p, '$', (size_t)(end - p)))
        return ": too many '$' fields";
    uint8_t tmp[DK_MAX + 3];
    n = scram_b64_decode(p, (size_t)(end - p), tmp, sizeof(tmp));
    if (n < 0 || (size_t)n != k->dk_len) {
        OPENSSL_cleanse(tmp, sizeof(tmp));
        return k->bad_dk;
    }
    memcpy(h->dk, tmp, k->dk_len);
    OPENSSL_cleanse(tmp, sizeof(tmp));
    return NULL;
}

/* ---- fake SCRAM credentials ---- */

/* A per-process secret from which fake salts are derived, so that an unknown name gets the
 * same salt on every attempt and across reloads, like a real user, but one nobody can predict. */
static pthread_once_t fake_once = PTHREAD_ONCE_INIT;
static uint8_t fake_secret[32];
static int fake_secret_ok;

static void fake_secret_make(void)
{
    fake_secret_ok = RAND_bytes(fake_secret, sizeof(fake_secret)) == 1;
}

/* 0 once the secret exists, -1 if RAND_bytes failed. */
static int fake_secret_init(void)
{
    pthread_once(&fake_once, fake_secret_make);
    return fake_secret_ok ? 0 : -1;
}

/* SALT_NEW bytes of HMAC-SHA256(secret, mech byte || name) into salt. 0 or -1. */
static int fake_salt(scram_mech_t m, const char *name, size_t len, uint8_t *salt)
{
    uint8_t buf[1 + USERS_LINE_MAX], mac[32];
    size_t n = len < USERS_LINE_MAX ? len : USERS_LINE_MAX; /* longer names share a salt */
    buf[0] = (uint8_t)m;
    if (n)
        memcpy(buf + 1, name, n);
    size_t outl = 0;
    if (fake_secret_init() != 0 ||
        !EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, fake_secret, sizeof(fake_secret), buf, n + 1,
                   mac, sizeof(mac), &outl) ||
        outl != sizeof(mac))
        return -1;
    memcpy(salt, mac, SALT_NEW);
    return 0;
}

/* ---- the file ---- */

static int entry_cmp(const void *a, const void *b)
{
    const struct user_entry *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    return x->line < y->line ? -1 : x->line > y->line;
}

static int cmp_iterations(const void *a, const void *b)
{
    unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
    return x < y ? -1 : x > y;
}

/*
 * The iteration count most entries use (the smallest on a tie) for their
 * SHA-256 field (sha512 0) or their SHA-512 field (sha512 1, entries that
 * have one), or dflt when no entry counts: the dummy costs what a typical
 * user costs, and a fake SCRAM credential looks like a typical real one.
 */
static int common_iterations(const struct users *u, int sha512, unsigned dflt, unsigned *out)
{
    *out = dflt;
    if (u->n == 0)
        return 0;
    unsigned *it = malloc(u->n * sizeof(*it));
    if (!it)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < u->n; i++) {
        if (!sha512)
            it[n++] = u->v[i].h256.iterations;
        else if (u->v[i].has512)
            it[n++] = u->v[i].h512.iterations;
    }
    if (n > 1)
        qsort(it, n, sizeof(*it), cmp_iterations);
    size_t best = 0, run = 0;
    for (size_t i = 0; i < n; i++) {
        run = i > 0 && it[i] == it[i - 1] ? run + 1 : 1;
        if (run > best) {
            best = run;
            *out = it[i];
        }
    }
    free(it);
    return 0;
}

/*
 * Reads the whole regular file at path into a NUL-terminated malloc'd
 * buffer (*len bytes). Fills u->warning if group or others have access.
 */
static char *read_file(const char *path, size_t *len, struct users *u, char *err, size_t errlen)
{
    /* O_NONBLOCK: opening a FIFO must not hang; regular files ignore it. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        set_err(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    char *buf = NULL;
    if (fstat(fd, &st) != 0) {
        set_err(err, errlen, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        set_err(err, errlen, "%s: not a regular file", path);
        goto fail;
    }
    if (st.st_size > USERS_FILE_MAX) {
        set_err(err, errlen, "%s: larger than %d bytes", path, USERS_FILE_MAX);
        goto fail;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO))
        snprintf(u->warning, sizeof(u->warning),
                 "%s: mode %04o lets group or others read or write it; chmod 600 it", path,
                 (unsigned)(st.st_mode & 07777));
    buf = malloc(USERS_FILE_MAX + 2);
    if (!buf) {
        set_err(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    /* Read to EOF, not st_size: the file may grow; one byte past the cap says so. */
    size_t n = 0;
    while (n < (size_t)USERS_FILE_MAX + 1) {
        ssize_t r = read(fd, buf + n, (size_t)USERS_FILE_MAX + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            set_err(err, errlen, "%s: %s", path, strerror(errno));
            goto fail;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n > USERS_FILE_MAX) {
        set_err(err, errlen, "%s: larger than %d bytes", path, USERS_FILE_MAX);
        goto fail;
    }
    buf[n] = '\0';
    *len = n;
    close(fd);
    return buf;
fail:
    if (buf) {
        OPENSSL_cleanse(buf, USERS_FILE_MAX + 2);
        free(buf);
    }
    close(fd);
    return NULL;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/*
 * Parses one line (s, len bytes, no '\n') numbered lineno into u, or
 * returns -1 with err set.
 */
static int parse_line(struct users *u, size_t *cap, const char *path, unsigned lineno,
                      const char *s, size_t len, char *err, size_t errlen)
{
    if (len > USERS_LINE_MAX) {
        set_err(err, errlen, "%s:%u: line longer than %d bytes", path, lineno, USERS_LINE_MAX);
        return -1;
    }
    if (memchr(s, '\0', len)) {
        set_err(err, errlen, "%s:%u: NUL byte in line", path, lineno);
        return -1;
    }
    if (len > 0 && s[len - 1] == '\r')
        len--;
    while (len > 0 && is_blank(*s)) {
        s++;
        len--;
    }
    while (len > 0 && is_blank(s[len - 1]))
        len--;
    if (len == 0 || s[0] == '#')
        return 0;

    const char *colon = memchr(s, ':', len);
    if (!colon) {
        set_err(err, errlen, "%s:%u: expected user:hash", path, lineno);
        return -1;
    }
    size_t nlen = (size_t)(colon - s);
    if (!users_name_valid(s, nlen)) {
        set_err(err, errlen, "%s:%u: bad user name (1..%d of A-Z a-z 0-9 . _ @ -)", path, lineno,
                USERS_NAME_MAX);
        return -1;
    }
    if (u->n == USERS_MAX) {
        set_err(err, errlen, "%s:%u: more than %d users", path, lineno, USERS_MAX);
        return -1;
    }
    if (u->n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        if (ncap > USERS_MAX)
            ncap = USERS_MAX;
        struct user_entry *nv = calloc(ncap, sizeof(*nv));
        if (!nv) {
            set_err(err, errlen, "%s:%u: out of memory", path, lineno);
            return -1;
        }
        /* Copy by hand instead of realloc so the old block can be wiped. */
        if (u->n) {
            memcpy(nv, u->v, u->n * sizeof(*nv));
            OPENSSL_cleanse(u->v, u->n * sizeof(*nv));
        }
        free(u->v);
        u->v = nv;
        *cap = ncap;
    }
    struct user_entry *e = &u->v[u->n];
    memset(e, 0, sizeof(*e));
    memcpy(e->name, s, nlen);
    e->name[nlen] = '\0';
    e->name_len = nlen;
    e->line = lineno;
    /* hash[:hash512]; ':' is in neither field's alphabet. */
    const char *f1 = colon + 1, *end = s + len;
    const char *colon2 = memchr(f1, ':', (size_t)(end - f1));
    const char *label = "hash", *what = NULL;
    if (colon2 && memchr(colon2 + 1, ':', (size_t)(end - colon2 - 1))) {
        label = "";
        what = "too many ':' fields";
    }
    if (!what)
        what = parse_hash(&kind256, f1, (size_t)((colon2 ? colon2 : end) - f1), &e->h256);
    if (!what && colon2) {
        label = "second hash";
        what = parse_hash(&kind512, colon2 + 1, (size_t)(end - colon2 - 1), &e->h512);
        e->has512 = 1;
    }
    if (what) {
        set_err(err, errlen, "%s:%u: user %s: %s%s", path, lineno, e->name, label, what);
        OPENSSL_cleanse(e, sizeof(*e));
        return -1;
    }
    u->n++;
    return 0;
}

users_t *users_load(const char *path, char *err, size_t errlen)
{
    set_err(err, errlen, "%s", "");
    if (!path) {
        set_err(err, errlen, "users file: no path");
        return NULL;
    }
    struct users *u = calloc(1, sizeof(*u));
    if (!u) {
        set_err(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    size_t len = 0, cap = 0;
    char *buf = read_file(path, &len, u, err, errlen);
    if (!buf)
        goto fail;

    /* Cut into lines; a last line without '\n' counts. */
    unsigned lineno = 0;
    for (size_t pos = 0; pos < len;) {
        const char *s = buf + pos;
        const char *nl = memchr(s, '\n', len - pos);
        size_t l = nl ? (size_t)(nl - s) : len - pos;
        lineno++;
        if (parse_line(u, &cap, path, lineno, s, l, err, errlen) != 0)
            goto fail;
        pos += l + 1;
    }
    OPENSSL_cleanse(buf, len);
    free(buf);
    buf = NULL;

    /* Sort; a duplicate sits next to its first occurrence. Report the earliest second one. */
    if (u->n > 1)
        qsort(u->v, u->n, sizeof(*u->v), entry_cmp);
    const struct user_entry *dup = NULL, *first = NULL;
    for (size_t i = 1; i < u->n; i++) {
        if (strcmp(u->v[i].name, u->v[i - 1].name) == 0 && (!dup || u->v[i].line < dup->line)) {
            dup = &u->v[i];
            first = &u->v[i - 1];
            while (first > u->v && strcmp((first - 1)->name, dup->name) == 0)
                first--;
        }
    }
    if (dup) {
        set_err(err, errlen, "%s:%u: duplicate user %s (first on line %u)", path, dup->line,
                dup->name, first->line);
        goto fail;
    }

    /* The dummy: random salt and hash no password is known to match. */
    unsigned it256, it512;
    if (common_iterations(u, 0, USERS_DEFAULT_ITERATIONS, &it256) != 0 ||
        common_iterations(u, 1, it256, &it512) != 0) {
        set_err(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    u->dummy.h256.iterations = it256;
    u->fake_iterations[SCRAM_SHA_256] = it256;
    u->fake_iterations[SCRAM_SHA_512] = it512;
    u->dummy.h256.salt_len = SALT_NEW;
    if (RAND_bytes(u->dummy.h256.salt, SALT_NEW) != 1 ||
        RAND_bytes(u->dummy.h256.dk, kind256.dk_len) != 1 || fake_secret_init() != 0) {
        set_err(err, errlen, "%s: RAND_bytes failed", path);
        goto fail;
    }
    return u;
fail:
    if (buf) {
        OPENSSL_cleanse(buf, len);
        free(buf);
    }
    users_free(u);
    return NULL;
}

void users_free(users_t *u)
{
    if (!u)
        return;
    if (u->v) {
        OPENSSL_cleanse(u->v, u->n * sizeof(*u->v));
        free(u->v);
    }
    OPENSSL_cleanse(u, sizeof(*u));
    free(u);
}

size_t users_count(const users_t *u)
{
    return u ? u->n : 0;
}

const char *users_warning(const users_t *u)
{
    return u && u->warning[0] ? u->warning : NULL;
}

/* The entry for name (len bytes), or NULL. */
static const struct user_entry *find(const users_t *u, const char *name, size_t len)
{
    size_t lo = 0, hi = u->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct user_entry *e = &u->v[mid];
        size_t m = e->name_len < len ? e->name_len : len;
        int c = memcmp(e->name, name, m);
        if (c == 0)
            c = e->name_len < len ? -1 : e->name_len > len;
        if (c == 0)
            return e;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

int users_verify(const users_t *u, const char *user, size_t ulen, const char *password, size_t plen)
{
    if (!u)
        return 0;
    const struct user_entry *e = users_name_valid(user, ulen) ? find(u, user, ulen) : NULL;
    const struct user_entry *t = e ? e : &u->dummy;
    int pw_ok = password_ok(password, plen);
    /* A rejected password still costs one run, over an empty password. */
    const char *p = pw_ok ? password : "";
    size_t pl = pw_ok ? plen : 0;
    const struct pbkdf2_hash *h = &t->h256;
    uint8_t dk[32];
    int match = 0;
    if (users_pbkdf2_sha256(p, pl, h->salt, h->salt_len, h->iterations, dk, sizeof(dk)) == 0)
        match = CRYPTO_memcmp(dk, h->dk, sizeof(dk)) == 0;
    OPENSSL_cleanse(dk, sizeof(dk));
    return match && e != NULL && pw_ok;
}

int users_scram_cred(const users_t *u, const char *user, size_t ulen, scram_mech_t m,
                     scram_cred_t *out)
{
    if (!out)
        return -1;
    memset(out, 0, sizeof(*out));
    if (!u || (m != SCRAM_SHA_256 && m != SCRAM_SHA_512) || (!user && ulen))
        return -1;
    const struct user_entry *e = users_name_valid(user, ulen) ? find(u, user, ulen) : NULL;
    const struct pbkdf2_hash *h = !e                   ? NULL
                                  : m == SCRAM_SHA_256 ? &e->h256
                                  : e->has512          ? &e->h512
                                                       : NULL;
    if (h)
        return scram_cred_from_salted(m, h->dk, scram_digest_len(m), h->salt, h->salt_len,
                                      h->iterations, out) == 0
                   ? 1
                   : -1;
    /* Fake: stable salt, the usual count, keys that match no password. */
    out->mech = m;
    out->salt_len = SALT_NEW;
    out->iterations = u->fake_iterations[m];
    size_t dl = scram_digest_len(m);
    if (fake_salt(m, user, ulen, out->salt) != 0 || RAND_bytes(out->stored_key, (int)dl) != 1 ||
        RAND_bytes(out->server_key, (int)dl) != 1) {
        OPENSSL_cleanse(out, sizeof(*out));
        return -1;
    }
    return 0;
}
