/*
 * test_sasl.c - the server side of one SASL login: mechanism choice, PLAIN
 * through the auth worker, SCRAM-SHA-256/512 against scram_client, the
 * refusals (wrong password, unknown user, mechanism not offered, messages
 * out of order) and the per-source failure delay.
 */
#include "authworker.h"
#include "kerror.h"
#include "sasl.h"
#include "scram.h"
#include "unit.h"
#include "users.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char dir[] = "/tmp/test_sasl.XXXXXX";
static const unsigned ALL = SASL_MECH_BIT(SASL_PLAIN) | SASL_MECH_BIT(SASL_SCRAM_SHA_256) |
                            SASL_MECH_BIT(SASL_SCRAM_SHA_512);

struct verdict {
    struct event_base *base;
    int got, ok;
};

static void on_result(void *arg, uint64_t id, int ok)
{
    struct verdict *v = arg;
    (void)id;
    v->got = 1;
    v->ok = ok;
    event_base_loopbreak(v->base);
}

static struct authworker *make_worker(struct verdict *v)
{
    char path[256], line[USERS_ENTRY_BUFLEN], err[256];
    snprintf(path, sizeof(path), "%s/users", dir);
    CHECK_EQ(users_hash_entry("wonderland", 10, 10000, line, sizeof(line)), 0);
    FILE *f = fopen(path, "w");
    fprintf(f, "alice:%s\n", line);
    fclose(f);
    users_t *u = users_load(path, err, sizeof(err));
    CHECK(u != NULL);
    return authworker_new(v->base, u, 1, 8, on_result, v);
}

/* Runs a PLAIN login with token tok; returns the final step. */
static sasl_step_t plain_login(struct authworker *w, struct verdict *v, const char *tok, size_t len,
                               unsigned mechs)
{
    sasl_session_t *s = sasl_session_new(w, mechs, "192.0.2.1", 7);
    uint8_t reply[512];
    size_t rlen;
    const char *msg = NULL;
    CHECK_EQ(sasl_session_handshake(s, "PLAIN", 5), 0);
    sasl_step_t st =
        sasl_session_step(s, (const uint8_t *)tok, len, reply, sizeof(reply), &rlen, &msg);
    if (st == SASL_STEP_ASYNC) {
        v->got = 0;
        struct timeval tv = {10, 0};
        event_base_loopexit(v->base, &tv);
        event_base_dispatch(v->base);
        CHECK(v->got);
        st = sasl_session_plain_result(s, v->ok, &msg);
    }
    if (st == SASL_STEP_DONE)
        CHECK_STR(sasl_session_user(s), "alice");
    else
        CHECK(sasl_session_user(s) == NULL && msg && strstr(msg, "wonderland") == NULL);
    sasl_session_free(s);
    return st;
}

static void test_plain(struct authworker *w, struct verdict *v)
{
    CHECK_EQ(plain_login(w, v, "\0alice\0wonderland", 17, ALL), SASL_STEP_DONE);
    CHECK_EQ(plain_login(w, v, "alice\0alice\0wonderland", 22, ALL), SASL_STEP_DONE);
    CHECK_EQ(plain_login(w, v, "\0alice\0wonderlanD", 17, ALL), SASL_STEP_FAILED);
    CHECK_EQ(plain_login(w, v, "\0mallory\0wonderland", 19, ALL), SASL_STEP_FAILED);
    CHECK_EQ(plain_login(w, v, "\0alice", 6, ALL), SASL_STEP_FAILED);     /* malformed */
    CHECK_EQ(plain_login(w, v, "\0al ice\0x", 9, ALL), SASL_STEP_FAILED); /* bad name */
}

static void test_handshake(struct authworker *w)
{
    sasl_session_t *s = sasl_session_new(w, SASL_MECH_BIT(SASL_SCRAM_SHA_512), "::1", 1);
    const char *names[4];
    CHECK_EQ(sasl_session_mechanisms(s, names, 4), 1);
    CHECK_STR(names[0], "SCRAM-SHA-512");
    CHECK_EQ(sasl_session_handshake(s, "PLAIN", 5), KERR_UNSUPPORTED_SASL_MECHANISM);
    CHECK_EQ(sasl_session_handshake(s, "SCRAM-SHA-51", 12), KERR_UNSUPPORTED_SASL_MECHANISM);
    CHECK_EQ(sasl_session_mech(s), SASL_NONE);
    CHECK_EQ(sasl_session_handshake(s, "SCRAM-SHA-512", 13), 0);
    CHECK_EQ(sasl_session_handshake(s, "SCRAM-SHA-512", 13), KERR_ILLEGAL_SASL_STATE);
    CHECK_EQ(sasl_session_mech(s), SASL_SCRAM_SHA_512);
    sasl_session_free(s);
    sasl_session_free(NULL);

    /* A token before the handshake is refused. */
    s = sasl_session_new(w, ALL, "::1", 1);
    uint8_t reply[64];
    size_t rlen;
    const char *msg = NULL;
    CHECK_EQ(sasl_session_step(s, (const uint8_t *)"x", 1, reply, sizeof(reply), &rlen, &msg),
             SASL_STEP_FAILED);
    CHECK(msg != NULL);
    sasl_session_free(s);
}

