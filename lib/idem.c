/* idem.c -- claim, replay and record idempotency keys. */
#include "idem.h"

#include "pgarray.h"

#include <stdlib.h>
#include <string.h>

status_t idem_record_on_commit(db_t *db, arena_t *a, const char *merchant_id, const char *key,
                               const char *method, const unsigned char *request, size_t request_len,
                               const unsigned char *response, size_t response_len) {
    /* The parameters must outlive this call (db_tx_on_commit borrows them): in the arena. */
    db_params_t *p = arena_alloc(a, sizeof *p);
    db_params_init(p);
    db_param_text(p, merchant_id);
    db_param_text(p, key);
    db_param_text(p, method);
    db_param_bytes(p, request, request_len);
    db_param_bytes(p, response, response_len);
    return db_tx_on_commit(db,
                           "INSERT INTO idempotency_keys (merchant_id, key, method, request_hash, "
                           " response) VALUES ($1, $2, $3, sha256($4), $5)",
                           p);
}

status_t idem_record_many_on_commit(db_t *db, arena_t *a, const char *merchant_id,
                                    const char *method, const idem_record_t *records, size_t n) {
    char **keys = arena_alloc(a, (n + 1) * sizeof *keys);
    char **requests = arena_alloc(a, (n + 1) * sizeof *requests);
    char **responses = arena_alloc(a, (n + 1) * sizeof *responses);
    for (size_t i = 0; i < n; i++) {
        keys[i] = (char *)records[i].key;
        requests[i] = pgarray_hex(a, records[i].request, records[i].request_len);
        responses[i] = pgarray_hex(a, records[i].response, records[i].response_len);
    }
    db_params_t *p = arena_alloc(a, sizeof *p);
    db_params_init(p);
    db_param_text(p, merchant_id);
    db_param_text(p, method);
    db_param_text_array(p, a, keys, n);
    db_param_text_array(p, a, requests, n);
    db_param_text_array(p, a, responses, n);
    return db_tx_on_commit(
        db,
        "INSERT INTO idempotency_keys (merchant_id, key, method, request_hash, "
        " response) SELECT $1, k, $2, sha256(decode(q, 'hex')), decode(r, 'hex') "
        "FROM unnest($3::text[], $4::text[], $5::text[]) AS x(k, q, r)",
        p);
}

bool idem_key_taken(db_t *db, const status_t *st) {
    return st->code == STATUS_ALREADY_EXISTS &&
           strcmp(db_last_constraint(db), "idempotency_keys_pkey") == 0;
}

status_t idem_lookup(db_t *db, arena_t *a, const char *merchant_id, const char *key,
                     const char *method, const unsigned char *request, size_t request_len,
                     idem_found_t *found, unsigned char **response, size_t *response_len) {
    *found = IDEM_NONE;
    *response = NULL;
    *response_len = 0;
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, key);
    db_param_text(&p, method);
    db_param_bytes(&p, request, request_len);
    PGresult *r = NULL;
    status_t st = db_exec(db,
                          "SELECT method = $3 AND request_hash = sha256($4), response "
                          "FROM idempotency_keys WHERE merchant_id = $1 AND key = $2",
                          &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (PQntuples(r) == 1) {
        *found = db_get_bool(r, 0, 0) ? IDEM_SAME : IDEM_DIFFERENT;
    }
    if (*found == IDEM_SAME) {
        *response = db_get_bytea(a, r, 0, 1, response_len);
        if (*response == NULL) {
            PQclear(r);
            return status_make(STATUS_INTERNAL, REASON_DATABASE_ERROR,
                               "cannot read a stored response");
        }
    }
    PQclear(r);
    return status_ok();
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
