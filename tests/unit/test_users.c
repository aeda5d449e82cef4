/*
 * test_users.c - unit tests for proxy/security/users.c: the PBKDF2-HMAC-SHA256 test
 * vectors of RFC 7914 section 11, lines made independently with Python's
 * hashlib, hash -> verify round trips, unknown users costing a PBKDF2 run,
 * every class of users-file error with its file:line, the limits, the
 * permission warning, the optional pbkdf2-sha512 second field, SCRAM
 * credentials (real ones checked against Python, fake ones for unknown
 * users), whole SCRAM exchanges driven from a users file, and
 * `eosproxy passwd` end to end when build/eosproxy (or $EOSPROXY_BIN)
 * exists. Run from the repository root.
 */
#include "users.h"
#include "unit.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[] = "/tmp/test_users.XXXXXX";
static char path[512];
static char err[1024];

/* Writes len bytes of s to dir/users.txt (mode 0600); path names it. */
static void write_file(const char *s, size_t len)
{
    snprintf(path, sizeof(path), "%s/users.txt", dir);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fwrite(s, 1, len, f);
    fclose(f);
    chmod(path, 0600);
}

static users_t *load_str(const char *s)
{
    write_file(s, strlen(s));
    err[0] = '\0';
    return users_load(path, err, sizeof(err));
}

static int verify(const users_t *u, const char *user, const char *pw)
{
    return users_verify(u, user, strlen(user), pw, strlen(pw));
}

/* Loads s, expects failure with "path:LINE: " and want in the message. */
static void expect_err_at(int tline, const char *s, int fline, const char *want)
{
    users_t *u = load_str(s);
    char at[600];
    snprintf(at, sizeof(at), "%s:%d: ", path, fline);
    if (!u && strstr(err, at) == err && strstr(err, want)) {
        unit_passed++;
        return;
    }
    unit_failed++;
    fprintf(stderr, "FAIL %s:%d: want error \"%s...%s\", got %s \"%s\"\n", __FILE__, tline, at,
            want, u ? "success" : "error", err);
    users_free(u);
}
#define EXPECT_ERR(s, fline, want) expect_err_at(__LINE__, s, fline, want)

/* Made with Python: base64.b64encode(hashlib.pbkdf2_hmac("sha256", b"correct horse",
 * b"0123456789abcdef", 10000)). */
#define CAROL                                                                                      \
    "carol:pbkdf2-sha256$10000$MDEyMzQ1Njc4OWFiY2RlZg==$"                                          \
    "TI2grtvV1HW5nz2rBY4tctlrmOj5bZs0dw9j8NHpRRc="
/* A 64-byte salt of 'A's, password "pw". */
#define DAVE                                                                                       \
    "dave:pbkdf2-sha256$10000$"                                                                    \
    "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQQ==$"    \
    "YYNmSgEWn1ggXURkuP7pg2zuYD2cdN3L2n10N9BA4Xs="
#define SALT16 "MDEyMzQ1Njc4OWFiY2RlZg=="
#define DK32 "TI2grtvV1HW5nz2rBY4tctlrmOj5bZs0dw9j8NHpRRc="
/* Made with Python: base64.b64encode(hashlib.pbkdf2_hmac("sha512", b"correct horse",
 * b"fedcba9876543210", 10000)). */
#define SALT16B "ZmVkY2JhOTg3NjU0MzIxMA=="
#define DK64                                                                                       \
    "q/FqYpVVafvRxxjjcAec1fc4qJ0nxtDKW5D8Tl9QKZ+DI2To+YDb/XPpHi6l94Hf9TW3t+/tj+349sNeGobA9A=="
#define H512 "pbkdf2-sha512$10000$" SALT16B "$" DK64
/* carol with both fields. */
#define CAROL2 CAROL ":" H512
/* StoredKey and ServerKey of carol's two hashes, from Python: hashlib.new(h, hmac.new(dk,
 * b"Client Key", h).digest()) and hmac.new(dk, b"Server Key", h). */
#define CAROL_STORED256 "9cfb4faa144275c3e5e51d2ecfc871640e286d22de60c15cdfc31ee8e8dddec0"
#define CAROL_SERVER256 "88bffe1fa4e5ebf04ae03b8e6b781c59881a2141c83d4d1b516eaa50f797f0b4"
#define CAROL_STORED512                                                                            \
    "42309c9cede1176910f60b5b3403eab0b3be0461a5345669b63d9657682e131c"                             \
    "3660a1e1655293fbaed2c174e0a46b179ea31bd4b45d63760640c519196a939f"
#define CAROL_SERVER512                                                                            \
    "bdfba12349413989eb54d763e42a1eda80760c03f1d6e51382b1ffe8d22c852e"                             \
    "1654330c54889a1ad71bab06affbab977be33539920fd934884cf44b63c2f0c8"

static void hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}