/* A SCRAM login of user/password with mechanism m; the final step. */
static sasl_step_t scram_login(struct authworker *w, sasl_mech_t m, const char *user,
                               const char *password)
{
    scram_mech_t sm = m == SASL_SCRAM_SHA_512 ? SCRAM_SHA_512 : SCRAM_SHA_256;
    const char *name = scram_mech_name(sm);
    sasl_session_t *s = sasl_session_new(w, ALL, "192.0.2.9", 3);
    scram_client_t *cl = scram_client_new(sm, user, password, NULL);
    char cmsg[1024];
    uint8_t reply[1024];
    size_t rlen;
    const char *msg = NULL;
    CHECK_EQ(sasl_session_handshake(s, name, strlen(name)), 0);
    int n = scram_client_first_message(cl, cmsg, sizeof(cmsg));
    sasl_step_t st =
        sasl_session_step(s, (uint8_t *)cmsg, (size_t)n, reply, sizeof(reply), &rlen, &msg);
    CHECK_EQ(st, SASL_STEP_CONTINUE);
    n = scram_client_final_message(cl, reply, rlen, cmsg, sizeof(cmsg));
    CHECK(n > 0);
    st = sasl_session_step(s, (uint8_t *)cmsg, (size_t)n, reply, sizeof(reply), &rlen, &msg);
    if (st == SASL_STEP_DONE) {
        CHECK_EQ(scram_client_verify_server_final(cl, reply, rlen), 0);
        CHECK_STR(sasl_session_user(s), user);
    } else {
        CHECK(sasl_session_user(s) == NULL);
    }
    /* Nothing more is accepted after the end. */
    CHECK_EQ(sasl_session_step(s, (uint8_t *)"x", 1, reply, sizeof(reply), &rlen, &msg),
             SASL_STEP_FAILED);
    scram_client_free(cl);
    sasl_session_free(s);
    return st;
}

static void test_scram(struct authworker *w)
{
    CHECK_EQ(scram_login(w, SASL_SCRAM_SHA_256, "alice", "wonderland"), SASL_STEP_DONE);
    CHECK_EQ(scram_login(w, SASL_SCRAM_SHA_512, "alice", "wonderland"), SASL_STEP_DONE);
    CHECK_EQ(scram_login(w, SASL_SCRAM_SHA_256, "alice", "wonderlanD"), SASL_STEP_FAILED);
    CHECK_EQ(scram_login(w, SASL_SCRAM_SHA_512, "mallory", "wonderland"), SASL_STEP_FAILED);

    /* Garbage as client-first. */
    sasl_session_t *s = sasl_session_new(w, ALL, "192.0.2.9", 3);
    uint8_t reply[256];
    size_t rlen;
    const char *msg = NULL;
    CHECK_EQ(sasl_session_handshake(s, "SCRAM-SHA-256", 13), 0);
    CHECK_EQ(sasl_session_step(s, (const uint8_t *)"p=tls,,n=a,r=b", 14, reply, sizeof(reply),
                               &rlen, &msg),
             SASL_STEP_FAILED);
    sasl_session_free(s);
}

static void test_failure_delay(void)
{
    uint64_t t = 1000000;
    CHECK_EQ(sasl_failure_delay("198.51.100.1", t), 0);
    CHECK_EQ(sasl_failure_delay("198.51.100.1", t + 1), 100);
    CHECK_EQ(sasl_failure_delay("198.51.100.1", t + 2), 200);
    CHECK_EQ(sasl_failure_delay("198.51.100.2", t + 3), 0); /* another source */
    uint64_t d = 0;
    for (int i = 0; i < 20; i++)
        d = sasl_failure_delay("198.51.100.1", t + 4 + (uint64_t)i);
    CHECK_EQ(d, 5000);                                           /* capped */
    CHECK_EQ(sasl_failure_delay("198.51.100.1", t + 100000), 0); /* a quiet minute forgets */
    sasl_note_success("198.51.100.1");
    CHECK_EQ(sasl_failure_delay("198.51.100.1", t + 100001), 0);
    /* More sources than the table holds: no crash, the newest are remembered. */
    char ip[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(ip, sizeof(ip), "10.0.%d.%d", i / 250, i % 250);
        sasl_failure_delay(ip, t + 200000 + (uint64_t)i);
    }
    CHECK_EQ(sasl_failure_delay("10.0.3.249", t + 201000), 100);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    struct verdict v = {0};
    v.base = event_base_new();
    struct authworker *w = make_worker(&v);
    CHECK(w != NULL);
    test_handshake(w);
    test_plain(w, &v);
    test_scram(w);
    test_failure_delay();
    authworker_free(w);
    event_base_free(v.base);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    return unit_done("sasl");
}
