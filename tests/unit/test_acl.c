/*
 * test_acl.c - unit tests for policy/acl.c: per-user produce/consume
 * patterns, the "*" fallback, admin, the checks acl_add makes (user names,
 * patterns, duplicates, limits) and lookups among many users.
 */
#include "acl.h"
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>

/* acl_allows on NUL-terminated strings. */
static int allows(const acl_t *a, const char *user, int op, const char *topic)
{
    return acl_allows(a, user, strlen(user), op, topic, strlen(topic));
}

static void test_basic(void)
{
    acl_t *a = acl_new();
    char err[256] = "";
    const char *p[] = {"orders", "payments.*"};
    const char *c[] = {"orders", "audit.?"};
    CHECK_EQ(acl_add(a, "alice", p, 2, c, 2, 0, err, sizeof(err)), 0);
    CHECK_EQ(acl_count(a), 1);

    CHECK(allows(a, "alice", ACL_PRODUCE, "orders"));
    CHECK(allows(a, "alice", ACL_PRODUCE, "payments.eu"));
    CHECK(allows(a, "alice", ACL_PRODUCE, "payments."));
    CHECK(!allows(a, "alice", ACL_PRODUCE, "payments"));
    CHECK(!allows(a, "alice", ACL_PRODUCE, "orders2"));
    CHECK(!allows(a, "alice", ACL_PRODUCE, "order"));
    CHECK(!allows(a, "alice", ACL_PRODUCE, "audit.1")); /* consume only */
    CHECK(allows(a, "alice", ACL_CONSUME, "audit.1"));
    CHECK(!allows(a, "alice", ACL_CONSUME, "audit.12"));
    CHECK(!allows(a, "alice", ACL_CONSUME, "payments.eu")); /* produce only */
    CHECK(allows(a, "alice", ACL_CONSUME, "orders"));

    /* unknown users, ops and odd arguments are denied */
    CHECK(!allows(a, "bob", ACL_PRODUCE, "orders"));
    CHECK(!allows(a, "alice", 0, "orders"));
    CHECK(!allows(a, "alice", 3, "orders"));
    CHECK(!acl_allows(a, "alice", 0, ACL_PRODUCE, "orders", 6));
    CHECK(!acl_allows(a, NULL, 5, ACL_PRODUCE, "orders", 6));
    CHECK(!acl_allows(a, "alice", 5, ACL_PRODUCE, NULL, 0));
    CHECK(!acl_allows(NULL, "alice", 5, ACL_PRODUCE, "orders", 6));
    CHECK(!acl_is_admin(a, "alice", 5));
    CHECK(!acl_is_admin(NULL, "alice", 5));

    /* buffers are (ptr, len): what follows len is not part of the name */
    CHECK(acl_allows(a, "alicexyz", 5, ACL_PRODUCE, "orders-and-more", 6));
    CHECK(!acl_allows(a, "alic", 4, ACL_PRODUCE, "orders", 6));
    CHECK(!acl_allows(a, "alice", 5, ACL_PRODUCE, "orders", 5));
    acl_free(a);
    acl_free(NULL);
    CHECK_EQ(acl_count(NULL), 0);
}

static void test_star(void)
{
    acl_t *a = acl_new();
    char err[256];
    const char *any_p[] = {"public.*"};
    const char *any_c[] = {"public.*", "news"};
    const char *bob_p[] = {"bob.*"};
    CHECK_EQ(acl_add(a, "*", any_p, 1, any_c, 2, 0, err, sizeof(err)), 0);
    CHECK_EQ(acl_add(a, "bob", bob_p, 1, NULL, 0, 1, err, sizeof(err)), 0);
    CHECK_EQ(acl_count(a), 2);
    /* carol has no rule: "*" */
    CHECK(allows(a, "carol", ACL_PRODUCE, "public.x"));
    CHECK(allows(a, "carol", ACL_CONSUME, "news"));
    CHECK(!allows(a, "carol", ACL_PRODUCE, "news"));
    CHECK(!acl_is_admin(a, "carol", 5));
    /* bob has his own rule and never falls back to "*" */
    CHECK(allows(a, "bob", ACL_PRODUCE, "bob.logs"));
    CHECK(!allows(a, "bob", ACL_PRODUCE, "public.x"));
    CHECK(!allows(a, "bob", ACL_CONSUME, "news"));
    CHECK(!allows(a, "bob", ACL_CONSUME, "bob.logs"));
    CHECK(acl_is_admin(a, "bob", 3));
    /* a user literally called "*" cannot exist; the lookup still gives "*" */
    CHECK(allows(a, "*", ACL_CONSUME, "news"));
    /* an empty user name is nobody */
    CHECK(!acl_allows(a, "", 0, ACL_CONSUME, "news", 4));
    CHECK(!acl_is_admin(a, "", 0));
    acl_free(a);

    /* admin through "*" */
    a = acl_new();
    CHECK_EQ(acl_add(a, "*", NULL, 0, NULL, 0, 1, err, sizeof(err)), 0);
    CHECK_EQ(acl_add(a, "dave", NULL, 0, NULL, 0, 0, err, sizeof(err)), 0);
    CHECK(acl_is_admin(a, "erin", 4));
    CHECK(!acl_is_admin(a, "dave", 4));
    CHECK(!allows(a, "erin", ACL_PRODUCE, "x")); /* no patterns: nothing */
    acl_free(a);

    /* no "*" rule: unknown users get nothing */
    a = acl_new();
    const char *all[] = {"*"};
    CHECK_EQ(acl_add(a, "frank", all, 1, all, 1, 0, err, sizeof(err)), 0);
    CHECK(allows(a, "frank", ACL_PRODUCE, "anything.at-all_9"));
    CHECK(!allows(a, "grace", ACL_PRODUCE, "anything"));
    acl_free(a);
}