static void test_vectors(void)
{
    uint8_t dk[64];
    char h[129];
    /* RFC 7914 section 11. */
    CHECK_EQ(users_pbkdf2_sha256("passwd", 6, (const uint8_t *)"salt", 4, 1, dk, 64), 0);
    hex(dk, 64, h);
    CHECK_STR(h, "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
                 "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783");
    CHECK_EQ(users_pbkdf2_sha256("Password", 8, (const uint8_t *)"NaCl", 4, 80000, dk, 64), 0);
    hex(dk, 64, h);
    CHECK_STR(h, "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56"
                 "a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d");
    /* Out of bounds arguments are refused, not truncated. */
    CHECK_EQ(users_pbkdf2_sha256("p", 1, (const uint8_t *)"s", 1, 0, dk, 32), -1);
    CHECK_EQ(users_pbkdf2_sha256("p", USERS_PASSWORD_MAX + 1, (const uint8_t *)"s", 1, 1, dk, 32),
             -1);
}

static void test_names(void)
{
    char name[300];
    CHECK(users_name_valid("alice", 5));
    CHECK(users_name_valid("svc.orders-1_@prod", 18));
    CHECK(!users_name_valid("", 0));
    CHECK(!users_name_valid("al ice", 6));
    CHECK(!users_name_valid("a:b", 3));
    CHECK(!users_name_valid("a$b", 3));
    CHECK(!users_name_valid("a\0b", 3));
    CHECK(!users_name_valid("\xc3\xa9", 2));
    CHECK(!users_name_valid(NULL, 3));
    memset(name, 'x', sizeof(name));
    CHECK(users_name_valid(name, 255));
    CHECK(!users_name_valid(name, 256));
}

static void test_hash_password(void)
{
    char a[USERS_HASH_BUFLEN], b[USERS_HASH_BUFLEN], small[40];
    CHECK_EQ(users_hash_password("hunter2", 7, 0, a, sizeof(a)), 0);
    CHECK(strncmp(a, "pbkdf2-sha256$210000$", 21) == 0);
    CHECK_EQ(strlen(a), 21 + 24 + 1 + 44);
    CHECK(strstr(a, "hunter2") == NULL);
    CHECK_EQ(users_hash_password("hunter2", 7, 10000, b, sizeof(b)), 0);
    CHECK(strncmp(b, "pbkdf2-sha256$10000$", 20) == 0);
    CHECK_EQ(users_hash_password("hunter2", 7, 10000, a, sizeof(a)), 0);
    CHECK(strcmp(a, b) != 0); /* a fresh salt every time */
    CHECK_EQ(users_hash_password("hunter2", 7, 9999, a, sizeof(a)), -1);
    CHECK_STR(a, "");
    CHECK_EQ(users_hash_password("hunter2", 7, USERS_MAX_ITERATIONS + 1, a, sizeof(a)), -1);
    CHECK_EQ(users_hash_password("", 0, 10000, a, sizeof(a)), -1);
    CHECK_EQ(users_hash_password("a\0b", 3, 10000, a, sizeof(a)), -1);
    CHECK_EQ(users_hash_password(NULL, 3, 10000, a, sizeof(a)), -1);
    CHECK_EQ(users_hash_password("hunter2", 7, 10000, small, sizeof(small)), -1);
    CHECK_STR(small, "");
}

static void test_round_trip(void)
{
    char h1[USERS_HASH_BUFLEN], h2[USERS_HASH_BUFLEN], file[1024];
    CHECK_EQ(users_hash_password("s3cret pass", 11, 10000, h1, sizeof(h1)), 0);
    CHECK_EQ(users_hash_password("other", 5, 10000, h2, sizeof(h2)), 0);
    snprintf(file, sizeof(file), "alice:%s\nbob@example.com:%s\n%s\n%s\n", h1, h2, CAROL, DAVE);
    users_t *u = load_str(file);
    CHECK(u != NULL);
    if (!u) {
        fprintf(stderr, "  load: %s\n", err);
        return;
    }
    CHECK_EQ(users_count(u), 4);
    CHECK(users_warning(u) == NULL);
    CHECK_EQ(verify(u, "alice", "s3cret pass"), 1);
    CHECK_EQ(verify(u, "bob@example.com", "other"), 1);
    CHECK_EQ(verify(u, "carol", "correct horse"), 1);
    CHECK_EQ(verify(u, "dave", "pw"), 1);
    /* Wrong passwords. */
    CHECK_EQ(verify(u, "alice", "s3cret pasS"), 0);
    CHECK_EQ(verify(u, "alice", "s3cret pass "), 0);
    CHECK_EQ(verify(u, "alice", "other"), 0);
    CHECK_EQ(verify(u, "carol", ""), 0);
    CHECK_EQ(users_verify(u, "alice", 5, "s3cret pass", 10), 0);
    CHECK_EQ(users_verify(u, "alice", 5, "s3cret pass\0", 12), 0);
    CHECK_EQ(users_verify(u, "alice", 5, NULL, 11), 0);
    /* Unknown or malformed users; names are (pointer, length) views. */
    CHECK_EQ(verify(u, "mallory", "s3cret pass"), 0);
    CHECK_EQ(verify(u, "alic", "s3cret pass"), 0);
    CHECK_EQ(verify(u, "alicex", "s3cret pass"), 0);
    CHECK_EQ(verify(u, "", "s3cret pass"), 0);
    CHECK_EQ(verify(u, "al ice", "s3cret pass"), 0);
    CHECK_EQ(users_verify(u, "alicexyz", 5, "s3cret pass", 11), 1);
    CHECK_EQ(users_verify(u, NULL, 0, "s3cret pass", 11), 0);
    CHECK_EQ(users_verify(NULL, "alice", 5, "s3cret pass", 11), 0);
    users_free(u);
    users_free(NULL);
}

