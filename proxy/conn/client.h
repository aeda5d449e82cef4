/*
 * client.h - one client connection and its upstream twin.
 *
 * Each accepted client connection gets one upstream connection to the
 * broker its listener stands for (any known broker for the bootstrap
 * listener), so correlation ids pass through untouched. Requests are cut
 * into frames, their header and body validated, then forwarded without a
 * copy, answered locally (ApiVersions), or refused by closing the
 * connection. Responses are released strictly in request order through a
 * bounded FIFO of slots, whoever produced them.
 */
#ifndef EOSPROXY_CLIENT_H
#define EOSPROXY_CLIENT_H

#include <event2/util.h>
#include <stdint.h>
#include <sys/queue.h>

struct proxy;
struct broker;
struct sockaddr;

struct client;

/*
 * Takes ownership of fd and starts serving it. b is the broker the
 * listener stands for, or NULL for the bootstrap listener. Returns NULL (fd
 * closed) if the connection cannot be set up.
 */
struct client *client_new(struct proxy *px, evutil_socket_t fd, const struct sockaddr *sa,
                          int socklen, struct broker *b);

/* Closes both sides at once; client_free(NULL) is safe. */
void client_free(struct client *c);

/* Shutdown: every client stops reading requests and closes once its
 * responses are out. */
void client_drain_all(struct proxy *px);

/*
 * The answer an engine owes the slot (client_id, token): resp (a complete
 * response frame, ownership taken) fills that slot. A client that has gone
 * is not an error: resp is freed. The proxy hands this to the engines as
 * px->done.slot_done (engine.h).
 */
struct evbuffer;
void client_slot_done(struct proxy *px, uint64_t client_id, uint64_t token, struct evbuffer *resp);

/*
 * 1 while the slot (client_id, token) can still be answered: the client
 * is connected and the slot waits for an engine. 0 once the client has
 * gone (its answer would be dropped, and the client will send again).
 */
int client_slot_waiting(struct proxy *px, uint64_t client_id, uint64_t token);

/* Resumes reading from clients paused because the upgrade engine was busy. */
void client_resume_upgrade_paused(struct proxy *px);

/*
 * The auth worker's verdict on a client's SASL/PLAIN password (loop
 * thread; see authworker_cb). The connection may have gone: then nothing
 * happens.
 */
void client_auth_result(struct proxy *px, uint64_t client_id, int ok);

/* Closes every client at once (end of drain timeout, or exit). */
void client_free_all(struct proxy *px);

#endif
