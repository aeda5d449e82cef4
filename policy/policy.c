/*
 * policy.c - the per-topic delivery policy: an ordered list of rules, a glob
 * matcher and first-match lookup. See policy.h for the model.
 *
 * Lookup runs once per topic of every Produce/Fetch request, so each rule
 * keeps a precomputed match length and a "has wildcards" flag: a literal
 * rule costs one length compare and, only when the lengths agree, a memcmp.
 */
#include "policy.h"

#include <stdlib.h>
#include <string.h>

/* What policy.c precomputes for each rule's match (parallel to p->rules). */
struct policy_match {
    size_t len; /* strlen(match) */
    int glob;   /* match contains '*' or '?' */
};

static const char *const delivery_names[] = {
    [DELIVERY_AT_MOST_ONCE] = "at-most-once",
    [DELIVERY_AT_LEAST_ONCE] = "at-least-once",
    [DELIVERY_IDEMPOTENT] = "idempotent",
    [DELIVERY_TRANSACTIONAL] = "transactional",
};
#define DELIVERY_COUNT (sizeof(delivery_names) / sizeof(delivery_names[0]))

policy_t *policy_new(void)
{
    policy_t *p = calloc(1, sizeof(policy_t));
    if (p)
        p->refs = 1;
    return p;
}

policy_t *policy_ref(policy_t *p)
{
    if (p)
        p->refs++;
    return p;
}

/* Frees the strings a rule owns (not the rule itself) and clears them. */
static void rule_clear(policy_rule_t *r)
{
    free(r->match);
    free(r->dedup.name);
    free(r->dedup.scope);
    free(r->dlq.topic);
    free(r->bind_group);
    r->bind_group = NULL;
    r->match = NULL;
    r->dedup.name = NULL;
    r->dedup.scope = NULL;
    r->dlq.topic = NULL;
}

void policy_free(policy_t *p)
{
    if (p == NULL || --p->refs > 0)
        return;
    for (size_t i = 0; i < p->n; i++)
        rule_clear(&p->rules[i]);
    free(p->rules);
    free(p->match_info);
    free(p);
}

/* strdup that maps NULL to NULL; *ok is cleared on allocation failure. */
static char *dup_or_null(const char *s, int *ok)
{
    if (s == NULL)
        return NULL;
    char *d = strdup(s);
    if (d == NULL)
        *ok = 0;
    return d;
}

/* Grows rules[] and match_info[] so that one more rule fits. */
static int policy_reserve(policy_t *p)
{
    if (p->n < p->cap)
        return 0;
    size_t cap = p->cap ? p->cap * 2 : 8;
    policy_rule_t *rules = realloc(p->rules, cap * sizeof(*rules));
    if (rules == NULL)
        return -1;
    p->rules = rules;
    struct policy_match *info = realloc(p->match_info, cap * sizeof(*info));
    if (info == NULL)
        return -1;
    p->match_info = info;
    p->cap = cap;
    return 0;
}

int policy_add(policy_t *p, const policy_rule_t *rule)
{
    if (p == NULL || rule == NULL || rule->match == NULL || rule->match[0] == '\0')
        return -1;
    if (policy_reserve(p) < 0)
        return -1;

    policy_rule_t copy = *rule;
    int ok = 1;
    copy.match = dup_or_null(rule->match, &ok);
    copy.dedup.name = dup_or_null(rule->dedup.name, &ok);
    copy.dedup.scope = dup_or_null(rule->dedup.scope, &ok);
    copy.dlq.topic = dup_or_null(rule->dlq.topic, &ok);
    copy.bind_group = dup_or_null(rule->bind_group, &ok);
    if (!ok) {
        rule_clear(&copy);
        return -1;
    }
    p->match_info[p->n].len = strlen(copy.match);
    p->match_info[p->n].glob = strpbrk(copy.match, "*?") != NULL;
    p->rules[p->n++] = copy;
    return 0;
}

