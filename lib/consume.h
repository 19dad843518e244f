/* consume.h -- consumers of the domain event stream (outbox.h publishes it): a service names
 * the events it follows in rpc_server_options.consumers, and the shared server runs one thread
 * per consumer that reads the stream through a Redis consumer group, runs the handlers of the
 * events one read delivers in a database transaction per merchant (a part per event) and
 * acknowledges the events after its commit. Consequences: a
 * restart (or another replica) goes on where the group stopped, since the group keeps the
 * stream position and every unacknowledged entry; an event is handled at least once, so a
 * handler must be idempotent (the same event twice, or an older one after a newer one, changes
 * nothing: outbox entries carry an event_id and their payload what orders them). */
#ifndef LOYALTY_CONSUME_H
#define LOYALTY_CONSUME_H

#include "rpc.h"

#include <stdbool.h>
#include <stdint.h>

#define CONSUME_BATCH_MAX 100 /* entries one read takes */
/* An entry delivered to a consumer and left unacknowledged this long (its handler failed, or
 * the replica died) is claimed by whichever consumer of the group looks next. */
#define CONSUME_RETRY_IDLE_MS 5000
#define CONSUME_BLOCK_MS 100  /* a read waits this long for new entries (< the Redis timeout) */
#define CONSUME_LOOKBACK_S 60 /* a new group starts this long before its first consumer did */
/* Every consumer name is a process ("<host>:<pid>"), so a group would collect the names of every
 * replica that ever ran: each reader drops, this often, the names that hold no pending entry and
 * have been idle this long (a live reader reads every CONSUME_BLOCK_MS; one dropped by mistake
 * is simply made again by its next read). */
#define CONSUME_PRUNE_INTERVAL_MS (10 * 60 * 1000)
#define CONSUME_PRUNE_IDLE_MS (60 * 60 * 1000)
#define CONSUME_PRUNE_MAX 100 /* names looked at per prune */

/** One stream entry as outbox_publish_batch wrote it; every string borrowed from the reply. */
typedef struct consume_event {
    const char *entry_id; /* the stream's id ("1700000000000-0") */
    const char *event_id;
    const char *type; /* "points.earned" */
    const char *merchant_id;
    const char *subject_id;
    const char *service;
    const char *payload; /* a JSON object */
    int64_t occurred_at;
} consume_event_t;

/** Handles one event inside a part (db_tx_part) of the consumer's transaction, which runs the
 *  consecutive events of one merchant that one read delivered; ctx->merchant_id is the event's
 *  merchant. A non-OK status rolls the event's part back and leaves it unacknowledged,
 *  to be delivered again after CONSUME_RETRY_IDLE_MS: return OK for an event that can never
 *  apply (an unknown member), with a log line. */
typedef status_t (*consume_fn)(rpc_ctx_t *ctx, const consume_event_t *ev);

/** Optional, beside consume_fn: applies together, in one part of the consumer's transaction, the
 *  events of evs[0..n) (one merchant's, in stream order) it can apply as a set, and sets
 *  taken[i] for each of them; the events it leaves then run through consume_fn one by one,
 *  after it. A non-OK status rolls its part back and every event runs through consume_fn. It
 *  must therefore only take events whose effect does not depend on the order they are applied
 *  in relative to the ones it leaves (a handler that keeps the newer of two versions). */
typedef status_t (*consume_many_fn)(rpc_ctx_t *ctx, const consume_event_t *evs, int n, bool *taken);

typedef struct rpc_consumer {
    const char *group;       /* the consumer group, e.g. "member-svc.points-balance"; the database's
                                name is appended (one group per database the handlers write) */
    const char *stream;      /* OUTBOX_EVENTS_STREAM */
    const char *type_prefix; /* events whose type starts so are handled; others acknowledged */
    consume_fn fn;
    consume_many_fn many; /* NULL: every event through fn */
} rpc_consumer_t;

/** Reads the integer member `key` at the top level of a JSON object (as jsonw writes them);
 *  false when absent or not an integer. */
bool consume_payload_int(const char *json, const char *key, int64_t *out);

/** Starts one thread per consumer of the list (ending with an entry whose group is NULL), and
 *  joins them after the background threads were told to stop. Used by rpc_server. */
void consume_start(const rpc_consumer_t *consumers);
void consume_join(void);

#endif
