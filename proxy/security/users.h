/*
 * users.h - the users file (auth.users_file), password hashing, and the
 * SCRAM credentials derived from the hashes.
 *
 * File format: one "user:hash" or "user:hash:hash512" per line. Blank lines
 * and lines whose first non-blank character is '#' are ignored; leading
 * blanks, trailing blanks and a trailing '\r' (CRLF files) are stripped. A
 * user name is 1..255 characters of [A-Za-z0-9._@-]. Each user appears
 * once.
 *
 *     # created with: eosproxy passwd alice
 *     alice:pbkdf2-sha256$210000$<SALT_B64>$<HASH_B64>:pbkdf2-sha512$210000$<SALT_B64>$<HASH_B64>
 *     bob:pbkdf2-sha256$210000$<SALT_B64>$<HASH_B64>
 *
 * First field (required): "pbkdf2-sha256$ITERATIONS$SALT_B64$HASH_B64":
 *   - ITERATIONS is decimal without leading zeros, 10000..10000000
 *     (eosproxy passwd uses 210000, OWASP 2023 for PBKDF2-HMAC-SHA256);
 *   - SALT_B64 is 16..64 salt bytes (eosproxy passwd: 16 from RAND_bytes);
 *   - HASH_B64 is the 32-byte PBKDF2-HMAC-SHA256(password, salt, ITERATIONS);
 *   - both are standard base64 (RFC 4648 section 4, '+' '/' and '=' padding),
 *     in canonical form.
 * It serves SASL/PLAIN, and SCRAM-SHA-256 directly: that hash is the
 * SCRAM-SHA-256 SaltedPassword for that salt and iteration count.
 *
 * Second field (optional): "pbkdf2-sha512$ITERATIONS$SALT_B64$HASH_B64",
 * the same rules with the 64-byte PBKDF2-HMAC-SHA512 (its own salt). It
 * enables SCRAM-SHA-512 for the user; without it SCRAM-SHA-512 fails for
 * that user as for an unknown one.
 *
 * Python check: base64.b64encode(hashlib.pbkdf2_hmac("sha256", pw, salt, n))
 * (and "sha512" for the second field).
 *
 * Limits: the file is at most 1 MiB, a line at most 1024 bytes, 10000 users,
 * a password at most 1024 bytes (SASL/PLAIN: no NUL byte, not empty).
 *
 * Secrets: no function here logs anything or puts a password, a hash or a
 * line of the file into an error message; errors name file:line and, once
 * the name is known to be valid, the user. Hashes are wiped on free.
 *
 * Cost: users_verify runs the full PBKDF2 (50..100 ms at 210000
 * iterations on one core) for every call, known user or not; call it off the
 * event loop or bound how many run at once. users_scram_cred is cheap (two
 * HMACs and a hash, no PBKDF2): the SCRAM client does the slow part.
 */
#ifndef EOSPROXY_USERS_H
#define EOSPROXY_USERS_H

#include "scram.h"

#include <stddef.h>
#include <stdint.h>

#define USERS_DEFAULT_ITERATIONS 210000u
#define USERS_MIN_ITERATIONS 10000u
#define USERS_MAX_ITERATIONS 10000000u
#define USERS_NAME_MAX 255
#define USERS_PASSWORD_MAX 1024
#define USERS_LINE_MAX 1024
#define USERS_FILE_MAX (1024 * 1024)
#define USERS_MAX 10000
/* Enough for any hash users_hash_password writes, with its NUL. */
#define USERS_HASH_BUFLEN 160
/* Enough for both fields users_hash_entry writes, with its NUL. */
#define USERS_ENTRY_BUFLEN 320

/* A loaded users file: sorted entries plus dummies for unknown users. */
typedef struct users users_t;

/*
 * Loads path. NULL on error, with "path:line: what" (or "path: what" for
 * errors about the whole file) in err. The file must be a regular file
 * (symlinks are followed, as for Kubernetes secrets); an empty file, or
 * one with only comments, loads as zero users. To reload, load the new
 * file and swap it in only on success, then free the old one.
 */
users_t *users_load(const char *path, char *err, size_t errlen);

/* users_free(NULL) is safe. Wipes every salt and hash before freeing. */
void users_free(users_t *u);

/* Number of users loaded. */
size_t users_count(const users_t *u);

/*
 * A warning about the file that did not stop the load, or NULL: today,
 * "path: mode 0644 lets group or others read or write it; chmod 600 it".
 * The caller logs it (log_warn) once; the string lives as long as u.
 */
const char *users_warning(const users_t *u);

/*
 * 1 if user (ulen bytes, need not be NUL-terminated) is in u and password
 * (plen bytes) is its password; 0 otherwise, including for u == NULL, an
 * invalid name, an empty or too long password. Every call with u != NULL
 * costs one PBKDF2 run: an unknown user is checked against a dummy entry
 * with a random salt and the iteration count most users of the file have,
 * so the time taken does not tell which users exist. The comparison is
 * CRYPTO_memcmp. Read-only on u: safe from several threads at once.
 */
int users_verify(const users_t *u, const char *user, size_t ulen, const char *password,
                 size_t plen);

/*
 * Writes the hash part of a users file line for password (plen bytes) into
 * out (NUL-terminated; USERS_HASH_BUFLEN is enough), with a fresh 16-byte
 * salt from RAND_bytes. iterations 0 means USERS_DEFAULT_ITERATIONS.
 * Returns 0, or -1 if the password is empty, longer than
 * USERS_PASSWORD_MAX or contains a NUL byte, iterations is out of range,
 * out is too small or OpenSSL fails (out is then "").
 */
int users_hash_password(const char *password, size_t plen, unsigned iterations, char *out,
                        size_t outlen);

/*
 * What eosproxy passwd prints after "USER:": both fields,
 * "pbkdf2-sha256$...:pbkdf2-sha512$...", each with its own fresh 16-byte
 * salt from RAND_bytes and iterations (0 means USERS_DEFAULT_ITERATIONS).
 * NUL-terminated in out (USERS_ENTRY_BUFLEN is enough). Runs PBKDF2 twice.
 * Returns 0, or -1 as users_hash_password (out is then "").
 */
int users_hash_entry(const char *password, size_t plen, unsigned iterations, char *out,
                     size_t outlen);

/*
 * SCRAM credentials of user for mech m into out. Returns 1 for a real credential; 0 when the
 * user is unknown or has no hash for m: out then holds a fake credential (salt derived from a
 * per-process random secret and the name, the usual iteration count, random keys) so that
 * server-first does not reveal which users exist, and the exchange must fail at the proof; -1
 * on error (u or out NULL, unknown m, OpenSSL failure; out is then zeroed). Cheap (no PBKDF2):
 * safe on the event loop. Read-only on u. user need not be NUL-terminated; any bytes are
 * accepted (an invalid name gets a fake credential).
 */
int users_scram_cred(const users_t *u, const char *user, size_t ulen, scram_mech_t m,
                     scram_cred_t *out);

/* 1 if name (len bytes) is a valid user name: 1..255 of [A-Za-z0-9._@-]. */
int users_name_valid(const char *name, size_t len);

/*
 * PBKDF2-HMAC-SHA256 (PKCS5_PBKDF2_HMAC) of password over salt, outlen
 * bytes into out. Exposed for the RFC 7914 test vector; 0 or -1.
 */
int users_pbkdf2_sha256(const char *password, size_t plen, const uint8_t *salt, size_t saltlen,
                        unsigned iterations, uint8_t *out, size_t outlen);

#endif
