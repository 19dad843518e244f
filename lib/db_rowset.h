/* db_rowset.h -- the runtime's inside view of row sets (db.h, db_rowset_append): the rows a
 * transaction collected per statement, as one growing array literal per column, and the calls
 * db.c makes at a transaction's or a part's end. Not for services. */
#ifndef LOYALTY_DB_ROWSET_H
#define LOYALTY_DB_ROWSET_H

#include "db.h"

/* One column's array literal so far, without its closing brace. */
typedef struct db_rowset_col {
    char *buf;
    size_t len, cap;
} db_rowset_col_t;

/* The rows of one definition collected in the transaction. */
typedef struct db_rowset {
    const db_rowset_def_t *def;
    int n_rows;
    db_rowset_col_t cols[DB_ROWSET_COLS_MAX];
} db_rowset_t;

/* Every set of the transaction, in the order of their first row; buffers kept for the next. */
typedef struct db_rowsets {
    db_rowset_t sets[DB_ROWSETS_MAX];
    int n;
} db_rowsets_t;

/* The rows of every set, queued as deferred writes (db_exec_deferred); the sets are then empty. */
status_t db_rowsets_queue_all(db_t *db, db_rowsets_t *rs);

/* Forgets every row collected (the transaction or part rolled back). */
void db_rowsets_drop(db_rowsets_t *rs);

/* Frees the buffers (the handle is destroyed). */
void db_rowsets_free(db_rowsets_t *rs);

/* Whether some set holds rows. */
bool db_rowsets_pending(const db_rowsets_t *rs);

/* The handle's sets (db.c owns them). */
db_rowsets_t *db_rowsets_of(db_t *db);

#endif
