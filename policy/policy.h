/*
 * policy.h - the per-topic delivery policy model.
 *
 * A policy is an ordered list of rules loaded from the `topics:` section of
 * the config. A topic resolves to the first rule whose `match` (an exact
 * name or a glob with * and ?) matches it; a topic matching no rule is passed
 * through with at-least-once semantics. This module only parses, validates
 * and looks up: the proxy enforces what the verdict says.
 */
#ifndef EOSPROXY_POLICY_H
#define EOSPROXY_POLICY_H

#include <stddef.h>
#include <stdint.h>

typedef enum delivery {
    DELIVERY_AT_MOST_ONCE = 0,
    DELIVERY_AT_LEAST_ONCE = 1,
    DELIVERY_IDEMPOTENT = 2,
    DELIVERY_TRANSACTIONAL = 3,
} delivery_t;

/* Where a record's eventId comes from (dedup.event_id). */
typedef enum eventid_src {
    EVENTID_NONE = 0, /* no dedup on this rule */
    EVENTID_HEADER,   /* "header:NAME": the value of record header NAME */
    EVENTID_KEY,      /* "key": the record key */
    EVENTID_JSON,     /* "json:FIELD": top-level field FIELD of a JSON value */
} eventid_src_t;

typedef struct policy_dedup {
    eventid_src_t src;
    char *name;           /* header name or JSON field; NULL for key/none */
    uint64_t ttl_ms;      /* how long an eventId stays known (default 7d) */
    char *scope;          /* dedup scope; NULL means the config's `service` */
    int require_event_id; /* produce: a record without an eventId is refused */
} policy_dedup_t;

/* dlq.on_produce_error: what happens to a record that cannot be written. */
typedef enum dlq_on_error {
    DLQ_ON_ERROR_REJECT = 0, /* the client gets the error (default) */
    DLQ_ON_ERROR_DLQ = 1,    /* the record goes to the DLQ, the client gets success */
} dlq_on_error_t;

typedef struct policy_dlq {
    char *topic;        /* NULL: "<topic>.DLT" for each matched topic */
    int max_deliveries; /* >= 1 when the rule has a dlq section, 0 when it has none */
    dlq_on_error_t on_produce_error;
} policy_dlq_t;

/* 1 if the rule has a dlq section. */
#define POLICY_HAS_DLQ(r) ((r)->dlq.max_deliveries > 0)

/* Longest DLQ topic name: Kafka's limit on topic names. */
#define POLICY_TOPIC_MAX 249

/* One `topics:` rule. All strings are owned by the rule. */
typedef struct policy_rule {
    char *match;
    delivery_t delivery;
    policy_dedup_t dedup;
    policy_dlq_t dlq;
    char *bind_group; /* transactional.bind_group: the consumer group whose
                       * offset commits close this rule's transactions
                       * (txn.h's bound mode); NULL when unbound */
    int line;         /* config line of the rule, for messages */
} policy_rule_t;

typedef struct policy {
    policy_rule_t *rules;
    size_t n;
    size_t cap;
    unsigned refs; /* policy_ref / policy_free */
    /* Private to policy.c: per-rule precomputed match data (length, has
     * wildcards), parallel to rules[]; kept so exact names compare fast. */
    struct policy_match *match_info;
} policy_t;

/* A new, empty policy holding one reference (its creator's). */
policy_t *policy_new(void);
/*
 * One more reference to p, for work that keeps pointers to its rules past
 * a live reload (a dedup job holding a Fetch response); returns p. The
 * loop's thread only: the count is not atomic.
 */
policy_t *policy_ref(policy_t *p);
/* Drops one reference; the last frees the policy and all its rules.
 * policy_free(NULL) is safe. */
void policy_free(policy_t *p);

/*
 * Appends a copy of *rule (deep copy of its strings) to p. Returns 0, or -1
 * on allocation failure or when rule->match is empty.
 */
int policy_add(policy_t *p, const policy_rule_t *rule);

/*
 * The first rule matching topic[0..len), or NULL when none does (the caller
 * then applies the pass-through default, at-least-once). The returned
 * pointer is owned by p and lives until policy_free(p).
 */
