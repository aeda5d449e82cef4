/*
 * krewrite.h - rewriting broker addresses in responses.
 *
 * Clients must reconnect through eosproxy, so every response that carries a
 * broker endpoint is rewritten: Metadata (all versions in the table: the
 * Brokers array), FindCoordinator (v0-v3 single coordinator, v4+ the
 * Coordinators array) and DescribeCluster (Brokers array). Produce and Fetch
 * are capped below the KIP-951 versions that carry NodeEndpoints, so they
 * never need it.
 *
 * The rewrite copies every byte it does not change and re-encodes only the
 * host and port fields (a string's length may change, so the output is a new
 * buffer). Pure codec: no libevent.
 */
#ifndef EOSPROXY_KREWRITE_H
#define EOSPROXY_KREWRITE_H

#include "kbuf.h"

#include <stdint.h>

/*
 * Called once per broker endpoint found. node_id/host/port are the
 * upstream's values (host is a view into the input frame). The callback
 * sets *new_host (a view that must stay valid until krewrite_response
 * returns) and *new_port; returning non-zero aborts the rewrite (the
 * function then returns -1 with *err "endpoint rejected").
 */
typedef int (*kaddr_map_fn)(void *ctx, int32_t node_id, kstr_t host, int32_t port, kstr_t *new_host,
                            int32_t *new_port);

/* 1 if responses of api_key carry broker endpoints eosproxy must rewrite. */
int krewrite_needed(int16_t api_key);

/*
 * Rewrites a response frame (bytes after the size prefix, starting with the
 * correlation id) of (api_key, ver). Appends to out a complete frame
 * INCLUDING a fresh 4-byte size prefix. Returns 0 on success, -1 if the
 * input is malformed (with *err a static message) or out failed.
 * A frame of an api that needs no rewrite is copied unchanged.
 */
int krewrite_response(int16_t api_key, int16_t ver, const uint8_t *frame, size_t len,
                      kaddr_map_fn map, void *ctx, kwriter_t *out, const char **err);

#endif
