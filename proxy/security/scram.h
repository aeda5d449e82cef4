/*
 * scram.h - SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), both
 * sides, as Kafka uses them inside SaslAuthenticate.
 *
 * Server side: eosproxy authenticates a client against a scram_cred_t (from
 * the users file). Client side: eosproxy logs into a broker with a user
 * name and password.
 *
 *   client-first   n,,n=USER,r=CNONCE          ("y,," and "n,a=USER," too)
 *   server-first   r=CNONCE+SNONCE,s=SALT_B64,i=ITERATIONS
 *   client-final   c=biws,r=CNONCE+SNONCE,p=PROOF_B64
 *   server-final   v=SERVER_SIGNATURE_B64      (or e=ERROR)
 *
 *   SaltedPassword  = PBKDF2-HMAC-H(password, salt, iterations)
 *   ClientKey       = HMAC(SaltedPassword, "Client Key"), StoredKey =
 * H(ClientKey) ServerKey       = HMAC(SaltedPassword, "Server Key") AuthMessage
 * = client-first-bare "," server-first "," client-final-without-proof
 *   ClientProof     = ClientKey XOR HMAC(StoredKey, AuthMessage)
 *   ServerSignature = HMAC(ServerKey, AuthMessage)
 *
 * Like Kafka's own client and broker, passwords are used as their bytes
 * (no SASLprep). Channel binding ('p' in the gs2 header) and extensions
 * sent by a client are refused; extensions a server adds to server-first or
 * server-final are ignored, and a mandatory one ("m=") is refused.
 *
 * Limits: a user name at most SCRAM_MAX_USER bytes decoded, a password at
 * most SCRAM_MAX_PASSWORD bytes, a nonce at most SCRAM_MAX_NONCE characters
 * per side, any message at most SCRAM_MAX_MESSAGE bytes; NUL bytes anywhere
 * in a message are malformed.
 *
 * Secrets (password, SaltedPassword, keys, proofs) are never logged nor put
 * in an error; they are wiped with OPENSSL_cleanse when no longer needed
 * and on free. Uses OpenSSL (EVP, EVP_MAC, RAND_bytes); not thread-safe per
 * object, but separate objects may be used from separate threads.
 */
#ifndef EOSPROXY_SCRAM_H
#define EOSPROXY_SCRAM_H

#include <stddef.h>
#include <stdint.h>

typedef enum scram_mech { SCRAM_SHA_256 = 0, SCRAM_SHA_512 = 1 } scram_mech_t;

#define SCRAM_MAX_DIGEST 64
#define SCRAM_MAX_SALT 64
#define SCRAM_MIN_ITERATIONS 4096
#define SCRAM_MAX_ITERATIONS 10000000
#define SCRAM_MAX_USER 255
#define SCRAM_MAX_PASSWORD 1024
#define SCRAM_MAX_NONCE 256
#define SCRAM_MAX_MESSAGE 4096
/* Bytes of randomness in a nonce eosproxy makes (base64: 32 characters). */
#define SCRAM_NONCE_BYTES 24

/* "SCRAM-SHA-256" -> SCRAM_SHA_256, "SCRAM-SHA-512" -> SCRAM_SHA_512 (exact,
 * case-sensitive, len bytes, need not be NUL-terminated); -1 unknown. */
int scram_mech_from_name(const char *name, size_t len);
/* "SCRAM-SHA-256" / "SCRAM-SHA-512", or "unknown". Never NULL. */
const char *scram_mech_name(scram_mech_t m);
/* 32 or 64; 0 for an unknown mechanism. */
size_t scram_digest_len(scram_mech_t m);

typedef struct scram_cred {
    scram_mech_t mech;
    uint8_t salt[SCRAM_MAX_SALT];
    size_t salt_len;
    unsigned iterations;
    uint8_t stored_key[SCRAM_MAX_DIGEST], server_key[SCRAM_MAX_DIGEST];
} scram_cred_t;

/* StoredKey = H(HMAC(SaltedPassword, "Client Key")), ServerKey =
 * HMAC(SaltedPassword, "Server Key"). len must be the digest length,
 * salt_len 1..SCRAM_MAX_SALT, iterations in [SCRAM_MIN_ITERATIONS,
 * SCRAM_MAX_ITERATIONS]. 0, or -1 (out is then zeroed). */
int scram_cred_from_salted(scram_mech_t m, const uint8_t *salted, size_t len, const uint8_t *salt,
                           size_t salt_len, unsigned iterations, scram_cred_t *out);
/* PBKDF2 with the mechanism's hash (SaltedPassword = Hi()): scram_digest_len(m)
 * bytes into out. plen <= SCRAM_MAX_PASSWORD, salt_len <= SCRAM_MAX_SALT,
 * iterations 1..SCRAM_MAX_ITERATIONS (the protocol minimum is checked where a
 * count comes from a peer). 0/-1 */
