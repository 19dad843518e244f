/* outbox.h -- the transactional outbox: a service records a domain event (or a notification)
 * in its own schema inside the transaction that makes the change, and the runtime publishes it
 * to a Redis stream afterwards. Consequences: an event exists if and only if its change
 * committed; Redis being down delays events but loses none; under normal operation each event
 * is published once (a crash between the stream write and the delete or mark can publish it
 * again, so every entry carries a unique `event_id` for consumers that must deduplicate). */
#ifndef LOYALTY_OUTBOX_H
#define LOYALTY_OUTBOX_H

#include "cache.h"
#include "db.h"
#include "ids.h"
#include "rpc.h"

#include <stdint.h>

#define OUTBOX_EVENTS_STREAM "loyalty:events"
#define OUTBOX_NOTIFICATIONS_STREAM "loyalty:notifications"
#define OUTBOX_TYPE_MAX 64
#define OUTBOX_PAYLOAD_MAX 16384

/** Records an entry for `stream` inside the caller's open transaction (asserted): `type` such
 *  as "member.registered", `subject_id` the entity it is about, `payload_json` a JSON object
 *  (built with jsonw; INTERNAL EVENT_TOO_LARGE when it is not a whole `{...}` object, which is
 *  what jsonw leaves after an overflow, or longer than OUTBOX_PAYLOAD_MAX). The merchant is
 *  ctx->merchant_id (or `merchant_id` for jobs, which have none). The row is written with the
 *  transaction's next statement or its COMMIT (db_exec_deferred). The publisher is woken once
 *  the transaction has committed. Writes the new event id into event_id_out[ID_MAX] when not
 *  NULL. */
status_t outbox_emit(rpc_ctx_t *ctx, const char *merchant_id, const char *stream, const char *type,
                     const char *subject_id, const char *payload_json, char *event_id_out);

/** Publishes up to `batch_max` unpublished entries, oldest first, with XADD (fields event_id,
 *  type, merchant_id, subject_id, occurred_at, service, payload) and marks them published, in
 *  one transaction holding the rows with FOR UPDATE SKIP LOCKED (replica-safe). Leaves them
 *  for later when Redis is unreachable (UNAVAILABLE). *published gets the count. */
status_t outbox_publish_batch(db_t *db, cache_t *cache, const char *service, int64_t batch_max,
                              int64_t stream_maxlen, int64_t *published);

/** The same, but deletes the entries it published instead of marking them (in the same
 *  transaction, so a crash before its commit publishes them again, like a lost mark): what the
 *  publisher does when OUTBOX_RETENTION_DAYS is 0, the default. */
status_t outbox_publish_batch_deleting(db_t *db, cache_t *cache, const char *service,
                                       int64_t batch_max, int64_t stream_maxlen,
                                       int64_t *published);

/** Sets loyalty_outbox_pending_rows and loyalty_outbox_oldest_pending_age_seconds from the
 *  table, at most once per OUTBOX_REPORT_MS (the publisher calls it on every wake-up); nothing
 *  when metrics are off. One caller thread. */
#define OUTBOX_REPORT_MS 1000
void outbox_report_pending(db_t *db);

/** Deletes entries published more than retention_days ago, at most `batch` rows (with
 *  retention 0 only rows marked while retention was on remain to delete). */
status_t outbox_purge(db_t *db, int64_t retention_days, int64_t batch, int64_t *deleted);

/** Publisher wake-up: outbox_emit marks the calling thread's call; the server calls
 *  outbox_kick after a commit that emitted, and the publisher thread waits on it. */
void outbox_kick(void);
/** Waits until kicked or `timeout_ms` passed; returns false when told to stop. */
bool outbox_wait(int64_t timeout_ms);
void outbox_stop(void);

#endif
