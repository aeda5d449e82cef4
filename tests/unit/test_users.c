/*
 * test_users.c - unit tests for proxy/users.c: the PBKDF2-HMAC-SHA256 test
 * vectors of RFC 7914 section 11, lines made independently with Python's
 * hashlib, hash -> verify round trips, unknown users costing a PBKDF2 run,
 * every class of users-file error with its file:line, the limits, the
 * permission warning, and `eosproxy passwd` end to end when
 * build/eosproxy (or $EOSPROXY_BIN) exists. Run from the repository root.
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
    if (stat(bin, &b) == 0 && stat("proxy/main.c", &s1) == 0 && stat("proxy/users.c", &s2) == 0 &&
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
    write_file(out, strlen(out));
    users_t *u = users_load(path, err, sizeof(err));
    CHECK(u != NULL);
    CHECK_EQ(verify(u, "alice", "hunter2 x"), 1);
    CHECK_EQ(verify(u, "alice", "hunter2 x\n"), 0);
    CHECK_EQ(verify(u, "alice", "hunter2"), 0);
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
    test_passwd_command();
    unlink(path);
    rmdir(dir);
    return unit_done("users");
}
