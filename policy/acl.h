/*
 * acl.h - per-user topic ACLs: which topics an authenticated user may
 * produce to and consume from, and whether it may administer topics.
 *
 * One rule per user: a list of produce patterns, a list of consume
 * patterns (exact topic names or globs with * and ?, matched with
 * policy_glob_match) and an admin flag. The rule of user "*" applies to
 * every authenticated user that has no rule of its own; a user with a
 * rule of its own never falls back to "*", even where its rule denies.
 * A user with no rule when there is no "*" rule is denied everything.
 *
 * Limits: ACL_MAX_USERS rules ("*" included), ACL_MAX_PATTERNS patterns
 * per rule (produce and consume together), a pattern 1..249 characters of
 * [A-Za-z0-9._-*?] (Kafka's topic characters plus the two wildcards), a
 * user name "*" or 1..255 characters of [A-Za-z0-9._@-] (users.h).
 *
 * Pure: no I/O, no logging. Lookups are a binary search over the users
 * sorted by name, then a walk of that user's patterns (exact ones
 * compare with memcmp). Read-only calls are safe from several threads.
 */
#ifndef EOSPROXY_ACL_H
#define EOSPROXY_ACL_H

#include <stddef.h>

#define ACL_MAX_USERS 10000
#define ACL_MAX_PATTERNS 1000
#define ACL_PATTERN_MAX 249 /* Kafka's longest topic name */
#define ACL_USER_MAX 255    /* USERS_NAME_MAX */

typedef struct acl acl_t;

/* Operations acl_allows checks. */
enum { ACL_PRODUCE = 1, ACL_CONSUME = 2 };

/* An empty table (every user denied). NULL on allocation failure. */
acl_t *acl_new(void);

/* Frees a and every rule in it; acl_free(NULL) is safe. */
void acl_free(acl_t *a);

/*
 * Adds the rule of user ("*" = any authenticated user without a rule of
 * its own): nproduce patterns in produce, nconsume in consume (either
 * array may be NULL when its count is 0), admin non-zero for topic
 * administration. Patterns are checked and copied; the caller keeps its
 * strings. Returns 0, or -1 with a NUL-terminated message in err (when
 * err and errlen are non-zero) and a unchanged: invalid user name,
 * duplicate user, a bad pattern (the message names it, non-printable
 * bytes shown as '?'), more than ACL_MAX_PATTERNS patterns, more than
 * ACL_MAX_USERS rules, or out of memory.
 */
int acl_add(acl_t *a, const char *user, const char *const *produce, size_t nproduce,
            const char *const *consume, size_t nconsume, int admin, char *err, size_t errlen);

/*
 * 1 if user (ulen bytes, need not be NUL-terminated) may do op
 * (ACL_PRODUCE or ACL_CONSUME) on topic (tlen bytes): decided by the
 * user's own rule, else by the "*" rule, else denied. 0 otherwise,
 * including for a == NULL, an empty user name, an unknown op or a NULL
 * topic. The topic is matched as given (the broker validates names).
 */
int acl_allows(const acl_t *a, const char *user, size_t ulen, int op, const char *topic,
               size_t tlen);

/*
 * 1 if the user's rule (or, without one, the "*" rule) has admin set:
 * may send CreateTopics, DeleteTopics, CreatePartitions, DeleteRecords
 * and DeleteGroups. 0 otherwise, including a == NULL or an empty name.
 */
int acl_is_admin(const acl_t *a, const char *user, size_t ulen);

/* Number of rules added, "*" included; 0 for NULL. */
size_t acl_count(const acl_t *a);

#endif
