/*
 * acl.c - per-user topic ACLs: build the table, look users up by binary
 * search, match topics against their patterns. See acl.h.
 *
 * Rules are kept in an array of pointers sorted by user name (bytes, then
 * length), so acl_add finds a duplicate and its insertion point with one
 * binary search and acl_allows never scans the users. The "*" rule lives
 * apart from the named ones.
 */
#include "acl.h"
#include "log.h"

#include "policy.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One pattern, NUL-terminated; glob when it holds * or ?. */
struct acl_pattern {
    char *text;
    size_t len;
    int glob;
};

/* pats[0..nproduce) are the produce patterns, then nconsume consume ones. */
struct acl_rule {
    char *user;
    size_t ulen;
    struct acl_pattern *pats;
    size_t nproduce;
    size_t nconsume;
    int admin;
};

struct acl {
    struct acl_rule **v; /* named rules, sorted by user */
    size_t n;
    size_t cap;
    struct acl_rule *any; /* the "*" rule, or NULL */
};

/* Copies at most 64 bytes of s into out (room for 68) for a message:
 * non-printable bytes become '?', a longer string ends in "...". */
static void printable(const char *s, char out[68])
{
    size_t i = 0;
    for (; s[i] && i < 64; i++)
        out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    if (s[i]) {
        memcpy(out + i, "...", 3);
        i += 3;
    }
    out[i] = '\0';
}

acl_t *acl_new(void)
{
    return calloc(1, sizeof(acl_t));
}

static void rule_free(struct acl_rule *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nproduce + r->nconsume; i++)
        free(r->pats[i].text);
    free(r->pats);
    free(r->user);
    free(r);
}

void acl_free(acl_t *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++)
        rule_free(a->v[i]);
    free(a->v);
    rule_free(a->any);
    free(a);
}

size_t acl_count(const acl_t *a)
{
    return a ? a->n + (a->any != NULL) : 0;
}

/* ---- validation ---- */

static int user_char_ok(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '@' || c == '-';
}

/* "*", or 1..ACL_USER_MAX characters of [A-Za-z0-9._@-]. */
static int user_ok(const char *user)
{
    if (strcmp(user, "*") == 0)
        return 1;
    size_t n = strlen(user);
    if (n == 0 || n > ACL_USER_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!user_char_ok((unsigned char)user[i]))
            return 0;
    return 1;
}

/* NULL when pattern is valid, else why not (static). */
static const char *pattern_problem(const char *p)
{
    if (!p)
        return "is null";
    size_t n = strlen(p);
    if (n == 0)
        return "is empty";
    if (n > ACL_PATTERN_MAX)
        return "is longer than 249 characters";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-' || c == '*' || c == '?';
        if (!ok)
            return "has a character outside [A-Za-z0-9._-*?]";
    }
    return NULL;
}

/* Checks every pattern of one list; -1 with err naming the first bad one. */
static int check_patterns(const char *user, const char *what, const char *const *pats, size_t n,
                          char *err, size_t errlen)
{
    if (n > 0 && !pats) {
        set_err(err, errlen, "acl for user %s: %s patterns missing", user, what);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const char *why = pattern_problem(pats[i]);
        if (why) {
            char shown[68];
            printable(pats[i] ? pats[i] : "", shown);
            set_err(err, errlen, "acl for user %s: %s pattern %zu \"%s\" %s", user, what, i + 1,
                    shown, why);
            return -1;
        }
    }
    return 0;
}

/* ---- lookup ---- */

/* Orders (s, n) against rule r: bytes first, then length. */
static int cmp_name(const char *s, size_t n, const struct acl_rule *r)
{
    size_t m = n < r->ulen ? n : r->ulen;
    int c = m ? memcmp(s, r->user, m) : 0;
    if (c != 0)
        return c;
    return n < r->ulen ? -1 : n > r->ulen;
}

/* Index of user in a->v, or -1 with *at set to where it would go. */
static long find_user(const acl_t *a, const char *s, size_t n, size_t *at)
{
    size_t lo = 0, hi = a->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_name(s, n, a->v[mid]);
        if (c == 0)
            return (long)mid;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    if (at)
        *at = lo;
    return -1;
}

/* The rule deciding for user: its own, else "*", else NULL. */
static const struct acl_rule *rule_for(const acl_t *a, const char *user, size_t ulen)
{
    if (!a || !user || ulen == 0)
        return NULL;
    long i = find_user(a, user, ulen, NULL);
    return i >= 0 ? a->v[i] : a->any;
}

/* ---- building ---- */

