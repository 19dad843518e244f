/* idem.c -- claim, replay and record idempotency keys. */
#include "idem.h"

#include <stdlib.h>
#include <string.h>

status_t idem_claim(db_t *db, arena_t *a, const char *merchant_id, const char *key,
                    const char *method, const unsigned char *request, size_t request_len,
                    unsigned char **replay, size_t *replay_len) {
    *replay = NULL;
    *replay_len = 0;
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, key);
    db_param_text(&p, method);
    db_param_bytes(&p, request, request_len);
    PGresult *r = NULL;
    /* ON CONFLICT waits for a concurrent holder of the key to finish, so the SELECT below sees
     * its committed row. */
    status_t st = db_exec(db,
                          "INSERT INTO idempotency_keys (merchant_id, key, method, request_hash) "
                          "VALUES ($1, $2, $3, sha256($4)) ON CONFLICT DO NOTHING RETURNING 1",
                          &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    bool claimed = PQntuples(r) == 1;
    PQclear(r);
    if (claimed) {
        return status_ok();
    }
    st = db_exec(db,
                 "SELECT method = $3 AND request_hash = sha256($4), response "
                 "FROM idempotency_keys WHERE merchant_id = $1 AND key = $2",
                 &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (PQntuples(r) != 1) {
        /* The holder rolled back between our INSERT and SELECT: let the caller retry. */
        PQclear(r);
        return status_make(STATUS_ABORTED, "CONCURRENCY_CONFLICT",
                           "concurrent use of the idempotency key, safe to retry");
    }
    bool same = db_get_bool(r, 0, 0);
    if (!same) {
        PQclear(r);
        return status_make(STATUS_ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED",
                           "idempotency key already used for a different request");
    }
    /* bytea comes back as text in hex form: \x0a1b... */
    const char *hex = db_get_str(r, 0, 1);
    size_t unescaped_len = 0;
    unsigned char *bytes = PQunescapeBytea((const unsigned char *)hex, &unescaped_len);
    PQclear(r);
    if (bytes == NULL) {
        return status_make(STATUS_INTERNAL, "DATABASE_ERROR", "cannot read a stored response");
    }
    *replay = arena_alloc(a, unescaped_len ? unescaped_len : 1);
    memcpy(*replay, bytes, unescaped_len);
    *replay_len = unescaped_len;
    PQfreemem(bytes);
    return status_ok();
}

status_t idem_store(db_t *db, const char *merchant_id, const char *key,
                    const unsigned char *response, size_t response_len) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, key);
    db_param_bytes(&p, response, response_len);
    return db_exec(db,
                   "UPDATE idempotency_keys SET response = $3 WHERE merchant_id = $1 AND key = $2",
                   &p, NULL);
}

status_t idem_purge(db_t *db, int64_t retention_days, int64_t batch, int64_t *deleted) {
    db_params_t p;
    db_params_init(&p);
    db_param_int(&p, retention_days);
    db_param_int(&p, batch);
    PGresult *r = NULL;
    status_t st = db_exec(db,
                          "DELETE FROM idempotency_keys WHERE ctid IN ("
                          " SELECT ctid FROM idempotency_keys"
                          " WHERE created_at < now() - make_interval(days => $1::int) LIMIT $2)",
                          &p, &r);
    if (status_is_ok(&st)) {
        *deleted = strtoll(PQcmdTuples(r), NULL, 10);
        PQclear(r);
    }
    return st;
}
