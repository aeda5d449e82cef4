/*
 * test_loopwatch.c - the event-loop watchdog ends a process whose loop
 * stops turning, with SIGABRT and one log line, and leaves a busy but
 * turning loop alone; the lag histogram counts the loop's turns.
 *
 * Each watchdog case runs in a forked child (its own loop and thread), so
 * an abort ends only the child; core files are switched off there.
 */
#include "loopwatch.h"
#include "metrics.h"
#include "unit.h"

#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Work on the loop: spins for arg milliseconds (a stall when long). */
static void spin_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    uint64_t until = mono_ms() + (uint64_t)(uintptr_t)arg;
    while (mono_ms() < until)
        ;
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

/*
 * Child: a loop watched with stall_ms, which every 50 ms spends spin_ms
 * spinning, and stops after run_ms. Exits 0 when the loop ran to its end.
 */
static void child(uint64_t stall_ms, uint64_t spin_ms, uint64_t run_ms)
{
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    struct event_base *base = event_base_new();
    struct loopwatch *lw = base ? loopwatch_new(base, stall_ms) : NULL;
    if (!lw)
        _exit(3);
    struct timeval every = {0, 50000},
                   end = {(time_t)(run_ms / 1000), (suseconds_t)(run_ms % 1000) * 1000};
    struct event *spin = event_new(base, -1, EV_PERSIST, spin_cb, (void *)(uintptr_t)spin_ms);
    struct event *stop = evtimer_new(base, stop_cb, base);
    event_add(spin, &every);
    event_add(stop, &end);
    event_base_dispatch(base);
    loopwatch_free(lw);
    event_free(spin);
    event_free(stop);
    event_base_free(base);
    _exit(0);
}

/* Runs child() in a process whose stderr goes to errpath; its wait status. */
static int run_child(uint64_t stall_ms, uint64_t spin_ms, uint64_t run_ms, const char *errpath)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0)
            dup2(fd, 2);
        child(stall_ms, spin_ms, run_ms);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    return status;
}

static void read_file(const char *path, char *buf, size_t cap)
{
    buf[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = 0;
    fclose(f);
}

/* A loop stuck in one callback (10 s) is aborted after about 300 ms. */
static void test_stall_aborts(void)
{
    char path[] = "/tmp/test_loopwatch.XXXXXX", err[4096];
    int fd = mkstemp(path);
    close(fd);
    int status = run_child(300, 10000, 20000, path);
    CHECK(WIFSIGNALED(status));
    CHECK_EQ(WIFSIGNALED(status) ? WTERMSIG(status) : 0, SIGABRT);
    read_file(path, err, sizeof(err));
    CHECK(strstr(err, "the event loop has not turned for") != NULL);
    CHECK(strstr(err, "admin.stall_abort 300 ms") != NULL);
    unlink(path);
}

/* A loop busy 20 ms out of every 50 ms keeps turning: no abort (the
 * limit is generous: the test machines are shared). */
static void test_busy_loop_lives(void)
{
    char path[] = "/tmp/test_loopwatch.XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    int status = run_child(2000, 20, 1500, path);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0);
    unlink(path);
}

/* stall_abort 0: no watchdog, however long the stall. */
static void test_disabled(void)
{
    char path[] = "/tmp/test_loopwatch.XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    int status = run_child(0, 700, 800, path);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0);
    unlink(path);
}

/* In-process: the lag histogram counts turns and sees a 300 ms stall. */
static void test_lag_histogram(void)
{
    memset(&g_metrics, 0, sizeof(g_metrics));
    struct event_base *base = event_base_new();
    struct loopwatch *lw = loopwatch_new(base, 0);
    CHECK(lw != NULL);
    struct timeval at = {0, 150000}, end = {0, 900000};
    struct event *spin = evtimer_new(base, spin_cb, (void *)(uintptr_t)300);
    struct event *stop = evtimer_new(base, stop_cb, base);
    event_add(spin, &at);
    event_add(stop, &end);
    event_base_dispatch(base);
    CHECK(g_metrics.loop_lag_count >= 3);
    CHECK(g_metrics.loop_lag_sum_us >= 150000); /* the stall shows as lag */
    uint64_t in_buckets = 0;
    for (int i = 0; i < METRICS_LAT_BUCKETS; i++)
        in_buckets += g_metrics.loop_lag_bucket[i];
    CHECK(in_buckets <= g_metrics.loop_lag_count);
    loopwatch_free(lw);
    loopwatch_free(NULL);
    event_free(spin);
    event_free(stop);
    event_base_free(base);
}

int main(void)
{
    test_lag_histogram();
    test_stall_aborts();
    test_busy_loop_lives();
    test_disabled();
    return unit_done("test_loopwatch");
}
