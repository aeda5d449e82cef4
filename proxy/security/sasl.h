/*
 * sasl.h - the server side of SASL for one client connection.
 *
 * Mechanism choice (SaslHandshake), then token by token: PLAIN (the
 * password check runs on the auth worker, so its result comes later) or
 * SCRAM-SHA-256/512 (HMACs only, done on the loop). Framing is the
 * caller's: SaslAuthenticate requests, or the raw size-prefixed tokens
 * that follow SaslHandshake v0.
 *
 * Also here: the per-source failure delay. Each failed login from an
 * address doubles the delay of the next failure answer from it (100 ms up
 * to 5 s, forgotten after a minute without failures or on a success), in a
 * bounded table of recent sources.
 *
 * Secrets: no password, proof or key is kept past the step that needs it,
 * logged, or put into a message to the client.
 */
#ifndef EOSPROXY_SASL_H
#define EOSPROXY_SASL_H

#include "config.h"

#include <stddef.h>
#include <stdint.h>

struct authworker;
typedef struct sasl_session sasl_session_t;

/* Outcome of one token. */
typedef enum sasl_step {
    SASL_STEP_FAILED = -1,  /* refuse: *msg says why, for the client */
    SASL_STEP_CONTINUE = 0, /* send the reply token and wait for the next */
    SASL_STEP_DONE = 1,     /* authenticated: send the reply token (may be empty) */
    SASL_STEP_ASYNC = 2,    /* PLAIN: the result arrives through sasl_session_plain_result */
} sasl_step_t;

/*
 * A session for a connection from peer_ip (text form; used for the failure
 * delay and logs). mechs: the SASL_MECH_BIT()s this connection may use
 * (PLAIN already removed where plaintext is refused). job_id names the
 * connection to the auth worker.
 */
sasl_session_t *sasl_session_new(struct authworker *w, unsigned mechs, const char *peer_ip,
                                 uint64_t job_id);
/* Wipes and frees; NULL safe. */
void sasl_session_free(sasl_session_t *s);

/*
 * SaslHandshake with mechanism name (len bytes). Returns 0 or the Kafka
 * error: UNSUPPORTED_SASL_MECHANISM (33) for a mechanism not offered here,
 * ILLEGAL_SASL_STATE (34) for a second handshake.
 */
int16_t sasl_session_handshake(sasl_session_t *s, const char *mech, size_t len);

/* The mechanism names this connection offers (for the handshake answer). */
size_t sasl_session_mechanisms(const sasl_session_t *s, const char **out, size_t cap);

/*
 * Consumes one client token. The reply (possibly empty) is written to
 * reply[0..*rlen) for CONTINUE and DONE; *msg is a static message for
 * FAILED. ASYNC: nothing to send yet.
 */
sasl_step_t sasl_session_step(sasl_session_t *s, const uint8_t *tok, size_t len, uint8_t *reply,
                              size_t cap, size_t *rlen, const char **msg);

/* The auth worker's answer to this session's PLAIN check: DONE or FAILED. */
sasl_step_t sasl_session_plain_result(sasl_session_t *s, int ok, const char **msg);

/* The authenticated user name (NUL-terminated), or NULL before success. */
const char *sasl_session_user(const sasl_session_t *s);
/* The mechanism chosen (SASL_NONE before the handshake). */
sasl_mech_t sasl_session_mech(const sasl_session_t *s);

/* Milliseconds to hold a failure answer for peer_ip, and records the
 * failure. sasl_note_success forgets the address. now_ms: a monotonic clock. */
uint64_t sasl_failure_delay(const char *peer_ip, uint64_t now_ms);
void sasl_note_success(const char *peer_ip);

#endif
