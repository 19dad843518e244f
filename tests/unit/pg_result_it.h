/* pg_result_it.h -- for unit tests of the store kit: a PGresult made in memory, so that cell
 * readers are tested without a server. */
#ifndef LOYALTY_PG_RESULT_IT_H
#define LOYALTY_PG_RESULT_IT_H

#include <criterion/criterion.h>
#include <libpq-fe.h>

#include <string.h>

#define PG_RESULT_IT_COLS_MAX 16

/* A result of `cols` text columns and `rows` rows; cells[row * cols + col], NULL for SQL NULL.
 * The caller PQclears it. */
static inline PGresult *result_of(int rows, int cols, const char *const *cells) {
    PGresult *r = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    cr_assert_not_null(r);
    PGresAttDesc attrs[PG_RESULT_IT_COLS_MAX];
    cr_assert(cols <= PG_RESULT_IT_COLS_MAX);
    memset(attrs, 0, sizeof attrs);
    for (int c = 0; c < cols; c++) {
        attrs[c].name = (char *)"c";
        attrs[c].typid = 25; /* text */
        attrs[c].typlen = -1;
        attrs[c].atttypmod = -1;
    }
    cr_assert(PQsetResultAttrs(r, cols, attrs));
    for (int i = 0; i < rows; i++) {
        for (int c = 0; c < cols; c++) {
            const char *v = cells[i * cols + c];
            cr_assert(PQsetvalue(r, i, c, (char *)v, v ? (int)strlen(v) : -1));
        }
    }
    return r;
}

#endif
