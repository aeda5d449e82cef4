/*
 * bench - librdkafka load generator for eosproxy's direct-vs-proxy benchmark.
 *
 *   bench --bootstrap B --topic T --mode throughput --size 1024 --count N
 *         [--acks all] [--linger-ms 5] [--idempotence false] [-X key=value ...]
 *   bench --bootstrap B --topic T --mode latency --size 100 --count N
 *
 * throughput: produces COUNT records of SIZE bytes as fast as librdkafka
 *             takes them and times first send to last delivery report.
 * latency:    produces one record at a time and waits for its delivery
 *             report before sending the next (linger.ms 0 unless given).
 *
 * Prints one JSON line on stdout. Exits 1 if any delivery failed, so a
 * benchmark never reports numbers for records that did not land.
 */
#include <librdkafka/rdkafka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long g_delivered;
static long g_failed;
static rd_kafka_resp_err_t g_first_err;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    if (m->err) {
        if (!g_failed)
            g_first_err = m->err;
        g_failed++;
    } else {
        g_delivered++;
    }
}

static void die(const char *fmt, const char *arg) {
    fprintf(stderr, "bench: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    exit(1);
}

static void set(rd_kafka_conf_t *conf, const char *k, const char *v) {
    char err[512];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof err) != RD_KAFKA_CONF_OK)
        die("config: %s", err);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *sorted, long n, double p) {
    long i = (long)(p / 100.0 * (double)(n - 1) + 0.5);
    if (i >= n)
        i = n - 1;
    return sorted[i];
}

/* Produces one record, waiting (polling) while librdkafka's queue is full. */
static void produce_one(rd_kafka_t *rk, rd_kafka_topic_t *rkt, void *buf, size_t size) {
    for (;;) {
        if (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, 0, buf, size, NULL, 0, NULL) == 0)
            return;
        rd_kafka_resp_err_t e = rd_kafka_last_error();
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            die("produce: %s", rd_kafka_err2str(e));
        rd_kafka_poll(rk, 5);
    }
}

/* Waits for every outstanding delivery report (or dies after timeout). */
static void flush_all(rd_kafka_t *rk, int timeout_ms) {
    rd_kafka_resp_err_t e = rd_kafka_flush(rk, timeout_ms);
    if (e)
        die("flush: %s (records still undelivered)", rd_kafka_err2str(e));
}

static void check_failures(const char *phase) {
    if (g_failed) {
        fprintf(stderr, "bench: %s: %ld deliveries FAILED, first error: %s\n", phase, g_failed,
                rd_kafka_err2str(g_first_err));
        exit(1);
    }
}

int main(int argc, char **argv) {
    const char *bootstrap = NULL, *topic = NULL, *mode = "throughput";
    const char *acks = "all", *linger = NULL, *idempotence = "false";
    long size = 1024, count = 100000, warmup = 100;
    int timeout_s = 120;
    char *xs[64];
    int nx = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            die("missing value for %s", a);
        i++;
        if (!strcmp(a, "--bootstrap"))
            bootstrap = v;
        else if (!strcmp(a, "--topic"))
            topic = v;
        else if (!strcmp(a, "--mode"))
            mode = v;
        else if (!strcmp(a, "--size"))
            size = atol(v);
        else if (!strcmp(a, "--count"))
            count = atol(v);
        else if (!strcmp(a, "--warmup"))
            warmup = atol(v);
        else if (!strcmp(a, "--acks"))
            acks = v;
        else if (!strcmp(a, "--linger-ms"))
            linger = v;
        else if (!strcmp(a, "--idempotence"))
            idempotence = v;
        else if (!strcmp(a, "--timeout-s"))
            timeout_s = atoi(v);
        else if (!strcmp(a, "-X") && nx < 64)
            xs[nx++] = argv[i];
        else
            die("unknown option %s (see the header of tests/bench/bench.c)", a);
    }
    int latency = !strcmp(mode, "latency");
    if (!bootstrap || !topic || (!latency && strcmp(mode, "throughput")) || size < 0 ||
        count <= 0 || warmup < 0)
        die("%s", "usage: bench --bootstrap B --topic T --mode throughput|latency --size N "
                  "--count N [--acks all] [--linger-ms 5] [--idempotence false]");
    if (!linger)
        linger = latency ? "0" : "5";

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", bootstrap);
    set(conf, "acks", acks);
    set(conf, "linger.ms", linger);
    set(conf, "enable.idempotence", idempotence);
    set(conf, "message.timeout.ms", "30000");
    set(conf, "queue.buffering.max.messages", "500000");
    for (int i = 0; i < nx; i++) {
        char *eq = strchr(xs[i], '=');
        if (!eq)
            die("-X %s: expected key=value", xs[i]);
        *eq = '\0';
        set(conf, xs[i], eq + 1);
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk)
        die("rd_kafka_new: %s", err);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);

    char *buf = malloc((size_t)size + 1);
    if (!buf)
        die("%s", "out of memory");
    for (long i = 0; i < size; i++)
        buf[i] = (char)('a' + (i * 7 + i / 26) % 26); /* compressible-ish but not constant */

    /* Warm up: connections to every leader, metadata, producer id. */
    for (long i = 0; i < warmup; i++)
        produce_one(rk, rkt, buf, (size_t)size);
    flush_all(rk, timeout_s * 1000);
    check_failures("warmup");
    g_delivered = 0;

    if (!latency) {
        double t0 = now_s();
        for (long i = 0; i < count; i++) {
            produce_one(rk, rkt, buf, (size_t)size);
            if ((i & 1023) == 0)
                rd_kafka_poll(rk, 0);
        }
        flush_all(rk, timeout_s * 1000);
        double secs = now_s() - t0;
        check_failures("throughput");
        if (g_delivered != count) {
            fprintf(stderr, "bench: %ld of %ld records delivered\n", g_delivered, count);
            return 1;
        }
        printf("{\"mode\":\"throughput\",\"size\":%ld,\"count\":%ld,\"acks\":\"%s\","
               "\"linger_ms\":%s,\"seconds\":%.4f,\"mb_per_s\":%.1f,\"records_per_s\":%.0f,"
               "\"failed\":0}\n",
               size, count, acks, linger, secs, (double)size * (double)count / secs / 1e6,
               (double)count / secs);
    } else {
        double *lat = malloc(sizeof(double) * (size_t)count);
        if (!lat)
            die("%s", "out of memory");
        double deadline = now_s() + timeout_s;
        for (long i = 0; i < count; i++) {
            long want = g_delivered + 1;
            double t0 = now_s();
            produce_one(rk, rkt, buf, (size_t)size);
            while (g_delivered < want && !g_failed) {
                rd_kafka_poll(rk, 100);
                if (now_s() > deadline)
                    die("%s", "latency run timed out");
            }
            lat[i] = (now_s() - t0) * 1e6;
            check_failures("latency");
        }
        qsort(lat, (size_t)count, sizeof(double), cmp_double);
        double sum = 0;
        for (long i = 0; i < count; i++)
            sum += lat[i];
        printf("{\"mode\":\"latency\",\"size\":%ld,\"count\":%ld,\"acks\":\"%s\","
               "\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f,"
               "\"mean_us\":%.1f,\"failed\":0}\n",
               size, count, acks, pct(lat, count, 50), pct(lat, count, 90), pct(lat, count, 99),
               lat[count - 1], sum / (double)count);
        free(lat);
    }
    fflush(stdout);
    free(buf);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return 0;
}