static void test_layout(void)
{
    /* Comments, blank lines, CRLF, blanks around the line, no final newline. */
    users_t *u = load_str("# users for eosproxy\n"
                          "\n"
                          "   \t\n"
                          "  # indented comment\n" CAROL "\r\n"
                          "\t" DAVE "  ");
    CHECK(u != NULL);
    CHECK_EQ(users_count(u), 2);
    CHECK_EQ(verify(u, "carol", "correct horse"), 1);
    CHECK_EQ(verify(u, "dave", "pw"), 1);
    users_free(u);

    /* Empty and comment-only files load as zero users; nobody gets in. */
    u = load_str("");
    CHECK(u != NULL);
    CHECK_EQ(users_count(u), 0);
    CHECK_EQ(verify(u, "carol", "correct horse"), 0);
    users_free(u);
    u = load_str("# nobody yet\n\n");
    CHECK(u != NULL);
    CHECK_EQ(users_count(u), 0);
    users_free(u);
}

static void test_errors(void)
{
    char buf[4096];
    EXPECT_ERR("# c\nalice\n", 2, "expected user:hash");
    EXPECT_ERR("al ice:pbkdf2-sha256$10000$" SALT16 "$" DK32 "\n", 1, "bad user name");
    EXPECT_ERR(":pbkdf2-sha256$10000$" SALT16 "$" DK32 "\n", 1, "bad user name");
    EXPECT_ERR("\xc3\xa9:pbkdf2-sha256$10000$" SALT16 "$" DK32 "\n", 1, "bad user name");
    memset(buf, 'n', 256);
    snprintf(buf + 256, sizeof(buf) - 256, ":pbkdf2-sha256$10000$" SALT16 "$" DK32 "\n");
    EXPECT_ERR(buf, 1, "bad user name");

    /* A plaintext password where the hash belongs: refused, and not echoed. */
    EXPECT_ERR("alice:Sup3rSecret\n", 1, "user alice: hash does not start with");
    CHECK(strstr(err, "Sup3rSecret") == NULL);
    EXPECT_ERR("alice:\n", 1, "hash does not start with");
    EXPECT_ERR("alice:pbkdf2-sha512$10000$" SALT16 "$" DK32 "\n", 1, "hash does not start");

    /* Iteration counts. */
    EXPECT_ERR("alice:pbkdf2-sha256$9999$" SALT16 "$" DK32 "\n", 1, "out of range");
    EXPECT_ERR("alice:pbkdf2-sha256$10000001$" SALT16 "$" DK32 "\n", 1, "out of range");
    EXPECT_ERR("alice:pbkdf2-sha256$99999999999999999999$" SALT16 "$" DK32 "\n", 1, "out of range");
    EXPECT_ERR("alice:pbkdf2-sha256$0$" SALT16 "$" DK32 "\n", 1, "leading zero");
    EXPECT_ERR("alice:pbkdf2-sha256$010000$" SALT16 "$" DK32 "\n", 1, "leading zero");
    EXPECT_ERR("alice:pbkdf2-sha256$1e5$" SALT16 "$" DK32 "\n", 1, "not a decimal");
    EXPECT_ERR("alice:pbkdf2-sha256$-10000$" SALT16 "$" DK32 "\n", 1, "not a decimal");
    EXPECT_ERR("alice:pbkdf2-sha256$$" SALT16 "$" DK32 "\n", 1, "missing iteration");
    users_t *u = load_str("a:pbkdf2-sha256$10000$" SALT16 "$" DK32 "\n"
                          "b:pbkdf2-sha256$10000000$" SALT16 "$" DK32 "\n");
    CHECK(u != NULL); /* both ends of the range */
    users_free(u);

    /* Salt and derived key. */
    EXPECT_ERR("alice:pbkdf2-sha256$10000$" SALT16 "\n", 1, "missing salt or hash");
    EXPECT_ERR("alice:pbkdf2-sha256$10000$MDEyMzQ1Njc=$" DK32 "\n", 1, "salt shorter than 16");
    EXPECT_ERR("alice:pbkdf2-sha256$10000$MDEyMzQ1Njc4OWFiY2RlZh==$" DK32 "\n", 1,
               "salt is not canonical base64");
    EXPECT_ERR("alice:pbkdf2-sha256$10000$MDEyMzQ1Njc4OWFiY2RlZg$" DK32 "\n", 1,
               "salt is not canonical base64");
    EXPECT_ERR("alice:pbkdf2-sha256$10000$MDEyMzQ1Njc4O*FiY2RlZg==$" DK32 "\n", 1,
               "salt is not canonical base64");
    EXPECT_ERR("alice:pbkdf2-sha256$10000$MDEy=zQ1Njc4OWFiY2RlZg==$" DK32 "\n", 1,
               "salt is not canonical base64");
    EXPECT_ERR("alice:pbkdf2-sha256$10000$" SALT16 "$" SALT16 "\n", 1, "32 bytes");
    EXPECT_ERR("alice:pbkdf2-sha256$10000$" SALT16 "$\n", 1, "32 bytes");
    EXPECT_ERR("alice:pbkdf2-sha256$10000$" SALT16 "$" DK32 "AAAA\n", 1, "32 bytes");
    EXPECT_ERR("alice:pbkdf2-sha256$10000$" SALT16 "$" DK32 "$x\n", 1, "too many '$'");
    EXPECT_ERR("alice:pbkdf2-sha256$10000$" SALT16 "$" DK32 " x\n", 1, "32 bytes");

    /* Duplicates: the second occurrence is named, with the first. */
    EXPECT_ERR(CAROL "\n" DAVE "\n# x\n" CAROL "\n", 4, "duplicate user carol (first on line 1)");
    EXPECT_ERR("zed:pbkdf2-sha256$10000$" SALT16 "$" DK32 "\n" DAVE "\n" DAVE "\n"
               "zed:pbkdf2-sha256$10000$" SALT16 "$" DK32 "\n",
               3, "duplicate user dave (first on line 2)");

    /* A long line; a NUL byte. */
    memset(buf, '#', 1100);
    snprintf(buf + 1100, sizeof(buf) - 1100, "\n");
    EXPECT_ERR(buf, 1, "line longer than 1024 bytes");
    memset(buf, '#', 1024);
    snprintf(buf + 1024, sizeof(buf) - 1024, "\n" CAROL "\n");
    u = load_str(buf);
    CHECK(u != NULL && users_count(u) == 1); /* 1024 is allowed */
    users_free(u);
    write_file(CAROL "\n# a\0b\n", strlen(CAROL) + 7);
    u = users_load(path, err, sizeof(err));
    CHECK(u == NULL && strstr(err, ":2: NUL byte"));
    users_free(u);
}

