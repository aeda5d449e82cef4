/*
 * test_policy.c - unit tests for policy/policy.c: glob matching, first-match
 * lookup, the pass-through default, delivery names and event_id specs.
 */
#include "policy.h"
#include "unit.h"

#include <stdlib.h>
#include <time.h>

/* policy_glob_match on a NUL-terminated subject. */
static int glob(const char *pattern, const char *s)
{
    return policy_glob_match(pattern, s, strlen(s));
}

static void test_glob_literal(void)
{
    CHECK(glob("payments", "payments"));
    CHECK(!glob("payments", "payment"));
    CHECK(!glob("payments", "payments2"));
    CHECK(!glob("payments", "Payments"));
    CHECK(glob("", ""));
    CHECK(!glob("", "a"));
    CHECK(!glob("a", ""));
}

static void test_glob_star(void)
{
    CHECK(glob("*", ""));
    CHECK(glob("*", "anything.at.all"));
    CHECK(glob("**", "x"));
    CHECK(glob("payments.*", "payments."));
    CHECK(glob("payments.*", "payments.eu"));
    CHECK(!glob("payments.*", "payments"));
    CHECK(!glob("payments.*", "xpayments.eu"));
    CHECK(glob("*.dlq", "orders.dlq"));
    CHECK(glob("*.dlq", ".dlq"));
    CHECK(!glob("*.dlq", "orders.dlq2"));
    CHECK(glob("a*b*c", "abc"));
    CHECK(glob("a*b*c", "aXXbYYc"));
    CHECK(glob("a*b*c", "abcbc"));
    CHECK(!glob("a*b*c", "aXXbYY"));
    CHECK(!glob("a*b*c", "acb"));
    CHECK(glob("*a*", "banana"));
    CHECK(glob("*ana", "banana"));
    CHECK(!glob("*anas", "banana"));
}

static void test_glob_question(void)
{
    CHECK(glob("?", "a"));
    CHECK(!glob("?", ""));
    CHECK(!glob("?", "ab"));
    CHECK(glob("audit.?", "audit.1"));
    CHECK(!glob("audit.?", "audit.12"));
    CHECK(glob("a?c*", "abcdef"));
    CHECK(glob("*?", "x"));
    CHECK(!glob("*?", ""));
    CHECK(glob("?*?", "ab"));
    CHECK(!glob("?*?", "a"));
}

static void test_glob_length_bound(void)
{
    /* The subject is s[0..len): bytes after len are not part of it. */
    CHECK(policy_glob_match("abc", "abcdef", 3));
    CHECK(!policy_glob_match("abcd", "abcdef", 3));
    CHECK(policy_glob_match("ab*", "abcdef", 2));
    CHECK(policy_glob_match("*", "xyz", 0));
}

/* Exponential in a naive recursive matcher; must finish at once here. */
static void test_glob_pathological(void)
{
    size_t n = 20000;
    char *s = malloc(n + 1);
    CHECK(s != NULL);
    if (s == NULL)
        return;
    memset(s, 'a', n);
    s[n] = '\0';
    clock_t t0 = clock();
    CHECK(!glob("a*a*a*a*a*a*a*a*a*a*b", s));
    CHECK(!glob("*a*a*a*a*a*a*a*a*a*a*a*a*b*", s));
    CHECK(glob("a*a*a*a*a*a*a*a*a*a*a", s));
    s[n - 1] = 'b';
    CHECK(glob("a*a*a*a*a*a*a*a*a*a*b", s));
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    CHECK(secs < 2.0);
    free(s);
}

static policy_rule_t rule(const char *match, delivery_t d)
{
    policy_rule_t r;
    memset(&r, 0, sizeof(r));
    r.match = (char *)match;
    r.delivery = d;
    return r;
}

static void test_lookup_first_match(void)
{
    policy_t *p = policy_new();
    CHECK(p != NULL);
    policy_rule_t r1 = rule("payments.captured", DELIVERY_TRANSACTIONAL);
    policy_rule_t r2 = rule("payments.*", DELIVERY_IDEMPOTENT);
    policy_rule_t r3 = rule("logs.*", DELIVERY_AT_MOST_ONCE);
    policy_rule_t r4 = rule("payments.other", DELIVERY_AT_MOST_ONCE); /* shadowed by r2 */
    r1.line = 10;
    CHECK_EQ(policy_add(p, &r1), 0);
    CHECK_EQ(policy_add(p, &r2), 0);
    CHECK_EQ(policy_add(p, &r3), 0);
    CHECK_EQ(policy_add(p, &r4), 0);
    CHECK_EQ(p->n, 4);

    const char *t = "payments.captured";
    const policy_rule_t *m = policy_lookup(p, t, strlen(t));
    CHECK(m != NULL && m->delivery == DELIVERY_TRANSACTIONAL && m->line == 10);
    t = "payments.other";
    m = policy_lookup(p, t, strlen(t));
    CHECK(m != NULL && strcmp(m->match, "payments.*") == 0);
    CHECK_EQ(policy_delivery(p, "logs.app", 8), DELIVERY_AT_MOST_ONCE);
    /* Exact rules compare the length too: a prefix does not match. */
    CHECK_EQ(policy_delivery(p, "payments.captured", 16), DELIVERY_IDEMPOTENT);
    m = policy_lookup(p, "payments.capturedX", 18);
    CHECK(m != NULL && strcmp(m->match, "payments.*") == 0);

    /* Unmatched: NULL and the pass-through default. */
    CHECK(policy_lookup(p, "orders", 6) == NULL);
    CHECK_EQ(policy_delivery(p, "orders", 6), DELIVERY_AT_LEAST_ONCE);
    CHECK_EQ(policy_delivery(p, "", 0), DELIVERY_AT_LEAST_ONCE);
    policy_free(p);

    /* An empty policy and a NULL policy pass everything through. */
    p = policy_new();
    CHECK(policy_lookup(p, "x", 1) == NULL);
    CHECK_EQ(policy_delivery(p, "x", 1), DELIVERY_AT_LEAST_ONCE);
    CHECK_EQ(policy_delivery(NULL, "x", 1), DELIVERY_AT_LEAST_ONCE);
    policy_free(p);
}

