/*
 * ksasl.h - SaslHandshake (API 17) and SaslAuthenticate (API 36), and the
 * SASL/PLAIN message of RFC 4616.
 *
 * eosproxy is both sides: it terminates client SASL (parses requests,
 * writes responses) and logs into the brokers itself (writes requests,
 * parses responses).
 *
 *   SaslHandshakeRequest v0-1     => Mechanism STRING
 *   SaslHandshakeResponse v0-1    => ErrorCode INT16, Mechanisms [STRING]
 *     (never flexible: request header v1, response header v0)
 *   SaslAuthenticateRequest v0-2  => AuthBytes BYTES (COMPACT_BYTES in v2)
 *                                    TAG_BUFFER@2
 *   SaslAuthenticateResponse v0-2 => ErrorCode INT16,
 *                                    ErrorMessage NULLABLE_STRING,
 *                                    AuthBytes BYTES,
 *                                    SessionLifetimeMs INT64@1+, TAG_BUFFER@2
 *     (v2 is flexible: request header v2, response header v1 = CorrelationId
 *     plus tags; strings and bytes are compact)
 *
 * Pure codec: no libevent, no OpenSSL. Parsed strings and bytes are views
 * into the caller's buffer. Every parser refuses trailing bytes and never
 * asserts on peer input; every writer returns -1 (and writes nothing
 * meaningful) on a bad argument or a writer failure.
 */
#ifndef EOSPROXY_KSASL_H
#define EOSPROXY_KSASL_H

#include "kbuf.h"

#include <stddef.h>
#include <stdint.h>

#define KSASL_HANDSHAKE_MAX_VERSION 1
#define KSASL_AUTHENTICATE_MAX_VERSION 2
/* First flexible SaslAuthenticate version. */
#define KSASL_AUTHENTICATE_FLEX_VERSION 2
/* SaslHandshakeResponse never lists more mechanisms than this. */
#define KSASL_MAX_MECHANISMS 16

/* SaslHandshake request body (after the request header): mechanism STRING. 0,
 * or -1 if malformed/trailing bytes. A null mechanism is malformed. */
int ksasl_handshake_req_parse(const uint8_t *body, size_t len, kstr_t *mechanism);

/* A whole SaslHandshake response frame, size prefix included: correlation id,
 * error_code, mechanisms (n NUL-terminated names, each at most 32767 bytes; n
 * <= KSASL_MAX_MECHANISMS). The layout is the same for v0 and v1. 0 or -1. */
int ksasl_handshake_resp_write(kwriter_t *w, int32_t corr, int16_t error_code,
                               const char *const *mechs, size_t n);

/* SaslAuthenticate request body (v0-2). auth_bytes is a view into body. 0, or
 * -1 if malformed, null auth_bytes, trailing bytes or ver outside 0..2. */
int ksasl_authenticate_req_parse(int16_t ver, const uint8_t *body, size_t len,
                                 kbytes_t *auth_bytes);

/* A whole SaslAuthenticate response frame (v0-2), size prefix included.
 * error_message NULL writes null; auth may be NULL when alen is 0.
 * session_lifetime_ms is written from v1 on (ignored for v0). 0, or -1 for a
 * bad version, an error_message longer than 32767 bytes, alen > INT32_MAX or a
 * writer failure. */
int ksasl_authenticate_resp_write(kwriter_t *w, int16_t ver, int32_t corr, int16_t error_code,
                                  const char *error_message, const uint8_t *auth, size_t alen,
                                  int64_t session_lifetime_ms);

/* Client side: whole request frames (size prefix + request header with
 * client_id + body). client_id NULL writes a null ClientId. 0, or -1 for a bad
 * version, a NULL or over-long mechanism, alen > INT32_MAX or a writer failure.
 */
int ksasl_handshake_req_write(kwriter_t *w, int16_t ver, int32_t corr, const char *client_id,
                              const char *mechanism);
int ksasl_authenticate_req_write(kwriter_t *w, int16_t ver, int32_t corr, const char *client_id,
                                 const uint8_t *auth, size_t alen);

/* Client side: response frames WITHOUT the 4-byte size prefix (start at the
 * correlation id). mechanisms: up to cap views written to mechs, *n set to the
 * count seen (may exceed cap). 0, or -1 if malformed (a null array or name,
 * trailing bytes). */
int ksasl_handshake_resp_parse(const uint8_t *frame, size_t len, int32_t *corr, int16_t *error_code,
                               kstr_t *mechs, size_t cap, size_t *n);
/* error_message may come back null (len -1); auth_bytes is never null on
 * success. session_lifetime_ms is 0 for v0. 0 or -1 (malformed, trailing bytes,
 * ver outside 0..2). */
int ksasl_authenticate_resp_parse(int16_t ver, const uint8_t *frame, size_t len, int32_t *corr,
                                  int16_t *error_code, kstr_t *error_message, kbytes_t *auth_bytes,
                                  int64_t *session_lifetime_ms);

/* SASL/PLAIN message (RFC 4616): [authzid] NUL authcid NUL passwd. Views into
 * tok. -1 if not exactly two NULs, empty authcid or passwd, or authzid
 * non-empty and different from authcid. On success authzid has len 0 when
 * absent. */
int ksasl_plain_parse(const uint8_t *tok, size_t len, kstr_t *authzid, kstr_t *user,
                      kstr_t *password);
/* Appends "\0user\0password" (no size prefix). -1 for NULL or empty user or
 * password, or a writer failure. */
int ksasl_plain_write(kwriter_t *w, const char *user, const char *password);

#endif