static void test_file_limits(void)
{
    /* Missing file, a directory, NULL path. */
    char p[600];
    snprintf(p, sizeof(p), "%s/none", dir);
    users_t *u = users_load(p, err, sizeof(err));
    CHECK(u == NULL && strstr(err, p) == err && strstr(err, "No such file"));
    u = users_load(dir, err, sizeof(err));
    CHECK(u == NULL && strstr(err, "not a regular file"));
    u = users_load(NULL, err, sizeof(err));
    CHECK(u == NULL && err[0] != '\0');

    /* More than 1 MiB, even of comments. */
    size_t big = USERS_FILE_MAX + 10;
    char *s = malloc(big + 1);
    memset(s, '\n', big);
    s[big] = '\0';
    u = load_str(s);
    CHECK(u == NULL && strstr(err, "larger than 1048576 bytes"));
    free(s);

    /* The user cap: USERS_MAX users load, one more does not. */
    size_t line = strlen("u00000:pbkdf2-sha256$10000$" SALT16 "$" DK32 "\n");
    s = malloc((USERS_MAX + 1) * line + 1);
    for (int i = 0; i <= USERS_MAX; i++) {
        char one[128];
        snprintf(one, sizeof(one), "u%05d:pbkdf2-sha256$10000$" SALT16 "$" DK32 "\n", i);
        memcpy(s + (size_t)i * line, one, line);
    }
    write_file(s, (size_t)USERS_MAX * line);
    u = users_load(path, err, sizeof(err));
    CHECK(u != NULL && users_count(u) == USERS_MAX);
    CHECK_EQ(verify(u, "u09999", "correct horse"), 1);
    CHECK_EQ(verify(u, "u00000", "correct horse"), 1);
    users_free(u);
    write_file(s, (size_t)(USERS_MAX + 1) * line);
    u = users_load(path, err, sizeof(err));
    CHECK(u == NULL && strstr(err, ":10001: more than 10000 users"));
    free(s);
}

static void test_warning(void)
{
    users_t *u = load_str(CAROL "\n");
    CHECK(u != NULL && users_warning(u) == NULL);
    users_free(u);
    chmod(path, 0644);
    u = users_load(path, err, sizeof(err));
    CHECK(u != NULL);
    const char *w = users_warning(u);
    CHECK(w != NULL && strstr(w, path) == w && strstr(w, "mode 0644") && strstr(w, "chmod 600"));
    CHECK_EQ(verify(u, "carol", "correct horse"), 1);
    users_free(u);
    chmod(path, 0600);
}

