/* idem.h -- idempotency keys of mutating RPCs, stored in the service's idempotency_keys table
 * inside the caller's transaction (docs/architecture.md#idempotency-keys). */
#ifndef LOYALTY_IDEM_H
#define LOYALTY_IDEM_H

#include "arena.h"
#include "db.h"
#include "status.h"

#include <stdbool.h>
#include <stddef.h>

/** Records (merchant_id, key) for `method`, the request bytes and the response, inside the
 *  transaction that made the change, sent together with its COMMIT (db_tx_on_commit): no
 *  round trip of its own. When the key was used before, or by a concurrent call that committed
 *  first (the insert waits for it), the insert fails, the change rolls back and db_tx returns
 *  an error that idem_key_taken recognises; the caller then answers with idem_lookup. Parameters
 * are copied into `a`; request and response must live as long as the transaction. */
status_t idem_record_on_commit(db_t *db, arena_t *a, const char *merchant_id, const char *key,
                               const char *method, const unsigned char *request, size_t request_len,
                               const unsigned char *response, size_t response_len);

/** One call's key, request and response, for idem_record_many_on_commit. */
typedef struct idem_record {
    const char *key;
    const unsigned char *request;
    size_t request_len;
    const unsigned char *response;
    size_t response_len;
} idem_record_t;

/** idem_record_on_commit for the calls of one merchant and method merged into one run
 *  (rpc_merger_t): one statement for all of them, sent with the COMMIT or the part's end. A key
 *  taken before, or twice among them, fails it as one taken key fails idem_record_on_commit.
 *  The values are encoded into `a` now; `records` may go. */
status_t idem_record_many_on_commit(db_t *db, arena_t *a, const char *merchant_id,
                                    const char *method, const idem_record_t *records, size_t n);

/** True when db_tx failed because idem_record_on_commit found its key taken. */
bool idem_key_taken(db_t *db, const status_t *st);

typedef enum idem_found {
    IDEM_NONE,      /* no call has used the key */
    IDEM_SAME,      /* used by an identical request: *response is its answer */
    IDEM_DIFFERENT, /* used by another request */
} idem_found_t;

/** What a key was used for, read outside any change (after a rollback). */
status_t idem_lookup(db_t *db, arena_t *a, const char *merchant_id, const char *key,
                     const char *method, const unsigned char *request, size_t request_len,
                     idem_found_t *found, unsigned char **response, size_t *response_len);

/** Deletes keys older than retention_days, at most `batch` rows; *deleted gets the count. */
status_t idem_purge(db_t *db, int64_t retention_days, int64_t batch, int64_t *deleted);

#endif