/* acl_add fails with a message and leaves the table as it was. */
static void expect_fail(acl_t *a, const char *user, const char *const *p, size_t np,
                        const char *const *c, size_t nc, const char *needle)
{
    char err[256] = "";
    size_t before = acl_count(a);
    CHECK_EQ(acl_add(a, user, p, np, c, nc, 0, err, sizeof(err)), -1);
    CHECK_EQ(acl_count(a), before);
    CHECK(strstr(err, needle) != NULL);
    if (!strstr(err, needle))
        fprintf(stderr, "  err \"%s\" lacks \"%s\"\n", err, needle);
}

static void test_errors(void)
{
    acl_t *a = acl_new();
    char err[256];
    const char *ok[] = {"t"};
    CHECK_EQ(acl_add(a, "alice", ok, 1, ok, 1, 0, err, sizeof(err)), 0);
    CHECK_EQ(acl_add(a, "*", ok, 1, ok, 1, 0, err, sizeof(err)), 0);

    expect_fail(a, "alice", ok, 1, NULL, 0, "duplicate rule for user alice");
    expect_fail(a, "*", ok, 1, NULL, 0, "duplicate rule for user *");
    expect_fail(a, "", ok, 1, NULL, 0, "invalid user name");
    expect_fail(a, "bad user", ok, 1, NULL, 0, "invalid user name \"bad user\"");
    expect_fail(a, "a*", ok, 1, NULL, 0, "invalid user name");
    expect_fail(a, "bad\nuser", ok, 1, NULL, 0, "\"bad?user\"");

    const char *empty[] = {""};
    expect_fail(a, "bob", empty, 1, NULL, 0, "produce pattern 1 \"\" is empty");
    const char *slash[] = {"ok", "a/b"};
    expect_fail(a, "bob", NULL, 0, slash, 2, "consume pattern 2 \"a/b\" has a character");
    const char *nul[] = {NULL};
    expect_fail(a, "bob", nul, 1, NULL, 0, "produce pattern 1 \"\" is null");
    expect_fail(a, "bob", NULL, 1, NULL, 0, "produce patterns missing");
    const char *ctrl[] = {"x\x01y"};
    expect_fail(a, "bob", ctrl, 1, NULL, 0, "\"x?y\"");

    char p249[250], p250[251];
    memset(p249, 'x', 249);
    p249[249] = '\0';
    memset(p250, 'y', 250);
    p250[250] = '\0';
    const char *long_ok[] = {p249};
    const char *too_long[] = {p250};
    expect_fail(a, "bob", too_long, 1, NULL, 0, "longer than 249");
    expect_fail(a, "bob", too_long, 1, NULL, 0, "yyyy..."); /* shown cut at 64 */
    CHECK_EQ(acl_add(a, "bob", long_ok, 1, NULL, 0, 0, err, sizeof(err)), 0);
    CHECK(allows(a, "bob", ACL_PRODUCE, p249));

    /* 1000 patterns per user, produce and consume together */
    const char **many = malloc(1001 * sizeof(*many));
    for (int i = 0; i < 1001; i++)
        many[i] = "m?";
    expect_fail(a, "carol", many, 1001, NULL, 0, "too many patterns");
    expect_fail(a, "carol", many, 600, many, 401, "too many patterns");
    expect_fail(a, "carol", many, (size_t)-1, many, 2, "too many patterns");
    CHECK_EQ(acl_add(a, "carol", many, 600, many, 400, 0, err, sizeof(err)), 0);
    CHECK(allows(a, "carol", ACL_CONSUME, "m1"));
    free(many);

    /* a too small err buffer is truncated, never overrun; NULL err is fine */
    char tiny[8];
    CHECK_EQ(acl_add(a, "alice", ok, 1, NULL, 0, 0, tiny, sizeof(tiny)), -1);
    CHECK_EQ(strlen(tiny), 7);
    CHECK_EQ(acl_add(a, "alice", ok, 1, NULL, 0, 0, NULL, 0), -1);
    CHECK_EQ(acl_add(NULL, "x", ok, 1, NULL, 0, 0, err, sizeof(err)), -1);
    CHECK_EQ(acl_add(a, NULL, ok, 1, NULL, 0, 0, err, sizeof(err)), -1);

    /* user names of 255 characters, not 256 */
    char u255[256], u256[257];
    memset(u255, 'u', 255);
    u255[255] = '\0';
    memset(u256, 'v', 256);
    u256[256] = '\0';
    CHECK_EQ(acl_add(a, u255, ok, 1, NULL, 0, 0, err, sizeof(err)), 0);
    expect_fail(a, u256, ok, 1, NULL, 0, "invalid user name");
    CHECK(allows(a, u255, ACL_PRODUCE, "t"));
    acl_free(a);
}