static void test_second_field(void)
{
    /* Both forms in one file; PLAIN still uses the first field. */
    users_t *u = load_str(CAROL2 "\n" DAVE "\n");
    CHECK(u != NULL);
    if (!u) {
        fprintf(stderr, "  load: %s\n", err);
        return;
    }
    CHECK_EQ(users_count(u), 2);
    CHECK_EQ(verify(u, "carol", "correct horse"), 1);
    CHECK_EQ(verify(u, "dave", "pw"), 1);
    users_free(u);

    /* The second field: same strictness as the first, named "second hash". */
    EXPECT_ERR(CAROL ":\n", 1, "user carol: second hash does not start with \"pbkdf2-sha512$\"");
    EXPECT_ERR(CAROL ":" H512 ":\n", 1, "user carol: too many ':' fields");
    EXPECT_ERR(CAROL ":" H512 ":" H512 "\n", 1, "too many ':' fields");
    EXPECT_ERR(CAROL ":pbkdf2-sha256$10000$" SALT16 "$" DK32 "\n", 1, "second hash does not start");
    EXPECT_ERR(CAROL ":correct horse\n", 1, "second hash does not start");
    CHECK(strstr(err, "correct horse") == NULL);
    EXPECT_ERR(CAROL ":pbkdf2-sha512$9999$" SALT16B "$" DK64 "\n", 1,
               "second hash: iteration count out of range");
    EXPECT_ERR(CAROL ":pbkdf2-sha512$10000001$" SALT16B "$" DK64 "\n", 1,
               "second hash: iteration count out of range");
    EXPECT_ERR(CAROL ":pbkdf2-sha512$010000$" SALT16B "$" DK64 "\n", 1,
               "second hash: iteration count has a leading zero");
    EXPECT_ERR(CAROL ":pbkdf2-sha512$$" SALT16B "$" DK64 "\n", 1,
               "second hash: missing iteration count");
    EXPECT_ERR(CAROL ":pbkdf2-sha512$10000$" SALT16B "\n", 1,
               "second hash: missing salt or hash field");
    EXPECT_ERR(CAROL ":pbkdf2-sha512$10000$MDEyMzQ1Njc=$" DK64 "\n", 1,
               "second hash: salt shorter than 16 bytes");
    EXPECT_ERR(CAROL ":pbkdf2-sha512$10000$ZmVkY2JhOTg3NjU0MzIxMB==$" DK64 "\n", 1,
               "second hash: salt is not canonical base64");
    /* A 32-byte key where 64 belong, a 64-byte key where 32 belong. */
    EXPECT_ERR(CAROL ":pbkdf2-sha512$10000$" SALT16B "$" DK32 "\n", 1,
               "second hash: derived key is not canonical base64 of 64 bytes");
    EXPECT_ERR("carol:pbkdf2-sha256$10000$" SALT16 "$" DK64 ":" H512 "\n", 1,
               "user carol: hash: derived key is not canonical base64 of 32 bytes");
    EXPECT_ERR(CAROL ":pbkdf2-sha512$10000$" SALT16B "$" DK64 "$x\n", 1,
               "second hash: too many '$' fields");
    /* The first field stays required. */
    EXPECT_ERR("carol:" H512 "\n", 1, "user carol: hash does not start with \"pbkdf2-sha256$\"");
    EXPECT_ERR("carol::" H512 "\n", 1, "user carol: hash does not start");
    /* Errors never quote a hash. */
    EXPECT_ERR(CAROL ":pbkdf2-sha512$10000$" SALT16B "$" DK32 "\n", 1, "64 bytes");
    CHECK(strstr(err, DK32) == NULL && strstr(err, SALT16B) == NULL);

    /* Longest legal line: a 255-character name, 64-byte salts in both fields. */
    char line[1200], name[256];
    memset(name, 'n', 255);
    name[255] = '\0';
    snprintf(
        line, sizeof(line),
        "%s:pbkdf2-sha256$10000000$%s$" DK32 ":pbkdf2-sha512$10000000$%s$" DK64 "\n", name,
        "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQQ==",
        "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQQ==");
    CHECK(strlen(line) <= USERS_LINE_MAX + 1);
    u = load_str(line);
    CHECK(u != NULL && users_count(u) == 1);
    users_free(u);
}

