/*
 * admin.h - the admin HTTP endpoint (libevent evhttp): GET /metrics
 * (Prometheus text), /healthz (200 while the process runs its loop) and
 * /readyz (200 once upstream metadata was fetched and listeners are up,
 * 503 before that and while draining), and POST /reload (proxy_reload:
 * 200, or 400 with the config file's file:line reason).
 */
#ifndef EOSPROXY_ADMIN_H
#define EOSPROXY_ADMIN_H

struct proxy;
struct admin;

/* Binds "host:port". Returns NULL (logged) if it cannot. */
struct admin *admin_new(struct proxy *px, const char *listen);
/* admin_free(NULL) is safe. */
void admin_free(struct admin *a);

#endif
