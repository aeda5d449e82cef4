/*
 * main.c - command line: eosproxy -c FILE | --check -c FILE | --version
 * | passwd [--iterations N] USER | dlq ... (dlqtool.c).
 */
#include "config.h"
#include "dlqtool.h"
#include "log.h"
#include "loopwatch.h"
#include "metrics.h"
#include "proxy.h"
#include "users.h"

#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: eosproxy -c FILE          run with config FILE\n"
               "       eosproxy --check -c FILE  validate FILE and exit (0 if valid)\n"
               "       eosproxy --version        print the version\n"
               "       eosproxy passwd [--iterations N] USER\n"
               "                                 read a password on stdin, print a users file\n"
               "                                 line USER:HASH256:HASH512 (PBKDF2, N\n"
               "                                 iterations, 10000..10000000, default 210000)\n"
               "       eosproxy config reference every config key as Markdown tables\n"
               "       eosproxy metrics reference every metric as a Markdown table\n"
               "       eosproxy dlq list|show|replay -c FILE ...  (eosproxy dlq --help)\n");
}

/* eosproxy config|metrics reference: the key tables or the metric
 * families as Markdown (see config.h, metrics.h). */
static int cmd_reference(int argc, char **argv)
{
    if (argc != 3 || strcmp(argv[2], "reference") != 0) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "config") == 0)
        config_reference(stdout);
    else
        metrics_reference(stdout);
    return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- eosproxy passwd USER ---- */

/* The terminal settings to restore if a signal ends us while echo is off. */
static struct termios passwd_saved_tty;

static void passwd_on_signal(int sig)
{
    /* tcsetattr and write are async-signal-safe. */
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &passwd_saved_tty);
    (void)!write(STDERR_FILENO, "\n", 1);
    signal(sig, SIG_DFL);
    raise(sig);
}

/*
 * Reads one line from stdin into buf (cap bytes) with read(2), so that no
 * stdio buffer keeps a copy. Strips the '\n' (and a '\r' before it).
 * Returns the length, or -1 (with *why) for EOF before any byte, a line
 * longer than USERS_PASSWORD_MAX or a read error. The caller wipes buf.
 */
static long passwd_read_line(char *buf, size_t cap, const char **why)
{
    size_t n = 0;
    int got_any = 0;
    for (;;) {
        char c;
        ssize_t r = read(STDIN_FILENO, &c, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            *why = "cannot read stdin";
            return -1;
        }
        if (r == 0) {
            if (!got_any) {
                *why = "no password on stdin";
                return -1;
            }
            break;
        }
        got_any = 1;
        if (c == '\n')
            break;
        if (n + 1 >= cap) {
            *why = "password longer than 1024 bytes";
            return -1;
        }
        buf[n++] = c;
    }
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    buf[n] = '\0';
    if (n > USERS_PASSWORD_MAX) {
        *why = "password longer than 1024 bytes";
        return -1;
    }
    return (long)n;
}

/*
 * Reads a password (prompting with echo off, and twice, on a TTY) into buf.
 * Returns its length, or -1 after printing why to stderr.
 */
static long passwd_read(const char *user, char *buf, char *again, size_t cap)
{
    int tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &passwd_saved_tty) == 0;
    const char *why = NULL;
    long n = -1;
    if (tty) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = passwd_on_signal;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
        sigaction(SIGQUIT, &sa, NULL);
        struct termios quiet = passwd_saved_tty;
        quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
        quiet.c_lflag |= ICANON;
        if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) != 0) {
            fprintf(stderr, "eosproxy passwd: cannot turn off echo: %s\n", strerror(errno));
            return -1;
        }
        fprintf(stderr, "Password for %s: ", user);
    }
    n = passwd_read_line(buf, cap, &why);
    if (tty && n >= 0) {
        fprintf(stderr, "\nRetype password: ");
        long m = passwd_read_line(again, cap, &why);
        if (m < 0)
            n = -1;
        else if (m != n || memcmp(buf, again, (size_t)n) != 0) {
            n = -1;
            why = "passwords do not match";
        }
    }
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &passwd_saved_tty);
        fputc('\n', stderr);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        signal(SIGQUIT, SIG_DFL);
    }
    if (n == 0) {
        n = -1;
        why = "empty password";
    } else if (n > 0 && memchr(buf, '\0', (size_t)n)) {
        n = -1;
        why = "NUL byte in password";
    }
    if (n < 0)
        fprintf(stderr, "eosproxy passwd: %s\n", why);
    return n;
}

/*
 * Parses N of --iterations N: decimal digits only, no leading zero, within
 * USERS_MIN_ITERATIONS..USERS_MAX_ITERATIONS. 0, or -1.
 */