static void test_scram_cred(void)
{
    users_t *u = load_str(CAROL2 "\n" DAVE "\n"
                                 "erin:pbkdf2-sha256$20000$" SALT16 "$" DK32 "\n");
    CHECK(u != NULL);
    if (!u)
        return;
    scram_cred_t c;
    char h[129];
    /* Real credentials, both mechanisms, against Python. */
    CHECK_EQ(users_scram_cred(u, "carol", 5, SCRAM_SHA_256, &c), 1);
    CHECK_EQ(c.mech, SCRAM_SHA_256);
    CHECK_EQ(c.iterations, 10000);
    CHECK(c.salt_len == 16 && memcmp(c.salt, "0123456789abcdef", 16) == 0);
    hex(c.stored_key, 32, h);
    CHECK_STR(h, CAROL_STORED256);
    hex(c.server_key, 32, h);
    CHECK_STR(h, CAROL_SERVER256);
    CHECK_EQ(users_scram_cred(u, "carol", 5, SCRAM_SHA_512, &c), 1);
    CHECK_EQ(c.mech, SCRAM_SHA_512);
    CHECK_EQ(c.iterations, 10000);
    CHECK(c.salt_len == 16 && memcmp(c.salt, "fedcba9876543210", 16) == 0);
    hex(c.stored_key, 64, h);
    CHECK_STR(h, CAROL_STORED512);
    hex(c.server_key, 64, h);
    CHECK_STR(h, CAROL_SERVER512);
    CHECK_EQ(users_scram_cred(u, "dave", 4, SCRAM_SHA_256, &c), 1);
    CHECK_EQ(c.salt_len, 64);
    /* A (pointer, length) view. */
    CHECK_EQ(users_scram_cred(u, "carolxyz", 5, SCRAM_SHA_256, &c), 1);

    /* Fake: unknown users, users without a SHA-512 field, invalid names. */
    scram_cred_t f1, f2, f3;
    CHECK_EQ(users_scram_cred(u, "mallory", 7, SCRAM_SHA_256, &f1), 0);
    CHECK_EQ(users_scram_cred(u, "mallory", 7, SCRAM_SHA_256, &f2), 0);
    CHECK_EQ(f1.mech, SCRAM_SHA_256);
    CHECK_EQ(f1.salt_len, 16);
    /* The usual count: two users of three use 10000. */
    CHECK_EQ(f1.iterations, 10000);
    /* Stable salt, fresh keys. */
    CHECK(memcmp(f1.salt, f2.salt, 16) == 0 && f1.iterations == f2.iterations);
    CHECK(memcmp(f1.stored_key, f2.stored_key, 32) != 0);
    /* Another name, another salt; another mechanism, another salt. */
    CHECK_EQ(users_scram_cred(u, "mallorx", 7, SCRAM_SHA_256, &f3), 0);
    CHECK(memcmp(f1.salt, f3.salt, 16) != 0);
    CHECK_EQ(users_scram_cred(u, "mallory", 7, SCRAM_SHA_512, &f3), 0);
    CHECK(f3.mech == SCRAM_SHA_512 && memcmp(f1.salt, f3.salt, 16) != 0);
    CHECK_EQ(f3.iterations, 10000); /* the only SHA-512 field uses 10000 */
    /* dave has no SHA-512 field: fake, and stable too. */
    CHECK_EQ(users_scram_cred(u, "dave", 4, SCRAM_SHA_512, &f1), 0);
    CHECK_EQ(users_scram_cred(u, "dave", 4, SCRAM_SHA_512, &f2), 0);
    CHECK(memcmp(f1.salt, f2.salt, 16) == 0 && f1.salt_len == 16);
    CHECK_EQ(users_scram_cred(u, "", 0, SCRAM_SHA_256, &f1), 0);
    CHECK_EQ(users_scram_cred(u, NULL, 0, SCRAM_SHA_256, &f2), 0);
    CHECK(memcmp(f1.salt, f2.salt, 16) == 0);
    CHECK_EQ(users_scram_cred(u, "al ice", 6, SCRAM_SHA_256, &f1), 0);
    CHECK_EQ(users_scram_cred(u, "a,b=c", 5, SCRAM_SHA_256, &f1), 0);

    /* The same fake salt from another load of another file in this process. */
    CHECK_EQ(users_scram_cred(u, "mallory", 7, SCRAM_SHA_256, &f1), 0);
    users_t *u2 = load_str(DAVE "\n");
    CHECK(u2 != NULL);
    CHECK_EQ(users_scram_cred(u2, "mallory", 7, SCRAM_SHA_256, &f2), 0);
    CHECK(memcmp(f1.salt, f2.salt, 16) == 0);
    users_free(u2);
    /* An empty file: the default count. */
    u2 = load_str("");
    CHECK_EQ(users_scram_cred(u2, "mallory", 7, SCRAM_SHA_512, &f2), 0);
    CHECK_EQ(f2.iterations, USERS_DEFAULT_ITERATIONS);
    users_free(u2);

    /* Errors. */
    CHECK_EQ(users_scram_cred(NULL, "carol", 5, SCRAM_SHA_256, &c), -1);
    CHECK_EQ(users_scram_cred(u, "carol", 5, SCRAM_SHA_256, NULL), -1);
    CHECK_EQ(users_scram_cred(u, "carol", 5, (scram_mech_t)2, &c), -1);
    CHECK_EQ(users_scram_cred(u, NULL, 5, SCRAM_SHA_256, &c), -1);
    users_free(u);
}