/*
 * Iterative glob with single-star backtracking: on a mismatch, retry from
 * the most recent '*' with it absorbing one more character. An earlier '*'
 * never needs revisiting (the later one can absorb anything it could), so
 * the worst case is O(len(pattern) * len(s)) with no recursion, even for
 * patterns such as "a*a*a*a*b".
 */
int policy_glob_match(const char *pattern, const char *s, size_t len)
{
    const char *p = pattern;
    const char *star = NULL; /* pattern position just after the last '*' */
    size_t star_si = 0;      /* s index that '*' was last tried up to */
    size_t si = 0;

    while (si < len) {
        if (*p == '*') {
            star = ++p;
            star_si = si;
        } else if (*p != '\0' && (*p == '?' || *p == s[si])) {
            p++;
            si++;
        } else if (star != NULL) {
            p = star;
            si = ++star_si;
        } else {
            return 0;
        }
    }
    while (*p == '*')
        p++;
    return *p == '\0';
}

/* Does rule i match topic[0..len)? Literal rules skip the glob engine. */
static int rule_matches(const policy_t *p, size_t i, const char *topic, size_t len)
{
    const char *match = p->rules[i].match;
    if (p->match_info == NULL) /* a policy_t not built by policy_add */
        return policy_glob_match(match, topic, len);
    const struct policy_match *m = &p->match_info[i];
    if (!m->glob)
        return m->len == len && memcmp(match, topic, len) == 0;
    return policy_glob_match(match, topic, len);
}

const policy_rule_t *policy_lookup(const policy_t *p, const char *topic, size_t len)
{
    if (p == NULL || topic == NULL)
        return NULL;
    for (size_t i = 0; i < p->n; i++) {
        if (rule_matches(p, i, topic, len))
            return &p->rules[i];
    }
    return NULL;
}

delivery_t policy_delivery(const policy_t *p, const char *topic, size_t len)
{
    const policy_rule_t *r = policy_lookup(p, topic, len);
    return r ? r->delivery : DELIVERY_AT_LEAST_ONCE;
}

/* Strength order used when one request touches several topics. */
static int strength(delivery_t d)
{
    switch (d) {
    case DELIVERY_AT_MOST_ONCE:
        return 0;
    case DELIVERY_AT_LEAST_ONCE:
        return 1;
    case DELIVERY_IDEMPOTENT:
        return 2;
    case DELIVERY_TRANSACTIONAL:
        return 3;
    default:
        return 1;
    }
}

delivery_t policy_strongest(const policy_t *p, const char *const *names, const size_t *lens,
                            size_t n)
{
    if (n == 0)
        return DELIVERY_AT_LEAST_ONCE;
    delivery_t best = policy_delivery(p, names[0], lens[0]);
    for (size_t i = 1; i < n; i++) {
        delivery_t d = policy_delivery(p, names[i], lens[i]);
        if (strength(d) > strength(best))
            best = d;
    }
    return best;
}

produce_route_t policy_produce_route(const produce_facts_t *f)
{
    if (f->transactional || f->client_idempotent)
        return ROUTE_PASS;
    switch (f->strongest) {
    case DELIVERY_AT_MOST_ONCE:
        return f->version >= 3 ? ROUTE_AT_MOST_ONCE : ROUTE_PASS;
    case DELIVERY_IDEMPOTENT:
        return f->version >= 3 ? ROUTE_UPGRADE : ROUTE_REFUSE_FORMAT;
    case DELIVERY_TRANSACTIONAL:
        return f->version >= 3 ? ROUTE_TXN : ROUTE_REFUSE_FORMAT;
    default:
        return ROUTE_PASS;
    }
}

const char *policy_route_name(produce_route_t r)
{
    static const char *const names[ROUTE_COUNT] = {"pass", "at_most_once", "upgrade",
                                                   "refused_format", "transaction"};
    return (unsigned)r < ROUTE_COUNT ? names[r] : "unknown";
}

int policy_has_dedup(const policy_t *p)
{
    for (size_t i = 0; p && i < p->n; i++) {
        if (p->rules[i].dedup.src != EVENTID_NONE)
            return 1;
    }
    return 0;
}