static int passwd_parse_iterations(const char *s, unsigned *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 8 || s[0] == '0')
        return -1;
    unsigned long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v < USERS_MIN_ITERATIONS || v > USERS_MAX_ITERATIONS)
        return -1;
    *out = (unsigned)v;
    return 0;
}

/*
 * eosproxy passwd [--iterations N] USER: prints "USER:HASH256:HASH512", a
 * line for auth.users_file (the SHA-512 field enables SCRAM-SHA-512).
 * Exit 0, or 2 with the reason on stderr. The password is wiped after use.
 */
static int cmd_passwd(int argc, char **argv)
{
    unsigned iterations = USERS_DEFAULT_ITERATIONS;
    int ui = 2;
    if (argc == 5 && strcmp(argv[2], "--iterations") == 0) {
        if (passwd_parse_iterations(argv[3], &iterations) != 0) {
            fprintf(stderr, "eosproxy passwd: --iterations takes a number in %u..%u\n",
                    USERS_MIN_ITERATIONS, USERS_MAX_ITERATIONS);
            return 2;
        }
        ui = 4;
    } else if (argc != 3 || strcmp(argv[2], "--iterations") == 0) {
        fprintf(stderr, "usage: eosproxy passwd [--iterations N] USER   (the password is read "
                        "from stdin)\n");
        return 2;
    }
    const char *user = argv[ui];
    if (!users_name_valid(user, strlen(user))) {
        fprintf(stderr, "eosproxy passwd: bad user name (1..%d of A-Z a-z 0-9 . _ @ -)\n",
                USERS_NAME_MAX);
        return 2;
    }
    char pw[USERS_PASSWORD_MAX + 2], again[USERS_PASSWORD_MAX + 2], hash[USERS_ENTRY_BUFLEN];
    int rc = 2;
    long n = passwd_read(user, pw, again, sizeof(pw));
    if (n > 0) {
        if (users_hash_entry(pw, (size_t)n, iterations, hash, sizeof(hash)) != 0)
            fprintf(stderr, "eosproxy passwd: hashing failed\n");
        else if (printf("%s:%s\n", user, hash) < 0 || fflush(stdout) != 0)
            fprintf(stderr, "eosproxy passwd: cannot write stdout\n");
        else
            rc = 0;
    }
    OPENSSL_cleanse(pw, sizeof(pw));
    OPENSSL_cleanse(again, sizeof(again));
    return rc;
}

static int run(config_t *cfg)
{
    enum log_level level = LOG_INFO;
    log_level_parse(cfg->log.level, &level);
    log_setup(level, cfg->log.format == LOG_FORMAT_JSON);

    struct event_base *base = event_base_new();
    if (!base) {
        log_error("cannot create the event loop");
        return 1;
    }
    struct proxy *px = proxy_new(cfg, base);
    int rc = 1;
    struct loopwatch *lw = NULL;
    if (px && proxy_start(px) == 0 && (lw = loopwatch_new(base, cfg->admin.stall_abort_ms))) {
        event_base_dispatch(base);
        loopwatch_free(lw);
        /* Teardown is short; a late SIGTERM must not turn exit 0 into a kill. */
        signal(SIGTERM, SIG_IGN);
        signal(SIGINT, SIG_IGN);
        rc = px->exit_code;
        log_info("stopped (exit %d)", rc);
    }
    proxy_free(px);
    event_base_free(base);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"check", no_argument, NULL, 'k'},
                                         {"version", no_argument, NULL, 'V'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *path = NULL;
    int check = 0, opt;
    if (argc > 1 && strcmp(argv[1], "passwd") == 0)
        return cmd_passwd(argc, argv);
    if (argc > 1 && strcmp(argv[1], "dlq") == 0)
        return dlqtool_main(argc - 1, argv + 1);
    if (argc > 1 && (strcmp(argv[1], "config") == 0 || strcmp(argv[1], "metrics") == 0))
        return cmd_reference(argc, argv);
    while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 'k':
            check = 1;
            break;
        case 'V':
            printf("eosproxy %s\n", EOSPROXY_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!path || optind != argc) {
        usage(stderr);
        return 2;
    }
    char err[512];
    config_t *cfg = config_load(path, err, sizeof(err));
    if (!cfg) {
        fprintf(stderr, "eosproxy: %s\n", err);
        return 1;
    }
    if (check) {
        printf("%s: ok\n", path);
        config_free(cfg);
        return 0;
    }
    int rc = run(cfg);
    config_free(cfg);
    return rc;
}