/*
 * One SCRAM exchange: scram_client (user, pw) against a scram_server fed
 * by users_scram_cred. Returns the server's verdict (1 good, 0 refused, -1
 * malformed); *client_ok is 1 when the client accepted the server-final.
 */
static int scram_login(const users_t *u, scram_mech_t m, const char *user, const char *pw,
                       int *client_ok)
{
    char a[SCRAM_MAX_MESSAGE], b[SCRAM_MAX_MESSAGE];
    scram_client_t *c = scram_client_new(m, user, pw, NULL);
    scram_server_t *s = scram_server_new(m);
    const char *name = NULL;
    size_t nlen = 0;
    int rc = -1;
    *client_ok = 0;
    int n = scram_client_first_message(c, a, sizeof(a));
    if (n < 0 || scram_server_client_first(s, (const uint8_t *)a, (size_t)n, &name, &nlen) != 0)
        goto done;
    scram_cred_t cred;
    if (users_scram_cred(u, name, nlen, m, &cred) < 0)
        goto done;
    n = scram_server_first_message(s, &cred, b, sizeof(b));
    if (n < 0)
        goto done;
    n = scram_client_final_message(c, (const uint8_t *)b, (size_t)n, a, sizeof(a));
    if (n < 0)
        goto done;
    rc = scram_server_client_final(s, (const uint8_t *)a, (size_t)n, b, sizeof(b));
    *client_ok = scram_client_verify_server_final(c, (const uint8_t *)b, strlen(b)) == 0;
done:
    scram_client_free(c);
    scram_server_free(s);
    return rc;
}

static void test_scram_exchange(void)
{
    users_t *u = load_str(CAROL2 "\n" DAVE "\n");
    CHECK(u != NULL);
    if (!u)
        return;
    int ok = 0;
    CHECK_EQ(scram_login(u, SCRAM_SHA_256, "carol", "correct horse", &ok), 1);
    CHECK_EQ(ok, 1);
    CHECK_EQ(scram_login(u, SCRAM_SHA_512, "carol", "correct horse", &ok), 1);
    CHECK_EQ(ok, 1);
    CHECK_EQ(scram_login(u, SCRAM_SHA_256, "dave", "pw", &ok), 1);
    CHECK_EQ(ok, 1);
    /* Wrong passwords. */
    CHECK_EQ(scram_login(u, SCRAM_SHA_256, "carol", "correct horsE", &ok), 0);
    CHECK_EQ(ok, 0);
    CHECK_EQ(scram_login(u, SCRAM_SHA_512, "carol", "pw", &ok), 0);
    CHECK_EQ(ok, 0);
    /* Unknown users, and dave who has no SHA-512 field, fail at the proof. */
    CHECK_EQ(scram_login(u, SCRAM_SHA_256, "mallory", "correct horse", &ok), 0);
    CHECK_EQ(ok, 0);
    CHECK_EQ(scram_login(u, SCRAM_SHA_512, "mallory", "pw", &ok), 0);
    CHECK_EQ(scram_login(u, SCRAM_SHA_512, "dave", "pw", &ok), 0);
    CHECK_EQ(ok, 0);
    /* A name that is no valid user name still gets a fake exchange. */
    CHECK_EQ(scram_login(u, SCRAM_SHA_256, "a,b=c", "pw", &ok), 0);
    users_free(u);
}

