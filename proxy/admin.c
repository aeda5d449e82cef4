/*
 * admin.c - /metrics, /healthz, /readyz and POST /reload over evhttp. See admin.h.
 */
#include "admin.h"

#include "config.h"
#include "log.h"
#include "metrics.h"
#include "proxy.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct admin {
    struct proxy *px;
    struct evhttp *http;
};

static void reply(struct evhttp_request *req, int code, const char *reason, const char *type,
                  struct evbuffer *body)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
    evhttp_send_reply(req, code, reason, body);
}

static void reply_text(struct evhttp_request *req, int code, const char *reason, const char *text)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "%s\n", text);
    reply(req, code, reason, "text/plain; charset=utf-8", b);
    evbuffer_free(b);
}

static void on_metrics(struct evhttp_request *req, void *arg)
{
    (void)arg;
    struct evbuffer *b = evbuffer_new();
    metrics_render(b);
    reply(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", b);
    evbuffer_free(b);
}

static void on_healthz(struct evhttp_request *req, void *arg)
{
    (void)arg;
    reply_text(req, 200, "OK", "ok");
}

static void on_readyz(struct evhttp_request *req, void *arg)
{
    struct admin *a = arg;
    if (a->px->ready && !a->px->draining)
        reply_text(req, 200, "OK", "ready");
    else
        reply_text(req, 503, "Service Unavailable", a->px->draining ? "draining" : "not ready");
}

/*
 * POST /reload: the config file's reloadable keys, as SIGHUP does. 200
 * "reloaded" (plus the keys that need a restart, if any changed), or 400
 * with the file:line reason; the running config stays then.
 */
static void on_reload(struct evhttp_request *req, void *arg)
{
    struct admin *a = arg;
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
        reply_text(req, 405, "Method Not Allowed", "use POST /reload");
        return;
    }
    char err[512], restart[512], msg[1100];
    if (proxy_reload(a->px, err, sizeof(err), restart, sizeof(restart))) {
        snprintf(msg, sizeof(msg), "refused: %s", err);
        reply_text(req, 400, "Bad Request", msg);
        return;
    }
    if (restart[0])
        snprintf(msg, sizeof(msg), "reloaded; these keys changed but need a restart: %s", restart);
    else
        snprintf(msg, sizeof(msg), "reloaded");
    reply_text(req, 200, "OK", msg);
}

static void on_other(struct evhttp_request *req, void *arg)
{
    (void)arg;
    reply_text(req, 404, "Not Found", "not found: try /metrics, /healthz, /readyz or POST /reload");
}

struct admin *admin_new(struct proxy *px, const char *listen)
{
    char *host = NULL;
    int port = 0;
    if (config_parse_hostport(listen, &host, &port)) {
        log_error("admin.listen: bad address '%s'", listen);
        return NULL;
    }
    struct admin *a = calloc(1, sizeof(*a));
    a->px = px;
    a->http = evhttp_new(px->base);
    if (!a->http || evhttp_bind_socket(a->http, host, (ev_uint16_t)port)) {
        log_error("admin.listen: cannot listen on %s", listen);
        free(host);
        admin_free(a);
        return NULL;
    }
    free(host);
    evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
    evhttp_set_max_headers_size(a->http, 8192);
    evhttp_set_max_body_size(a->http, 1024);
    evhttp_set_timeout(a->http, 10);
    evhttp_set_cb(a->http, "/metrics", on_metrics, a);
    evhttp_set_cb(a->http, "/healthz", on_healthz, a);
    evhttp_set_cb(a->http, "/readyz", on_readyz, a);
    evhttp_set_cb(a->http, "/reload", on_reload, a);
    evhttp_set_gencb(a->http, on_other, a);
    log_info("admin: listening on %s", listen);
    return a;
}

void admin_free(struct admin *a)
{
    if (!a)
        return;
    if (a->http)
        evhttp_free(a->http);
    free(a);
}
