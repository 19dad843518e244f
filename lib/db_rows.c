/* db_rows.c -- the store kit: reading a result's rows through a per-row function (into an
 * arena array when asked), typed reads of nullable, array, bytea and packed-message cells, and
 * array parameters, so that the services' stores say only what a row means. */
#include "db.h"
#include "pb.h"
#include "pgarray.h"

#include <string.h>

char *db_dup_str_or_null(arena_t *a, const PGresult *r, int row, int col) {
    return db_is_null(r, row, col) ? NULL : db_dup_str(a, r, row, col);
}

int64_t db_get_int_or(const PGresult *r, int row, int col, int64_t none) {
    return db_is_null(r, row, col) ? none : db_get_int(r, row, col);
}

char **db_get_text_array(arena_t *a, const PGresult *r, int row, int col, size_t *n) {
    char **items = NULL;
    /* pgarray_decode leaves items NULL and *n 0 when it fails; "" (NULL) is malformed. */
    if (!pgarray_decode(a, db_get_str(r, row, col), &items, n)) {
        *n = 0;
        return NULL;
    }
    return items;
}

bool db_get_int_array(arena_t *a, const PGresult *r, int row, int col, int64_t **v, size_t *n) {
    *v = NULL;
    *n = 0;
    if (db_is_null(r, row, col)) {
        return false;
    }
    return pgarray_decode_int64(a, db_get_str(r, row, col), v, n);
}

unsigned char *db_get_bytea(arena_t *a, const PGresult *r, int row, int col, size_t *len) {
    *len = 0;
    size_t n = 0;
    unsigned char *bytes = PQunescapeBytea((const unsigned char *)db_get_str(r, row, col), &n);
    if (bytes == NULL) {
        return NULL;
    }
    unsigned char *out = arena_alloc(a, n ? n : 1);
    memcpy(out, bytes, n);
    PQfreemem(bytes);
    *len = n;
    return out;
}

ProtobufCMessage *db_get_message(arena_t *a, const ProtobufCMessageDescriptor *d, const PGresult *r,
                                 int row, int col) {
    size_t len = 0;
    unsigned char *bytes = PQunescapeBytea((const unsigned char *)db_get_str(r, row, col), &len);
    if (bytes == NULL) {
        return NULL;
    }
    /* Unpacked straight from libpq's buffer: the message copies what it keeps. */
    ProtobufCMessage *m = pb_unpack_arena(a, d, bytes, len);
    PQfreemem(bytes);
    return m;
}

void db_params_key(db_params_t *p, const char *merchant_id, const char *id) {
    db_params_init(p);
    db_param_text(p, merchant_id);
    db_param_text(p, id);
}

void db_param_texts(db_params_t *p, const char *const *values, size_t n) {
    for (size_t i = 0; i < n; i++) {
        db_param_text(p, values[i]);
    }
}

void db_param_text_array(db_params_t *p, arena_t *a, char *const *items, size_t n) {
    db_param_text(p, pgarray_encode(a, items, n));
}

void db_param_int_array(db_params_t *p, arena_t *a, const int64_t *v, size_t n) {
    db_param_text(p, pgarray_encode_int64(a, v, n));
}

void db_param_bool_array(db_params_t *p, arena_t *a, const bool *v, size_t n) {
    db_param_text(p, pgarray_encode_bool(a, v, n));
}

status_t db_result_rows(arena_t *a, const PGresult *r, db_row_fn fn, void *ctx, db_rows_t *rows) {
    db_rows_t all = {0};
    if (rows == NULL) {
        rows = &all;
    }
    int total = PQntuples(r);
    int count = total;
    if (rows->limit > 0 && count > rows->limit) {
        count = rows->limit;
    }
    rows->more = total > count;
    rows->n = 0;
    rows->items = NULL;
    char *items = NULL;
    if (rows->item_size > 0) {
        /* One zeroed item past the last, as the stores' arrays always had. */
        items = arena_alloc(a, ((size_t)count + 1) * rows->item_size);
        rows->items = items;
    }
    for (int row = 0; row < count; row++) {
        status_t st = fn(ctx, a, r, row, items ? items + (size_t)row * rows->item_size : NULL);
        if (!status_is_ok(&st)) {
            return st;
        }
        rows->n++;
    }
    return status_ok();
}

status_t db_rows(db_t *db, arena_t *a, const char *sql, const db_params_t *params, db_row_fn fn,
                 void *ctx, db_rows_t *rows) {
    PGresult *r = NULL;
    status_t st = db_exec(db, sql, params, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    st = db_result_rows(a, r, fn, ctx, rows);
    PQclear(r);
    return st;
}

status_t db_row_find(db_t *db, arena_t *a, const char *sql, const db_params_t *params, db_row_fn fn,
                     void *ctx, bool *found) {
    PGresult *r = NULL;
    status_t st = db_exec(db, sql, params, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    *found = PQntuples(r) == 1;
    if (*found && fn != NULL) {
        st = fn(ctx, a, r, 0, ctx);
    }
    PQclear(r);
    return st;
}

status_t db_row_get(db_t *db, arena_t *a, const char *sql, const db_params_t *params, db_row_fn fn,
                    void *ctx, status_code_t missing_code, reason_id_t missing_reason,
                    const char *missing_message) {
    PGresult *r = NULL;
    status_t st = db_exec_row(db, sql, params, &r, missing_code, missing_reason, missing_message);
    if (!status_is_ok(&st)) {
        return st;
    }
    st = fn(ctx, a, r, 0, ctx);
    PQclear(r);
    return st;
}