int policy_has_dlq(const policy_t *p)
{
    for (size_t i = 0; p && i < p->n; i++) {
        if (POLICY_HAS_DLQ(&p->rules[i]))
            return 1;
    }
    return 0;
}

const char *policy_dlq_topic(const policy_rule_t *r, const char *topic, size_t len, char *buf,
                             size_t cap)
{
    if (r->dlq.topic)
        return r->dlq.topic;
    if (len + 5 > cap || len + 4 > POLICY_TOPIC_MAX)
        return NULL;
    memcpy(buf, topic, len);
    memcpy(buf + len, ".DLT", 5);
    return buf;
}

int policy_has_transactional(const policy_t *p)
{
    for (size_t i = 0; p && i < p->n; i++) {
        if (p->rules[i].delivery == DELIVERY_TRANSACTIONAL)
            return 1;
    }
    return 0;
}

const char *policy_bind_group(const policy_t *p, const char *const *names, const size_t *lens,
                              size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const policy_rule_t *r = policy_lookup(p, names[i], lens[i]);
        if (r && r->delivery == DELIVERY_TRANSACTIONAL && r->bind_group)
            return r->bind_group;
    }
    return NULL;
}

int policy_binds_group(const policy_t *p, const char *group, size_t len)
{
    for (size_t i = 0; p && i < p->n; i++) {
        const char *g = p->rules[i].bind_group;
        if (p->rules[i].delivery == DELIVERY_TRANSACTIONAL && g && strlen(g) == len &&
            memcmp(g, group, len) == 0)
            return 1;
    }
    return 0;
}

int policy_enforces(const policy_t *p)
{
    for (size_t i = 0; p && i < p->n; i++) {
        if (p->rules[i].delivery != DELIVERY_AT_LEAST_ONCE)
            return 1;
    }
    return 0;
}

const char *policy_delivery_name(delivery_t d)
{
    if ((unsigned)d >= DELIVERY_COUNT)
        return "unknown";
    return delivery_names[d];
}

int policy_delivery_parse(const char *s, delivery_t *out)
{
    if (s == NULL)
        return -1;
    for (size_t i = 0; i < DELIVERY_COUNT; i++) {
        if (strcmp(s, delivery_names[i]) == 0) {
            *out = (delivery_t)i;
            return 0;
        }
    }
    return -1;
}

/* If spec is "PREFIX:REST" returns REST, else NULL. */
static const char *after_prefix(const char *spec, const char *prefix)
{
    size_t n = strlen(prefix);
    if (strncmp(spec, prefix, n) != 0 || spec[n] != ':')
        return NULL;
    return spec + n + 1;
}

int policy_eventid_parse(const char *spec, policy_dedup_t *d, const char **err)
{
    static const char *const usage = "must be \"header:NAME\", \"key\" or \"json:FIELD\"";
    const char *arg;
    eventid_src_t src;

    if (spec == NULL || spec[0] == '\0') {
        *err = usage;
        return -1;
    }
    if (strcmp(spec, "key") == 0) {
        free(d->name);
        d->name = NULL;
        d->src = EVENTID_KEY;
        return 0;
    }
    if ((arg = after_prefix(spec, "header")) != NULL) {
        src = EVENTID_HEADER;
        if (*arg == '\0') {
            *err = "\"header:\" needs a header name (\"header:NAME\")";
            return -1;
        }
    } else if ((arg = after_prefix(spec, "json")) != NULL) {
        src = EVENTID_JSON;
        if (*arg == '\0') {
            *err = "\"json:\" needs a field name (\"json:FIELD\")";
            return -1;
        }
    } else if (after_prefix(spec, "key") != NULL) {
        *err = "\"key\" takes no argument";
        return -1;
    } else {
        *err = usage;
        return -1;
    }
    char *name = strdup(arg);
    if (name == NULL) {
        *err = "out of memory";
        return -1;
    }
    free(d->name);
    d->name = name;
    d->src = src;
    return 0;
}