int scram_salted_password(scram_mech_t m, const char *pw, size_t plen, const uint8_t *salt,
                          size_t salt_len, unsigned iterations, uint8_t *out);

/*
 * Standard padded base64 (RFC 4648 section 4), shared with the users file.
 * Encode writes 4 * ceil(n / 3) characters and a NUL into out and returns the
 * length. Decode accepts only the canonical form (padding present, unused
 * bits zero) and returns the byte count, or -1 if malformed, empty or
 * longer than max.
 */
size_t scram_b64_encode(const uint8_t *in, size_t n, char *out);
long scram_b64_decode(const char *in, size_t len, uint8_t *out, size_t max);

/* ---- Server side (eosproxy authenticating a client) ---- */

typedef struct scram_server scram_server_t;

/* NULL for an unknown mechanism or out of memory. */
scram_server_t *scram_server_new(scram_mech_t m);
void scram_server_free(scram_server_t *s); /* NULL safe, wipes secrets */
/* Parses client-first-message ("n,,n=user,r=nonce"; gs2 'y' accepted, 'p'
 * (channel binding) refused, an authzid other than the user refused, extensions
 * refused, "=2C"/"=3D" decoded). 0 with *user (decoded, NUL-terminated, owned
 * by s, valid until scram_server_free) or -1 malformed. Only as the first call
 * on s. */
int scram_server_client_first(scram_server_t *s, const uint8_t *msg, size_t len, const char **user,
                              size_t *ulen);
/* server-first-message ("r=cnonce+snonce,s=salt64,i=iter") for cred into out,
 * NUL-terminated; fresh 24+ byte random nonce (RAND_bytes, printable). cred is
 * copied; its mech must be s's, its iterations in range. Returns the length, or
 * -1 (also when called out of order). */
int scram_server_first_message(scram_server_t *s, const scram_cred_t *cred, char *out,
                               size_t outlen);
/* Checks client-final-message (channel binding "biws" or "eSws" matching the
 * gs2 header, nonce, proof in constant time). 1 = proof good, out = "v=<server
 * signature>"; 0 = bad proof/nonce, out = "e=invalid-proof"; -1 malformed
 * (including a channel binding that does not match the gs2 header, a proof of
 * the wrong length, out too small, out of order; out is then ""). The exchange
 * is over after this call, whatever it returned. */
int scram_server_client_final(scram_server_t *s, const uint8_t *msg, size_t len, char *out,
                              size_t outlen);

/* ---- Client side (eosproxy logging into a broker) ---- */

typedef struct scram_client scram_client_t;

/* cache: optional 1-entry cache of the last SaltedPassword (salt, iterations,
 * mech), owned by the caller, so that reconnects do not rerun PBKDF2. It holds
 * a secret: the caller wipes it (OPENSSL_cleanse) when done. It must be used
 * with one password only. */
typedef struct scram_salt_cache {
    int valid;
    scram_mech_t mech;
    uint8_t salt[SCRAM_MAX_SALT];
    size_t salt_len;
    unsigned iterations;
    uint8_t salted[SCRAM_MAX_DIGEST];
} scram_salt_cache_t;

/* user (1..SCRAM_MAX_USER bytes) and password (1..SCRAM_MAX_PASSWORD bytes) are
 * copied. NULL for bad arguments or out of memory. cache may be NULL. */
scram_client_t *scram_client_new(scram_mech_t m, const char *user, const char *password,
                                 scram_salt_cache_t *cache);
void scram_client_free(scram_client_t *c); /* NULL safe, wipes secrets */
/* client-first-message "n,,n=<user>,r=<nonce>" into out, NUL-terminated. Length
 * or -1. */
int scram_client_first_message(scram_client_t *c, char *out, size_t outlen);
/* server-first -> client-final (into out, NUL-terminated; returns its length).
 * -1 if malformed, nonce not extending ours, iterations outside
 * [SCRAM_MIN_ITERATIONS, SCRAM_MAX_ITERATIONS], salt too long, out too small or
 * out of order. Runs PBKDF2 unless the cache holds this (mech, salt,
 * iterations): not for the event loop on a cache miss. */
int scram_client_final_message(scram_client_t *c, const uint8_t *server_first, size_t len,
                               char *out, size_t outlen);
/* 0 if server-final carries the right server signature, -1 otherwise (including
 * "e=..."). */
int scram_client_verify_server_final(scram_client_t *c, const uint8_t *msg, size_t len);

/* Test hooks: use this nonce instead of a random one (the server's part for the
 * server). A nonce that is empty, too long or not printable (%x21-7E except
 * ',') is ignored. */
void scram_server_set_nonce(scram_server_t *s, const char *nonce);
void scram_client_set_nonce(scram_client_t *c, const char *nonce);

#endif