const policy_rule_t *policy_lookup(const policy_t *p, const char *topic, size_t len);

/* Effective delivery for a topic: the rule's, or at-least-once. */
delivery_t policy_delivery(const policy_t *p, const char *topic, size_t len);

/*
 * How eosproxy carries out one ProduceRequest. The decision is a pure
 * function of the policy and the request; client.c carries it out.
 */
typedef enum produce_route {
    ROUTE_PASS = 0,          /* forward unchanged (at-least-once, or the client's own EOS) */
    ROUTE_AT_MOST_ONCE = 1,  /* forward with acks=0 and answer the client at once */
    ROUTE_UPGRADE = 2,       /* idempotent upgrade: eosproxy's producer id and sequences */
    ROUTE_REFUSE_FORMAT = 3, /* needs the upgrade but message format < 2: refuse */
    ROUTE_TXN = 4,           /* inside a transaction eosproxy owns (txn.h) */
    ROUTE_COUNT
} produce_route_t;

/* What the route decision needs to know about one ProduceRequest. */
typedef struct produce_facts {
    int16_t version;       /* ProduceRequest version */
    int transactional;     /* transactional_id set */
    int client_idempotent; /* some batch carries a producer id (!= -1) */
    delivery_t strongest;  /* policy_strongest() over its topics */
} produce_facts_t;

/*
 * The strongest delivery any topic needs, in the order at-most-once <
 * at-least-once < idempotent < transactional, where a request with several
 * topics takes the strongest (so at-most-once only when every topic is).
 * names[i][0..lens[i]) are the topics; n == 0 gives at-least-once.
 */
delivery_t policy_strongest(const policy_t *p, const char *const *names, const size_t *lens,
                            size_t n);

/*
 * The route for a request: clients that are idempotent or transactional
 * themselves pass untouched; at-most-once needs Produce v3+ (older versions
 * pass, which is stronger); idempotent and transactional need message
 * format 2 (Produce v3+) and are refused below it. A request with a
 * transactional topic goes into eosproxy's transaction whole (its other
 * topics too: stronger than they need).
 */
produce_route_t policy_produce_route(const produce_facts_t *f);
const char *policy_route_name(produce_route_t r);

/* 1 if any rule has a dedup section. */
int policy_has_dedup(const policy_t *p);

/* 1 if any rule has a dlq section. */
int policy_has_dlq(const policy_t *p);

/*
 * The DLQ topic for topic[0..len) under rule r (which has a dlq section):
 * dlq.topic, or "<topic>.DLT" (Spring Kafka's convention) written into
 * buf[0..cap). Returns a NUL-terminated name, or NULL if it does not fit.
 */
const char *policy_dlq_topic(const policy_rule_t *r, const char *topic, size_t len, char *buf,
                             size_t cap);

/* 1 if any rule's delivery is transactional. */
int policy_has_transactional(const policy_t *p);

/*
 * The consumer group a request's transactional output is bound to: the
 * bind_group of the first of names[0..n) whose rule is transactional with
 * one, or NULL (the request is not bound). Owned by p.
 */
const char *policy_bind_group(const policy_t *p, const char *const *names, const size_t *lens,
                              size_t n);
/* 1 if some transactional rule binds its output to group[0..len). */
int policy_binds_group(const policy_t *p, const char *group, size_t len);

/* 1 if any rule asks for something other than at-least-once. */
int policy_enforces(const policy_t *p);

/* Glob match of pattern (NUL-terminated; * and ?) against s[0..len). */
int policy_glob_match(const char *pattern, const char *s, size_t len);

/* "at-most-once" ... and the reverse; parse returns -1 if unknown. */
const char *policy_delivery_name(delivery_t d);
int policy_delivery_parse(const char *s, delivery_t *out);

/*
 * Parses a dedup.event_id spec ("header:NAME", "key", "json:FIELD") into
 * d->src and d->name (allocated). Returns 0, or -1 with *err a static
 * message.
 */
int policy_eventid_parse(const char *spec, policy_dedup_t *d, const char **err);

#endif
