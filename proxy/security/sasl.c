/*
 * sasl.c - the server side of SASL for one client connection (see sasl.h).
 */
#include "sasl.h"

#include "authworker.h"
#include "kbuf.h"
#include "kerror.h"
#include "ksasl.h"
#include "metrics.h"
#include "scram.h"
#include "users.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#define FAIL_SOURCES 256       /* addresses the failure delay remembers */
#define FAIL_FORGET_MS 60000   /* a source without failures this long starts over */
#define FAIL_BASE_DELAY_MS 100 /* second failure in a row */
#define FAIL_MAX_DELAY_MS 5000

static const char MSG_BAD_CREDENTIALS[] = "Authentication failed: Invalid username or password";
static const char MSG_SCRAM_FAILED[] = "Authentication failed during authentication due to "
                                       "invalid credentials with SASL mechanism SCRAM";
static const char MSG_MALFORMED[] = "Authentication failed: malformed SASL message";
static const char MSG_BUSY[] = "Authentication failed: too many logins in progress, retry";
static const char MSG_STATE[] = "Authentication failed: unexpected SASL message";

enum stage {
    ST_HANDSHAKE = 0, /* no mechanism chosen yet */
    ST_FIRST,         /* waiting for the first token */
    ST_SCRAM_FINAL,   /* SCRAM: waiting for client-final */
    ST_PLAIN_CHECK,   /* PLAIN: the worker is checking */
    ST_DONE,
    ST_FAILED,
};

struct sasl_session {
    struct authworker *w;
    unsigned mechs;
    sasl_mech_t mech;
    int stage;
    uint64_t job_id;
    scram_server_t *scram;
    int scram_real; /* the SCRAM credential belongs to a real user */
    char user[USERS_NAME_MAX + 1];
    char peer[64];
};

sasl_session_t *sasl_session_new(struct authworker *w, unsigned mechs, const char *peer_ip,
                                 uint64_t job_id)
{
    sasl_session_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->w = w;
    s->mechs = mechs;
    s->job_id = job_id;
    snprintf(s->peer, sizeof(s->peer), "%s", peer_ip ? peer_ip : "");
    return s;
}

void sasl_session_free(sasl_session_t *s)
{
    if (!s)
        return;
    scram_server_free(s->scram);
    OPENSSL_cleanse(s, sizeof(*s));
    free(s);
}

size_t sasl_session_mechanisms(const sasl_session_t *s, const char **out, size_t cap)
{
    size_t n = 0;
    for (int m = SASL_PLAIN; m <= SASL_SCRAM_SHA_512 && n < cap; m++) {
        if (s->mechs & SASL_MECH_BIT(m))
            out[n++] = config_sasl_mech_name((sasl_mech_t)m);
    }
    return n;
}

int16_t sasl_session_handshake(sasl_session_t *s, const char *mech, size_t len)
{
    if (s->stage != ST_HANDSHAKE)
        return KERR_ILLEGAL_SASL_STATE;
    for (int m = SASL_PLAIN; m <= SASL_SCRAM_SHA_512; m++) {
        if ((s->mechs & SASL_MECH_BIT(m)) && strlen(config_sasl_mech_name((sasl_mech_t)m)) == len &&
            memcmp(config_sasl_mech_name((sasl_mech_t)m), mech, len) == 0) {
            s->mech = (sasl_mech_t)m;
            s->stage = ST_FIRST;
            return 0;
        }
    }
    return KERR_UNSUPPORTED_SASL_MECHANISM;
}

static sasl_step_t fail_with(sasl_session_t *s, const char *why, const char **msg)
{
    s->stage = ST_FAILED;
    g_metrics.auth_failures[s->mech]++;
    *msg = why;
    return SASL_STEP_FAILED;
}

static sasl_step_t succeed(sasl_session_t *s)
{
    s->stage = ST_DONE;
    g_metrics.auth_successes[s->mech]++;
    sasl_note_success(s->peer);
    return SASL_STEP_DONE;
}

static sasl_step_t plain_step(sasl_session_t *s, const uint8_t *tok, size_t len, const char **msg)
{
    kstr_t authz, user, pw;
    if (ksasl_plain_parse(tok, len, &authz, &user, &pw) < 0 ||
        !users_name_valid(user.ptr, (size_t)user.len))
        return fail_with(s, user.len > 0 ? MSG_BAD_CREDENTIALS : MSG_MALFORMED, msg);
    memcpy(s->user, user.ptr, (size_t)user.len);
    s->user[user.len] = '\0';
    if (authworker_submit(s->w, user.ptr, (size_t)user.len, pw.ptr, (size_t)pw.len, s->job_id)) {
        g_metrics.auth_queue_full++;
        return fail_with(s, MSG_BUSY, msg);
    }
    s->stage = ST_PLAIN_CHECK;
    return SASL_STEP_ASYNC;
}

sasl_step_t sasl_session_plain_result(sasl_session_t *s, int ok, const char **msg)
{
    if (s->stage != ST_PLAIN_CHECK)
        return fail_with(s, MSG_STATE, msg);
    if (!ok)
        return fail_with(s, MSG_BAD_CREDENTIALS, msg);
    return succeed(s);
}