/* The patterns a rule keeps are copies: the caller's strings may change. */
static void test_copies(void)
{
    acl_t *a = acl_new();
    char err[256];
    char user[] = "zoe";
    char pat[] = "zz.*";
    const char *p[] = {pat};
    CHECK_EQ(acl_add(a, user, p, 1, p, 1, 0, err, sizeof(err)), 0);
    user[0] = 'x';
    pat[0] = 'q';
    CHECK(allows(a, "zoe", ACL_PRODUCE, "zz.1"));
    CHECK(!allows(a, "zoe", ACL_PRODUCE, "qz.1"));
    CHECK(!allows(a, "xoe", ACL_PRODUCE, "zz.1"));
    acl_free(a);
}

/* 10000 users added in scrambled order: each finds its own rule (binary
 * search over a sorted table), and the 10001st rule is refused. */
static void test_many_users(void)
{
    acl_t *a = acl_new();
    char err[256], user[32], topic[32];
    int ok = 1;
    for (int i = 0; i < ACL_MAX_USERS - 1; i++) {
        int k = (int)(((long)i * 7919) % (ACL_MAX_USERS - 1)); /* a permutation */
        snprintf(user, sizeof(user), "user-%d", k);
        snprintf(topic, sizeof(topic), "t-%d", k);
        const char *p[] = {topic};
        ok &= acl_add(a, user, p, 1, NULL, 0, k % 2, err, sizeof(err)) == 0;
    }
    CHECK(ok);
    const char *anyp[] = {"shared"};
    CHECK_EQ(acl_add(a, "*", anyp, 1, NULL, 0, 0, err, sizeof(err)), 0);
    CHECK_EQ(acl_count(a), ACL_MAX_USERS);
    const char *p[] = {"x"};
    CHECK_EQ(acl_add(a, "one-too-many", p, 1, NULL, 0, 0, err, sizeof(err)), -1);
    CHECK(strstr(err, "too many users") != NULL);
    int right = 1, wrong = 0, admin = 1;
    for (int k = 0; k < ACL_MAX_USERS - 1; k++) {
        snprintf(user, sizeof(user), "user-%d", k);
        snprintf(topic, sizeof(topic), "t-%d", k);
        right &= allows(a, user, ACL_PRODUCE, topic);
        snprintf(topic, sizeof(topic), "t-%d", (k + 1) % (ACL_MAX_USERS - 1));
        wrong |= allows(a, user, ACL_PRODUCE, topic);
        wrong |= allows(a, user, ACL_PRODUCE, "shared"); /* own rule, no fallback */
        admin &= acl_is_admin(a, user, strlen(user)) == k % 2;
    }
    CHECK(right);
    CHECK(!wrong);
    CHECK(admin);
    CHECK(allows(a, "user-99999", ACL_PRODUCE, "shared"));
    CHECK(!allows(a, "user-99999", ACL_PRODUCE, "t-1"));
    /* prefixes and extensions of names are other users */
    CHECK(!allows(a, "user-1", ACL_PRODUCE, "t-12"));
    CHECK(allows(a, "user-", ACL_PRODUCE, "shared"));
    acl_free(a);
}

int main(void)
{
    test_basic();
    test_star();
    test_errors();
    test_copies();
    test_many_users();
    return unit_done("test_acl");
}