static int copy_patterns(struct acl_pattern *out, const char *const *pats, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        out[i].len = strlen(pats[i]);
        out[i].text = malloc(out[i].len + 1);
        if (!out[i].text)
            return -1;
        memcpy(out[i].text, pats[i], out[i].len + 1);
        out[i].glob = strpbrk(pats[i], "*?") != NULL;
    }
    return 0;
}

/* A new rule from checked arguments, or NULL when out of memory. */
static struct acl_rule *rule_new(const char *user, const char *const *produce, size_t nproduce,
                                 const char *const *consume, size_t nconsume, int admin)
{
    struct acl_rule *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->ulen = strlen(user);
    r->user = malloc(r->ulen + 1);
    r->pats = calloc(nproduce + nconsume + 1, sizeof(*r->pats));
    r->nproduce = nproduce;
    r->nconsume = nconsume;
    r->admin = admin != 0;
    if (!r->user || !r->pats || copy_patterns(r->pats, produce, nproduce) < 0 ||
        copy_patterns(r->pats + nproduce, consume, nconsume) < 0) {
        rule_free(r);
        return NULL;
    }
    memcpy(r->user, user, r->ulen + 1);
    return r;
}

/* Inserts r at position at of a->v (growing it); -1 when out of memory. */
static int insert_rule(acl_t *a, struct acl_rule *r, size_t at)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        struct acl_rule **v = realloc(a->v, cap * sizeof(*v));
        if (!v)
            return -1;
        a->v = v;
        a->cap = cap;
    }
    memmove(a->v + at + 1, a->v + at, (a->n - at) * sizeof(*a->v));
    a->v[at] = r;
    a->n++;
    return 0;
}

int acl_add(acl_t *a, const char *user, const char *const *produce, size_t nproduce,
            const char *const *consume, size_t nconsume, int admin, char *err, size_t errlen)
{
    if (!a || !user) {
        set_err(err, errlen, "acl: no table or no user");
        return -1;
    }
    if (!user_ok(user)) {
        char shown[68];
        printable(user, shown);
        set_err(err, errlen, "acl: invalid user name \"%s\" (\"*\" or 1..255 of [A-Za-z0-9._@-])",
                shown);
        return -1;
    }
    int any = strcmp(user, "*") == 0;
    size_t at = 0;
    if (any ? a->any != NULL : find_user(a, user, strlen(user), &at) >= 0) {
        set_err(err, errlen, "acl: duplicate rule for user %s", user);
        return -1;
    }
    if (acl_count(a) >= ACL_MAX_USERS) {
        set_err(err, errlen, "acl: too many users (at most %d)", ACL_MAX_USERS);
        return -1;
    }
    if (nproduce > ACL_MAX_PATTERNS || nconsume > ACL_MAX_PATTERNS - nproduce) {
        set_err(err, errlen, "acl for user %s: too many patterns (at most %d)", user,
                ACL_MAX_PATTERNS);
        return -1;
    }
    if (check_patterns(user, "produce", produce, nproduce, err, errlen) < 0 ||
        check_patterns(user, "consume", consume, nconsume, err, errlen) < 0)
        return -1;
    struct acl_rule *r = rule_new(user, produce, nproduce, consume, nconsume, admin);
    if (!r || (!any && insert_rule(a, r, at) < 0)) {
        rule_free(r);
        set_err(err, errlen, "acl for user %s: out of memory", user);
        return -1;
    }
    if (any)
        a->any = r;
    return 0;
}

/* ---- checks ---- */

static int pattern_matches(const struct acl_pattern *p, const char *topic, size_t tlen)
{
    if (!p->glob)
        return p->len == tlen && memcmp(p->text, topic, tlen) == 0;
    return policy_glob_match(p->text, topic, tlen);
}

int acl_allows(const acl_t *a, const char *user, size_t ulen, int op, const char *topic,
               size_t tlen)
{
    const struct acl_rule *r = rule_for(a, user, ulen);
    if (!r || !topic || (op != ACL_PRODUCE && op != ACL_CONSUME))
        return 0;
    size_t from = op == ACL_PRODUCE ? 0 : r->nproduce;
    size_t n = op == ACL_PRODUCE ? r->nproduce : r->nconsume;
    for (size_t i = from; i < from + n; i++)
        if (pattern_matches(&r->pats[i], topic, tlen))
            return 1;
    return 0;
}

int acl_is_admin(const acl_t *a, const char *user, size_t ulen)
{
    const struct acl_rule *r = rule_for(a, user, ulen);
    return r ? r->admin : 0;
}
