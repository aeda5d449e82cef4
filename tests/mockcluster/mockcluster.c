/*
 * mockcluster - librdkafka's mock Kafka cluster as a standalone process, for
 * eosproxy's integration tests and benchmark.
 *
 *   mockcluster --brokers N [--topic NAME:PARTITIONS ...]
 *
 * Prints one line "BOOTSTRAP host:port,..." on stdout, then reads commands,
 * one per line, on stdin and answers each with "OK" or "ERR message":
 *
 *   topic NAME PARTITIONS                   create a topic
 *   rtt BROKER APIKEY COUNT ERR RTT_MS      next COUNT requests of APIKEY on
 *                                           BROKER answer ERR after RTT_MS
 *   err APIKEY COUNT ERRCODE                next COUNT requests of APIKEY fail
 *                                           with ERRCODE (-195 = drop the
 *                                           connection)
 *   down BROKER | up BROKER                 broker refuses/accepts connections
 *   leader TOPIC PARTITION BROKER           move a partition's leader
 *   quit                                    exit
 *
 * Exits 0 on "quit", on EOF of stdin, on SIGTERM or SIGINT.
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

static void reply(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

/* Parses a whole decimal integer in [lo, hi]; 0 on success. */
static int parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    if (!s || !*s)
        return -1;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int create_topic(rd_kafka_mock_cluster_t *mc, const char *name, long parts, int brokers,
                        char *err, size_t errlen) {
    int rf = brokers < 3 ? brokers : 3;
    rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mc, name, (int)parts, rf);
    if (e) {
        snprintf(err, errlen, "topic %s: %s", name, rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

/* Runs one command line; writes the answer. Returns 1 on "quit". */
static int run_command(rd_kafka_mock_cluster_t *mc, int brokers, char *line) {
    char *argv[8];
    int argc = 0;
    for (char *save = NULL, *tok = strtok_r(line, " \t\r", &save); tok;
         tok = strtok_r(NULL, " \t\r", &save)) {
        if (argc == 8) {
            reply("ERR too many arguments");
            return 0;
        }
        argv[argc++] = tok;
    }
    if (argc == 0) {
        reply("ERR empty command");
        return 0;
    }
    const char *cmd = argv[0];
    long a, b, c, d, e;
    rd_kafka_resp_err_t rc;
    char err[256];

    if (!strcmp(cmd, "quit") && argc == 1) {
        reply("OK");
        return 1;
    } else if (!strcmp(cmd, "topic") && argc == 3) {
        if (parse_long(argv[2], 1, 100000, &a)) {
            reply("ERR bad partition count");
            return 0;
        }
        if (create_topic(mc, argv[1], a, brokers, err, sizeof err)) {
            reply("ERR %s", err);
            return 0;
        }
    } else if (!strcmp(cmd, "rtt") && argc == 6) {
        if (parse_long(argv[1], 0, INT_MAX, &a) || parse_long(argv[2], 0, 32767, &b) ||
            parse_long(argv[3], 1, 100000, &c) || parse_long(argv[4], INT_MIN, INT_MAX, &d) ||
            parse_long(argv[5], 0, INT_MAX, &e)) {
            reply("ERR usage: rtt BROKER APIKEY COUNT ERR RTT_MS");
            return 0;
        }
        /* The varargs API takes (err, rtt) pairs; push one pair COUNT times. */
        for (long i = 0; i < c; i++) {
            rc = rd_kafka_mock_broker_push_request_error_rtts(mc, (int32_t)a, (int16_t)b, 1,
                                                              (rd_kafka_resp_err_t)d, (int)e);
            if (rc) {
                reply("ERR %s", rd_kafka_err2str(rc));
                return 0;
            }
        }
    } else if (!strcmp(cmd, "err") && argc == 4) {
        if (parse_long(argv[1], 0, 32767, &a) || parse_long(argv[2], 1, 100000, &b) ||
            parse_long(argv[3], INT_MIN, INT_MAX, &c)) {
            reply("ERR usage: err APIKEY COUNT ERRCODE");
            return 0;
        }
        rd_kafka_resp_err_t *errs = malloc(sizeof(*errs) * (size_t)b);
        if (!errs) {
            reply("ERR out of memory");
            return 0;
        }
        for (long i = 0; i < b; i++)
            errs[i] = (rd_kafka_resp_err_t)c;
        rd_kafka_mock_push_request_errors_array(mc, (int16_t)a, (size_t)b, errs);
        free(errs);
    } else if ((!strcmp(cmd, "down") || !strcmp(cmd, "up")) && argc == 2) {
        if (parse_long(argv[1], -1, INT_MAX, &a)) {
            reply("ERR usage: %s BROKER", cmd);
            return 0;
        }
        rc = cmd[0] == 'd' ? rd_kafka_mock_broker_set_down(mc, (int32_t)a)
                           : rd_kafka_mock_broker_set_up(mc, (int32_t)a);
        if (rc) {
            reply("ERR %s", rd_kafka_err2str(rc));
            return 0;
        }
    } else if (!strcmp(cmd, "leader") && argc == 4) {
        if (parse_long(argv[2], 0, INT_MAX, &a) || parse_long(argv[3], -1, INT_MAX, &b)) {
            reply("ERR usage: leader TOPIC PARTITION BROKER");
            return 0;
        }
        rc = rd_kafka_mock_partition_set_leader(mc, argv[1], (int32_t)a, (int32_t)b);
        if (rc) {
            reply("ERR %s", rd_kafka_err2str(rc));
            return 0;
        }
    } else {
        reply("ERR unknown command or wrong argument count: %s", cmd);
        return 0;
    }
    reply("OK");
    return 0;
}

static void usage(void) {
    fprintf(stderr, "usage: mockcluster --brokers N [--topic NAME:PARTITIONS ...]\n");
    exit(2);
}

int main(int argc, char **argv) {
    long brokers = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--brokers") && i + 1 < argc) {
            if (parse_long(argv[++i], 1, 64, &brokers))
                usage();
        } else if (!strcmp(argv[i], "--topic") && i + 1 < argc) {
            i++; /* handled after the cluster exists */
        } else {
            usage();
        }
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: poll() returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* The handle only hosts the mock; keep its own chatter quiet. */
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, "mockcluster: rd_kafka_new: %s\n", errstr);
        return 1;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, (int)brokers);
    if (!mc) {
        fprintf(stderr, "mockcluster: rd_kafka_mock_cluster_new failed\n");
        rd_kafka_destroy(rk);
        return 1;
    }

    int status = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--topic"))
            continue;
        char *spec = argv[++i];
        char *colon = strrchr(spec, ':');
        long parts = 1;
        if (colon) {
            *colon = '\0';
            if (parse_long(colon + 1, 1, 100000, &parts)) {
                fprintf(stderr, "mockcluster: bad --topic %s\n", spec);
                status = 2;
                goto out;
            }
        }
        if (create_topic(mc, spec, parts, (int)brokers, errstr, sizeof errstr)) {
            fprintf(stderr, "mockcluster: %s\n", errstr);
            status = 1;
            goto out;
        }
    }

    reply("BOOTSTRAP %s", rd_kafka_mock_cluster_bootstraps(mc));

    char buf[4096];
    size_t len = 0;
    while (!g_stop) {
        struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
        int n = poll(&pfd, 1, 500);
        if (n < 0 && errno != EINTR) {
            perror("mockcluster: poll");
            status = 1;
            break;
        }
        if (n <= 0)
            continue;
        ssize_t r = read(STDIN_FILENO, buf + len, sizeof buf - 1 - len);
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            perror("mockcluster: read");
            status = 1;
            break;
        }
        if (r == 0)
            break; /* EOF */
        len += (size_t)r;
        buf[len] = '\0';
        char *start = buf, *nl;
        int quit = 0;
        while (!quit && (nl = memchr(start, '\n', len - (size_t)(start - buf)))) {
            *nl = '\0';
            quit = run_command(mc, (int)brokers, start);
            start = nl + 1;
        }
        if (quit)
            break;
        len -= (size_t)(start - buf);
        memmove(buf, start, len);
        if (len == sizeof buf - 1) {
            reply("ERR line too long");
            len = 0;
        }
    }

out:
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return status;
}