/* Reply text (NUL-terminated in buf) into reply; -1 if it does not fit. */
static int put_reply(const char *text, int n, uint8_t *reply, size_t cap, size_t *rlen)
{
    if (n < 0 || (size_t)n > cap)
        return -1;
    memcpy(reply, text, (size_t)n);
    *rlen = (size_t)n;
    return 0;
}

static sasl_step_t scram_first(sasl_session_t *s, const uint8_t *tok, size_t len, uint8_t *reply,
                               size_t cap, size_t *rlen, const char **msg)
{
    scram_mech_t m = s->mech == SASL_SCRAM_SHA_512 ? SCRAM_SHA_512 : SCRAM_SHA_256;
    const char *user;
    size_t ulen;
    scram_cred_t cred;
    char out[512];
    s->scram = scram_server_new(m);
    if (!s->scram || scram_server_client_first(s->scram, tok, len, &user, &ulen) < 0)
        return fail_with(s, MSG_MALFORMED, msg);
    int real = users_scram_cred(authworker_users(s->w), user, ulen, m, &cred);
    if (real < 0)
        return fail_with(s, MSG_SCRAM_FAILED, msg);
    s->scram_real = real == 1 && ulen <= USERS_NAME_MAX;
    if (s->scram_real) {
        memcpy(s->user, user, ulen);
        s->user[ulen] = '\0';
    }
    int n = scram_server_first_message(s->scram, &cred, out, sizeof(out));
    OPENSSL_cleanse(&cred, sizeof(cred));
    if (put_reply(out, n, reply, cap, rlen) < 0)
        return fail_with(s, MSG_SCRAM_FAILED, msg);
    s->stage = ST_SCRAM_FINAL;
    return SASL_STEP_CONTINUE;
}

static sasl_step_t scram_final(sasl_session_t *s, const uint8_t *tok, size_t len, uint8_t *reply,
                               size_t cap, size_t *rlen, const char **msg)
{
    char out[512];
    int rc = scram_server_client_final(s->scram, tok, len, out, sizeof(out));
    scram_server_free(s->scram);
    s->scram = NULL;
    if (rc != 1 || !s->scram_real) {
        s->user[0] = '\0';
        return fail_with(s, rc < 0 ? MSG_MALFORMED : MSG_SCRAM_FAILED, msg);
    }
    if (put_reply(out, (int)strlen(out), reply, cap, rlen) < 0)
        return fail_with(s, MSG_SCRAM_FAILED, msg);
    return succeed(s);
}

sasl_step_t sasl_session_step(sasl_session_t *s, const uint8_t *tok, size_t len, uint8_t *reply,
                              size_t cap, size_t *rlen, const char **msg)
{
    *rlen = 0;
    switch (s->stage) {
    case ST_FIRST:
        if (s->mech == SASL_PLAIN)
            return plain_step(s, tok, len, msg);
        return scram_first(s, tok, len, reply, cap, rlen, msg);
    case ST_SCRAM_FINAL:
        return scram_final(s, tok, len, reply, cap, rlen, msg);
    default:
        return fail_with(s, MSG_STATE, msg);
    }
}

const char *sasl_session_user(const sasl_session_t *s)
{
    return s && s->stage == ST_DONE ? s->user : NULL;
}

sasl_mech_t sasl_session_mech(const sasl_session_t *s)
{
    return s ? s->mech : SASL_NONE;
}

/* ---- failure delay ---- */

struct fail_source {
    char ip[64];
    uint32_t fails;
    uint64_t last_ms;
};

/* One table per process, touched only on the loop thread. */
static struct fail_source fail_sources[FAIL_SOURCES];

static struct fail_source *find_source(const char *ip, int create, uint64_t now_ms)
{
    struct fail_source *oldest = &fail_sources[0];
    for (size_t i = 0; i < FAIL_SOURCES; i++) {
        struct fail_source *f = &fail_sources[i];
        if (f->ip[0] && strcmp(f->ip, ip) == 0)
            return f;
        if (f->last_ms < oldest->last_ms)
            oldest = f;
    }
    if (!create)
        return NULL;
    memset(oldest, 0, sizeof(*oldest));
    snprintf(oldest->ip, sizeof(oldest->ip), "%s", ip);
    oldest->last_ms = now_ms;
    return oldest;
}

uint64_t sasl_failure_delay(const char *peer_ip, uint64_t now_ms)
{
    struct fail_source *f = find_source(peer_ip, 1, now_ms);
    if (now_ms - f->last_ms > FAIL_FORGET_MS)
        f->fails = 0;
    f->last_ms = now_ms;
    uint32_t before = f->fails++;
    if (before == 0)
        return 0;
    uint64_t d = (uint64_t)FAIL_BASE_DELAY_MS << (before > 16 ? 16 : before - 1);
    if (d > FAIL_MAX_DELAY_MS)
        d = FAIL_MAX_DELAY_MS;
    g_metrics.auth_throttled++;
    return d;
}

void sasl_note_success(const char *peer_ip)
{
    struct fail_source *f = find_source(peer_ip, 0, 0);
    if (f)
        memset(f, 0, sizeof(*f));
}
