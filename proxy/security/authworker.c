/*
 * authworker.c - SASL/PLAIN password checks on worker threads (see
 * authworker.h). Reference counts of users files change only on the loop
 * thread (submit, result, swap); the workers only read the file a job
 * holds.
 */
#include "authworker.h"

#include "log.h"

#include <event2/event.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define AUTHWORKER_MAX_THREADS 8

/* A users file and how many holders it has (the worker's current + jobs). */
struct users_ref {
    users_t *u;
    int refs;
};

struct job {
    struct job *next;
    struct users_ref *ref;
    char *user;
    size_t ulen;
    char *pw;
    size_t plen;
    uint64_t id;
    int ok;
};

struct authworker {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *pending, *pending_tail;
    size_t npending, max_queue;
    struct job *done;
    int stop;

    int pipefd[2];
    struct event *ev;
    pthread_t threads[AUTHWORKER_MAX_THREADS];
    int nthreads;

    struct users_ref *cur;
    authworker_cb cb;
    void *arg;
};

static void ref_release(struct users_ref *r)
{
    if (r && --r->refs == 0) {
        users_free(r->u);
        free(r);
    }
}

static void job_free(struct job *j)
{
    if (!j)
        return;
    if (j->pw) {
        OPENSSL_cleanse(j->pw, j->plen);
        free(j->pw);
    }
    free(j->user);
    ref_release(j->ref);
    free(j);
}

static void *worker_main(void *arg)
{
    struct authworker *w = arg;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (!w->stop && !w->pending)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->stop) {
            pthread_mutex_unlock(&w->mu);
            return NULL;
        }
        struct job *j = w->pending;
        w->pending = j->next;
        if (!w->pending)
            w->pending_tail = NULL;
        w->npending--;
        pthread_mutex_unlock(&w->mu);

        j->ok = users_verify(j->ref->u, j->user, j->ulen, j->pw, j->plen);
        OPENSSL_cleanse(j->pw, j->plen);

        pthread_mutex_lock(&w->mu);
        j->next = w->done;
        w->done = j;
        pthread_mutex_unlock(&w->mu);
        char one = 1;
        ssize_t n = write(w->pipefd[1], &one, 1); /* a full pipe already wakes the loop */
        (void)n;
    }
}

/* Loop side: results are in; hand them to the callback. */
static void results_cb(evutil_socket_t fd, short what, void *arg)
{
    struct authworker *w = arg;
    char buf[256];
    (void)what;
    while (read(fd, buf, sizeof(buf)) > 0) {
    }
    pthread_mutex_lock(&w->mu);
    struct job *j = w->done;
    w->done = NULL;
    pthread_mutex_unlock(&w->mu);
    while (j) {
        struct job *next = j->next;
        w->cb(w->arg, j->id, j->ok);
        job_free(j);
        j = next;
    }
}

struct authworker *authworker_new(struct event_base *base, users_t *users, int nthreads,
                                  size_t max_queue, authworker_cb cb, void *arg)
{
    struct authworker *w = calloc(1, sizeof(*w));
    struct users_ref *r = calloc(1, sizeof(*r));
    if (!w || !r || pipe(w->pipefd) < 0) {
        free(w);
        free(r);
        users_free(users);
        return NULL;
    }
    r->u = users;
    r->refs = 1;
    w->cur = r;
    w->cb = cb;
    w->arg = arg;
    w->max_queue = max_queue ? max_queue : 1;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    fcntl(w->pipefd[0], F_SETFL, O_NONBLOCK);
    fcntl(w->pipefd[1], F_SETFL, O_NONBLOCK);
    w->ev = event_new(base, w->pipefd[0], EV_READ | EV_PERSIST, results_cb, w);
    if (!w->ev || event_add(w->ev, NULL) < 0) {
        authworker_free(w);
        return NULL;
    }
    if (nthreads < 1)
        nthreads = 1;
    if (nthreads > AUTHWORKER_MAX_THREADS)
        nthreads = AUTHWORKER_MAX_THREADS;
    for (int i = 0; i < nthreads; i++) {
        if (pthread_create(&w->threads[i], NULL, worker_main, w) != 0) {
            log_error("authworker: cannot start a thread");
            authworker_free(w);
            return NULL;
        }
        w->nthreads++;
    }
    return w;
}

static void free_list(struct job *j)
{
    while (j) {
        struct job *next = j->next;
        job_free(j);
        j = next;
    }
}

void authworker_free(struct authworker *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    for (int i = 0; i < w->nthreads; i++)
        pthread_join(w->threads[i], NULL);
    free_list(w->pending);
    free_list(w->done);
    if (w->ev)
        event_free(w->ev);
    close(w->pipefd[0]);
    close(w->pipefd[1]);
    ref_release(w->cur);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

int authworker_submit(struct authworker *w, const char *user, size_t ulen, const char *password,
                      size_t plen, uint64_t job_id)
{
    struct job *j = calloc(1, sizeof(*j));
    if (!j)
        return -1;
    j->user = malloc(ulen + 1);
    j->pw = malloc(plen + 1);
    if (!j->user || !j->pw) {
        job_free(j);
        return -1;
    }
    memcpy(j->user, user, ulen);
    j->user[ulen] = '\0';
    j->ulen = ulen;
    memcpy(j->pw, password, plen);
    j->pw[plen] = '\0';
    j->plen = plen;
    j->id = job_id;
    pthread_mutex_lock(&w->mu);
    if (w->npending >= w->max_queue) {
        pthread_mutex_unlock(&w->mu);
        job_free(j);
        return -1;
    }
    j->ref = w->cur;
    w->cur->refs++; /* loop thread: the only one touching refs */
    if (w->pending_tail)
        w->pending_tail->next = j;
    else
        w->pending = j;
    w->pending_tail = j;
    w->npending++;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

const users_t *authworker_users(const struct authworker *w)
{
    return w->cur->u;
}

void authworker_set_users(struct authworker *w, users_t *users)
{
    struct users_ref *r = calloc(1, sizeof(*r));
    if (!r) {
        users_free(users);
        return;
    }
    r->u = users;
    r->refs = 1;
    pthread_mutex_lock(&w->mu);
    struct users_ref *old = w->cur;
    w->cur = r;
    pthread_mutex_unlock(&w->mu);
    ref_release(old);
}
