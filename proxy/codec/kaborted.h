/*
 * kaborted.h - aborted transactional data taken out of a Fetch response,
 * for clients whose Fetch eosproxy raised to read_committed.
 *
 * A broker answering a read_committed Fetch stops at the last stable
 * offset, but still sends the batches of aborted transactions below it,
 * with the partition's AbortedTransactions list: dropping them is the
 * consumer's job, and a client that asked for read_uncommitted ignores the
 * list. This module does it for that client, as Kafka's own consumer does
 * (Fetcher.nextFetchedRecord): walking a partition's batches in order, the
 * producers of the AbortedTransactions whose FirstOffset is at or below a
 * batch's last offset become aborted; a transactional batch of an aborted
 * producer is dropped; an ABORT control batch of that producer ends it.
 * A dropped batch is replaced by its empty form
 * (krecords_empty_mode_for_fetch), so the client's fetch offset still moves
 * past it. Control batches and everything else stay byte for byte.
 *
 * Pure codec: no libevent. Views into the frame; the output is a new frame.
 */
#ifndef EOSPROXY_KABORTED_H
#define EOSPROXY_KABORTED_H

#include "kbuf.h"

#include <stddef.h>
#include <stdint.h>

/*
 * Filters a FetchResponse frame (bytes after the size prefix) of version
 * ver (KFETCH_MIN_VERSION..KFETCH_MAX_VERSION). Returns 0 when no batch
 * was aborted (w untouched: forward the frame as it is), 1 when w holds
 * the whole new frame (size prefix included) and *dropped the number of
 * batches taken out, or -1 when the frame does not parse or memory ran
 * out (w untouched). A batch that does not parse (the partial batch a
 * broker may end a partition with) and what follows it stay as they are.
 */
int kaborted_filter(int16_t ver, const uint8_t *frame, size_t len, kwriter_t *w, size_t *dropped);

#endif
