/*
 * control.h - eosproxy's own connection to the cluster.
 *
 * It walks the bootstrap list (then the brokers it learned) until one
 * answers, asks ApiVersions (to compute what clients may send) and
 * Metadata (to learn the brokers and open their listeners), then refreshes
 * the metadata every upstream.metadata_refresh. Failures reconnect with
 * exponential backoff between upstream.reconnect_backoff and
 * upstream.reconnect_backoff_max.
 */
#ifndef EOSPROXY_CONTROL_H
#define EOSPROXY_CONTROL_H

struct proxy;
struct control;

/* bootstrap: "host:port,host:port" (copied). Returns NULL if unparseable. */
struct control *control_new(struct proxy *px, const char *bootstrap);
/* control_free(NULL) is safe. */
void control_free(struct control *ctl);
/* Starts connecting. */
void control_start(struct control *ctl);

#endif
