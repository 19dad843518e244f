/* db_rowset.c -- row sets (db.h, db_rowset_append): rows of one statement collected during a
 * transaction as one array literal per column, and queued as one deferred write when the
 * transaction or its part ends, or when a reader of the table flushes them. Sending many rows
 * as one statement spares the backend a statement's fixed cost per row (executor start and end,
 * its command tag) on paths that write several rows of a table in one transaction. */
#include "db_rowset.h"

#include "pgarray.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* Room for `more` bytes, and the closing brace and NUL added when the set is queued. */
static void col_reserve(db_rowset_col_t *c, size_t more) {
    size_t need = c->len + more + 2;
    if (need <= c->cap) {
        return;
    }
    size_t cap = c->cap ? c->cap : 256;
    while (cap < need) {
        cap *= 2;
    }
    char *grown = realloc(c->buf, cap);
    if (grown == NULL) {
        abort(); /* as every allocation of the runtime outside arenas */
    }
    c->buf = grown;
    c->cap = cap;
}

static void col_append(db_rowset_col_t *c, bool first, const char *v) {
    size_t len = v ? strlen(v) : 0;
    col_reserve(c, PGARRAY_QUOTED_MAX(len) + 5); /* '{' or ',', and NULL's four letters */
    c->buf[c->len++] = first ? '{' : ',';
    if (v == NULL) {
        memcpy(c->buf + c->len, "NULL", 4);
        c->len += 4;
        return;
    }
    c->len += pgarray_quote(c->buf + c->len, v);
}

/* Queues the set's rows as one deferred write, and empties it. */
static status_t set_queue(db_t *db, db_rowset_t *s) {
    if (s->n_rows == 0) {
        return status_ok();
    }
    db_params_t p;
    db_params_init(&p);
    for (int k = 0; k < s->def->n_cols; k++) {
        db_rowset_col_t *c = &s->cols[k];
        c->buf[c->len++] = '}';
        c->buf[c->len] = '\0';
        db_param_text(&p, c->buf);
    }
    status_t st = db_exec_deferred(db, s->def->sql, &p, NULL); /* the values are copied */
    s->n_rows = 0;
    for (int k = 0; k < s->def->n_cols; k++) {
        s->cols[k].len = 0;
    }
    return st;
}

status_t db_rowset_append(db_t *db, const db_rowset_def_t *def, const db_params_t *row) {
    assert(db_in_tx(db)); /* written with the transaction or not at all */
    assert(def->n_cols > 0 && def->n_cols <= DB_ROWSET_COLS_MAX && row->n == def->n_cols);
    db_rowsets_t *rs = db_rowsets_of(db);
    db_rowset_t *s = NULL;
    for (int i = 0; i < rs->n && s == NULL; i++) {
        s = rs->sets[i].def == def ? &rs->sets[i] : NULL;
    }
    if (s == NULL) {
        if (rs->n == DB_ROWSETS_MAX) {
            status_t st = db_rowsets_queue_all(db, rs);
            if (!status_is_ok(&st)) {
                return st;
            }
        }
        s = &rs->sets[rs->n++];
        s->def = def;
        s->n_rows = 0;
    }
    for (int k = 0; k < def->n_cols; k++) {
        assert(row->formats[k] == 0); /* text values: they go inside a literal */
        col_append(&s->cols[k], s->n_rows == 0, row->values[k]);
    }
    s->n_rows++;
    return status_ok();
}

status_t db_rowset_flush(db_t *db, const db_rowset_def_t *def) {
    if (!db_in_tx(db)) {
        return status_ok(); /* rows are only collected inside a transaction */
    }
    db_rowsets_t *rs = db_rowsets_of(db);
    if (def == NULL) {
        return db_rowsets_queue_all(db, rs);
    }
    for (int i = 0; i < rs->n; i++) {
        if (rs->sets[i].def == def) {
            return set_queue(db, &rs->sets[i]);
        }
    }
    return status_ok();
}

status_t db_rowsets_queue_all(db_t *db, db_rowsets_t *rs) {
    status_t st = status_ok();
    for (int i = 0; i < rs->n && status_is_ok(&st); i++) {
        st = set_queue(db, &rs->sets[i]);
    }
    if (status_is_ok(&st)) {
        rs->n = 0;
    }
    return st;
}

bool db_rowsets_pending(const db_rowsets_t *rs) {
    for (int i = 0; i < rs->n; i++) {
        if (rs->sets[i].n_rows > 0) {
            return true;
        }
    }
    return false;
}

void db_rowsets_drop(db_rowsets_t *rs) {
    for (int i = 0; i < rs->n; i++) {
        rs->sets[i].n_rows = 0;
        for (int k = 0; k < DB_ROWSET_COLS_MAX; k++) {
            rs->sets[i].cols[k].len = 0;
        }
    }
    rs->n = 0;
}

void db_rowsets_free(db_rowsets_t *rs) {
    for (int i = 0; i < DB_ROWSETS_MAX; i++) {
        for (int k = 0; k < DB_ROWSET_COLS_MAX; k++) {
            free(rs->sets[i].cols[k].buf);
            rs->sets[i].cols[k] = (db_rowset_col_t){0};
        }
    }
    rs->n = 0;
}