static void test_add_deep_copy(void)
{
    policy_t *p = policy_new();
    char match[] = "orders.*", name[] = "event-id", scope[] = "svc", dlq[] = "orders.dlq";
    policy_rule_t r = rule(match, DELIVERY_IDEMPOTENT);
    r.dedup.src = EVENTID_HEADER;
    r.dedup.name = name;
    r.dedup.ttl_ms = 1234;
    r.dedup.scope = scope;
    r.dlq.topic = dlq;
    r.dlq.max_deliveries = 3;
    CHECK_EQ(policy_add(p, &r), 0);
    /* Scribble over the caller's strings: the policy kept its own copies. */
    memset(match, 'x', sizeof(match) - 1);
    memset(name, 'x', sizeof(name) - 1);
    memset(scope, 'x', sizeof(scope) - 1);
    memset(dlq, 'x', sizeof(dlq) - 1);
    const policy_rule_t *m = policy_lookup(p, "orders.eu", 9);
    CHECK(m != NULL);
    if (m != NULL) {
        CHECK_STR(m->match, "orders.*");
        CHECK_STR(m->dedup.name, "event-id");
        CHECK_STR(m->dedup.scope, "svc");
        CHECK_STR(m->dlq.topic, "orders.dlq");
        CHECK_EQ(m->dedup.ttl_ms, 1234);
        CHECK_EQ(m->dlq.max_deliveries, 3);
        CHECK(m->match != match);
    }
    /* Empty or missing match is refused. */
    policy_rule_t bad = rule("", DELIVERY_IDEMPOTENT);
    CHECK_EQ(policy_add(p, &bad), -1);
    bad.match = NULL;
    CHECK_EQ(policy_add(p, &bad), -1);
    CHECK_EQ(p->n, 1);
    policy_free(p);
    policy_free(NULL);
}

/* Many rules: the arrays grow and every rule stays reachable. */
static void test_many_rules(void)
{
    policy_t *p = policy_new();
    char name[32];
    int ok = 1;
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof(name), "topic.%d", i);
        policy_rule_t r = rule(name, (delivery_t)(i % 4));
        ok &= policy_add(p, &r) == 0;
    }
    CHECK(ok);
    for (int i = 0; i < 300; i += 37) {
        snprintf(name, sizeof(name), "topic.%d", i);
        CHECK_EQ(policy_delivery(p, name, strlen(name)), i % 4);
    }
    policy_free(p);
}

static void test_delivery_names(void)
{
    static const char *const names[] = {"at-most-once", "at-least-once", "idempotent",
                                        "transactional"};
    for (int i = 0; i < 4; i++) {
        delivery_t d;
        CHECK_STR(policy_delivery_name((delivery_t)i), names[i]);
        CHECK_EQ(policy_delivery_parse(names[i], &d), 0);
        CHECK_EQ(d, i);
    }
    delivery_t d = DELIVERY_IDEMPOTENT;
    CHECK_EQ(policy_delivery_parse("exactly-once", &d), -1);
    CHECK_EQ(policy_delivery_parse("Idempotent", &d), -1);
    CHECK_EQ(policy_delivery_parse("", &d), -1);
    CHECK_EQ(policy_delivery_parse(NULL, &d), -1);
    CHECK_EQ(d, DELIVERY_IDEMPOTENT);
    CHECK_STR(policy_delivery_name((delivery_t)42), "unknown");
}