/* Runs cmd through sh; returns its exit status, first stdout line in out. */
static int run(const char *cmd, char *out, size_t outlen)
{
    out[0] = '\0';
    FILE *f = popen(cmd, "r");
    if (!f)
        return -1;
    if (fgets(out, (int)outlen, f) == NULL)
        out[0] = '\0';
    char sink[256];
    while (fgets(sink, sizeof(sink), f))
        ;
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* `eosproxy passwd alice` with a piped password prints a line users_load accepts. */
static void test_passwd_command(void)
{
    const char *bin = getenv("EOSPROXY_BIN");
    if (!bin)
        bin = "./build/eosproxy";
    if (access(bin, X_OK) != 0) {
        printf("users: skip passwd command (%s not built)\n", bin);
        return;
    }
    /* A binary older than the code under test would test old code. */
    struct stat b, s1, s2;
    if (stat(bin, &b) == 0 && stat("proxy/main.c", &s1) == 0 &&
        stat("proxy/security/users.c", &s2) == 0 &&
        (b.st_mtime < s1.st_mtime || b.st_mtime < s2.st_mtime)) {
        printf("users: skip passwd command (%s older than its sources; make build/eosproxy)\n",
               bin);
        return;
    }
    char cmd[2048], out[1024];
    snprintf(cmd, sizeof(cmd), "printf 'hunter2 x\\n' | %s passwd alice 2>/dev/null", bin);
    int rc = run(cmd, out, sizeof(out));
    CHECK_EQ(rc, 0);
    CHECK(strncmp(out, "alice:pbkdf2-sha256$210000$", 27) == 0);
    CHECK(strstr(out, "hunter2") == NULL);
    /* Two fields, each with its own salt. */
    const char *f2 = strstr(out, ":pbkdf2-sha512$210000$");
    CHECK(f2 != NULL);
    if (f2) {
        CHECK_EQ(f2 - out, 6 + 21 + 24 + 1 + 44);
        CHECK(strncmp(out + 27, f2 + 22, 24) != 0);
        CHECK_EQ(strlen(f2), 22 + 24 + 1 + 88 + 1); /* and the newline */
    }
    write_file(out, strlen(out));
    users_t *u = users_load(path, err, sizeof(err));
    CHECK(u != NULL);
    CHECK_EQ(verify(u, "alice", "hunter2 x"), 1);
    CHECK_EQ(verify(u, "alice", "hunter2 x\n"), 0);
    CHECK_EQ(verify(u, "alice", "hunter2"), 0);
    users_free(u);

    /* --iterations: cheaper hashes that log in with both SCRAM mechanisms. */
    snprintf(cmd, sizeof(cmd),
             "printf 'hunter2 x\\n' | %s passwd --iterations 10000 alice 2>/dev/null", bin);
    CHECK_EQ(run(cmd, out, sizeof(out)), 0);
    CHECK(strncmp(out, "alice:pbkdf2-sha256$10000$", 26) == 0);
    CHECK(strstr(out, ":pbkdf2-sha512$10000$") != NULL);
    write_file(out, strlen(out));
    u = users_load(path, err, sizeof(err));
    CHECK(u != NULL);
    int ok = 0;
    CHECK_EQ(verify(u, "alice", "hunter2 x"), 1);
    CHECK_EQ(scram_login(u, SCRAM_SHA_256, "alice", "hunter2 x", &ok), 1);
    CHECK_EQ(ok, 1);
    CHECK_EQ(scram_login(u, SCRAM_SHA_512, "alice", "hunter2 x", &ok), 1);
    CHECK_EQ(ok, 1);
    CHECK_EQ(scram_login(u, SCRAM_SHA_512, "alice", "hunter2", &ok), 0);
    users_free(u);

    /* No final newline, and CRLF: the same password. */
    snprintf(cmd, sizeof(cmd), "printf 'hunter2 x\\r\\n' | %s passwd alice 2>/dev/null", bin);
    CHECK_EQ(run(cmd, out, sizeof(out)), 0);
    write_file(out, strlen(out));
    u = users_load(path, err, sizeof(err));
    CHECK_EQ(verify(u, "alice", "hunter2 x"), 1);
    users_free(u);
    snprintf(cmd, sizeof(cmd), "printf 'hunter2 x' | %s passwd alice 2>/dev/null", bin);
    CHECK_EQ(run(cmd, out, sizeof(out)), 0);
    write_file(out, strlen(out));
    u = users_load(path, err, sizeof(err));
    CHECK_EQ(verify(u, "alice", "hunter2 x"), 1);
    users_free(u);

    /* Refusals: exit 2, nothing on stdout. */
    const char *bad[] = {
        "printf '\\n' | %s passwd alice",           /* empty */
        "printf '' | %s passwd alice",              /* no input */
        "printf 'pw\\n' | %s passwd 'al ice'",      /* bad name */
        "printf 'pw\\n' | %s passwd",               /* no user */
        "printf 'pw\\n' | %s passwd alice bob",     /* extra argument */
        "printf '%%01025d\\n' 0 | %s passwd alice", /* too long */
        "printf 'a\\000b\\n' | %s passwd alice",    /* NUL byte */
        "printf 'pw\\n' | %s passwd --iterations 9999 alice",
        "printf 'pw\\n' | %s passwd --iterations 10000001 alice",
        "printf 'pw\\n' | %s passwd --iterations 010000 alice",
        "printf 'pw\\n' | %s passwd --iterations 1e5 alice",
        "printf 'pw\\n' | %s passwd --iterations '' alice",
        "printf 'pw\\n' | %s passwd --iterations 10000",       /* no user */
        "printf 'pw\\n' | %s passwd --iterations",             /* nothing */
        "printf 'pw\\n' | %s passwd --iter 10000 alice",       /* unknown option */
        "printf 'pw\\n' | %s passwd alice --iterations 10000", /* option after the user */
        "printf 'pw\\n' | %s passwd --iterations 10000 'al ice'",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char c[1024];
        snprintf(c, sizeof(c), bad[i], bin);
        snprintf(cmd, sizeof(cmd), "%s 2>/dev/null", c);
        rc = run(cmd, out, sizeof(out));
        if (rc != 2 || out[0] != '\0')
            fprintf(stderr, "  case %zu: rc %d out \"%s\"\n", i, rc, out);
        CHECK_EQ(rc, 2);
        CHECK_STR(out, "");
    }
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_vectors();
    test_names();
    test_hash_password();
    test_round_trip();
    test_layout();
    test_errors();
    test_file_limits();
    test_warning();
    test_second_field();
    test_scram_cred();
    test_scram_exchange();
    test_passwd_command();
    unlink(path);
    rmdir(dir);
    return unit_done("users");
}
