/*
 * authworker.h - SASL/PLAIN password checks off the event loop.
 *
 * users_verify runs PBKDF2 (50..100 ms at the default 210,000 iterations).
 * Run on the loop, one login would stall every connection for that long,
 * so checks run on a few worker threads. Jobs and results cross between
 * threads through two mutex-protected queues and a pipe whose read end is
 * an event on the loop; this is the login path, not the data path.
 *
 * The worker also owns the loaded users file: users_scram_cred (cheap) is
 * called on the loop with authworker_users(), and a reload swaps the file
 * under the queue lock. A check in progress keeps the file it started with
 * alive until it finishes.
 */
#ifndef EOSPROXY_AUTHWORKER_H
#define EOSPROXY_AUTHWORKER_H

#include "users.h"

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct authworker;

/* Called on the loop thread with the job id given to authworker_submit and
 * whether the password matched. The job's connection may be gone: look it
 * up by id. */
typedef void (*authworker_cb)(void *arg, uint64_t job_id, int ok);

/*
 * Starts nthreads workers for base, taking ownership of users. At most
 * max_queue checks wait at once. cb/arg receive every result. NULL on error
 * (users is then freed too).
 */
struct authworker *authworker_new(struct event_base *base, users_t *users, int nthreads,
                                  size_t max_queue, authworker_cb cb, void *arg);

/* Stops and joins the workers; drops pending jobs without calling back.
 * authworker_free(NULL) is safe. */
void authworker_free(struct authworker *w);

/*
 * Queues a check of user/password (both copied; the copy of the password
 * is wiped after the check). Returns 0, or -1 when max_queue checks are
 * already waiting or memory is short: the caller refuses the login.
 */
int authworker_submit(struct authworker *w, const char *user, size_t ulen, const char *password,
                      size_t plen, uint64_t job_id);

/* The current users file (loop thread only). Valid until the next
 * authworker_set_users on the loop. */
const users_t *authworker_users(const struct authworker *w);

/* Replaces the users file (ownership taken); the old one is freed once no
 * check uses it. Loop thread only. */
void authworker_set_users(struct authworker *w, users_t *users);

#endif