static void test_eventid_parse(void)
{
    policy_dedup_t d;
    const char *err = NULL;
    memset(&d, 0, sizeof(d));

    CHECK_EQ(policy_eventid_parse("header:event-id", &d, &err), 0);
    CHECK_EQ(d.src, EVENTID_HEADER);
    CHECK(d.name != NULL && strcmp(d.name, "event-id") == 0);

    CHECK_EQ(policy_eventid_parse("json:orderId", &d, &err), 0);
    CHECK_EQ(d.src, EVENTID_JSON);
    CHECK(d.name != NULL && strcmp(d.name, "orderId") == 0);

    CHECK_EQ(policy_eventid_parse("key", &d, &err), 0);
    CHECK_EQ(d.src, EVENTID_KEY);
    CHECK(d.name == NULL);

    /* A header name may itself contain ':'. */
    CHECK_EQ(policy_eventid_parse("header:x:y", &d, &err), 0);
    CHECK(d.name != NULL && strcmp(d.name, "x:y") == 0);

    static const char *const bad[] = {"",      "header:", "json:",    "header", "json",
                                      "key:x", "value",   "Header:x", "hdr:x",  ":x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err = NULL;
        CHECK_EQ(policy_eventid_parse(bad[i], &d, &err), -1);
        CHECK(err != NULL && err[0] != '\0');
    }
    /* A failed parse leaves the previous result alone. */
    CHECK_EQ(d.src, EVENTID_HEADER);
    CHECK(d.name != NULL && strcmp(d.name, "x:y") == 0);
    CHECK_EQ(policy_eventid_parse("header:", &d, &err), -1);
    CHECK(strstr(err, "header name") != NULL);
    CHECK_EQ(policy_eventid_parse("json:", &d, &err), -1);
    CHECK(strstr(err, "field name") != NULL);
    free(d.name);
}

/* The route decision: strongest topic wins; clients' own EOS passes. */
static void test_produce_route(void)
{
    policy_t *p = policy_new();
    policy_rule_t r1 = rule("pay.*", DELIVERY_IDEMPOTENT);
    policy_rule_t r2 = rule("logs.*", DELIVERY_AT_MOST_ONCE);
    policy_rule_t r3 = rule("tx.*", DELIVERY_TRANSACTIONAL);
    CHECK_EQ(policy_enforces(p), 0);
    policy_add(p, &r1);
    policy_add(p, &r2);
    policy_add(p, &r3);
    CHECK_EQ(policy_enforces(p), 1);

    const char *logs[] = {"logs.a", "logs.b"};
    size_t loglens[] = {6, 6};
    CHECK_EQ(policy_strongest(p, logs, loglens, 2), DELIVERY_AT_MOST_ONCE);
    const char *mixed[] = {"logs.a", "other"};
    size_t mixedlens[] = {6, 5};
    CHECK_EQ(policy_strongest(p, mixed, mixedlens, 2), DELIVERY_AT_LEAST_ONCE);
    const char *up[] = {"logs.a", "pay.x", "other"};
    size_t uplens[] = {6, 5, 5};
    CHECK_EQ(policy_strongest(p, up, uplens, 3), DELIVERY_IDEMPOTENT);
    const char *tx[] = {"pay.x", "tx.y"};
    size_t txlens[] = {5, 4};
    CHECK_EQ(policy_strongest(p, tx, txlens, 2), DELIVERY_TRANSACTIONAL);
    CHECK_EQ(policy_strongest(p, NULL, NULL, 0), DELIVERY_AT_LEAST_ONCE);

    produce_facts_t f = {.version = 7, .strongest = DELIVERY_IDEMPOTENT};
    CHECK_EQ(policy_produce_route(&f), ROUTE_UPGRADE);
    f.client_idempotent = 1;
    CHECK_EQ(policy_produce_route(&f), ROUTE_PASS);
    f.client_idempotent = 0;
    f.transactional = 1;
    CHECK_EQ(policy_produce_route(&f), ROUTE_PASS);
    f.transactional = 0;
    f.version = 2;
    CHECK_EQ(policy_produce_route(&f), ROUTE_REFUSE_FORMAT);
    f.strongest = DELIVERY_AT_MOST_ONCE;
    CHECK_EQ(policy_produce_route(&f), ROUTE_PASS);
    f.version = 9;
    CHECK_EQ(policy_produce_route(&f), ROUTE_AT_MOST_ONCE);
    f.strongest = DELIVERY_AT_LEAST_ONCE;
    CHECK_EQ(policy_produce_route(&f), ROUTE_PASS);
    f.strongest = DELIVERY_TRANSACTIONAL;
    CHECK_EQ(policy_produce_route(&f), ROUTE_TXN);
    f.version = 2;
    CHECK_EQ(policy_produce_route(&f), ROUTE_REFUSE_FORMAT);
    CHECK_STR(policy_route_name(ROUTE_AT_MOST_ONCE), "at_most_once");
    CHECK_STR(policy_route_name(ROUTE_TXN), "transaction");
    CHECK_EQ(policy_has_transactional(p), 1);
    CHECK_EQ(policy_has_dedup(p), 0);
    policy_rule_t r4 = rule("orders", DELIVERY_AT_LEAST_ONCE);
    r4.dedup.src = EVENTID_KEY;
    policy_add(p, &r4);
    CHECK_EQ(policy_has_dedup(p), 1);
    policy_free(p);
}

int main(void)
{
    test_produce_route();
    test_glob_literal();
    test_glob_star();
    test_glob_question();
    test_glob_length_bound();
    test_glob_pathological();
    test_lookup_first_match();
    test_add_deep_copy();
    test_many_rules();
    test_delivery_names();
    test_eventid_parse();
    return unit_done("policy");
}
