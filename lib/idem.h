/* idem.h -- idempotency keys of mutating RPCs, stored in the service's idempotency_keys table
 * inside the caller's transaction (DESIGN §4). */
#ifndef LOYALTY_IDEM_H
#define LOYALTY_IDEM_H

#include "arena.h"
#include "db.h"
#include "status.h"

#include <stdbool.h>
#include <stddef.h>

/** Claims (merchant_id, key) for `method` and the request bytes, inside an open transaction.
 *  OK with *replay NULL: claimed, run the change then call idem_store. OK with *replay set: the
 *  key was used before by an identical request; *replay (arena memory, *replay_len bytes) is the
 *  response to return. ALREADY_EXISTS with reason IDEMPOTENCY_KEY_REUSED: the key was used by a
 *  different request. Concurrent claims of one key wait for the first to commit or roll back. */
status_t idem_claim(db_t *db, arena_t *a, const char *merchant_id, const char *key,
                    const char *method, const unsigned char *request, size_t request_len,
                    unsigned char **replay, size_t *replay_len);

/** Records the response of a claimed key, in the same transaction. */
status_t idem_store(db_t *db, const char *merchant_id, const char *key,
                    const unsigned char *response, size_t response_len);

/** Deletes keys older than retention_days, at most `batch` rows; *deleted gets the count. */
status_t idem_purge(db_t *db, int64_t retention_days, int64_t batch, int64_t *deleted);

#endif
