/* test_db_rows.c -- the store kit without a database: results built in memory (libpq's
 * PQmakeEmptyPGresult / PQsetvalue) read through db_result_rows, the nullable and array cell
 * getters, and the bigint[] decoder. db_rows and db_row_find, which run SQL, are tested against
 * PostgreSQL in tests/integration/test_runtime_db.c. */
#include "db.h"
#include "loyalty/v1/common.pb-c.h"
#include "pb.h"
#include "pg_result_it.h"
#include "pgarray.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

typedef struct pair {
    char *name;
    int64_t n;
} pair_t;

static status_t pair_row(void *ctx, arena_t *a, const PGresult *r, int row, void *item) {
    int *calls = ctx;
    (*calls)++;
    pair_t *p = item;
    p->name = db_dup_str(a, r, row, 0);
    p->n = db_get_int_or(r, row, 1, -1);
    return status_ok();
}

Test(db_rows, reads_every_row_into_an_array_with_a_zeroed_item_after) {
    /* Goal: each row goes through the function once, in order, into its own slot; the slot
     * after the last is zeroed; a NULL cell reads as the nullable getter's `none`. */
    const char *cells[] = {"a", "1", "b", NULL, "c", "3"};
    PGresult *r = result_of(3, 2, cells);
    arena_t a;
    arena_init(&a);
    int calls = 0;
    db_rows_t rows = {.item_size = sizeof(pair_t)};
    status_t st = db_result_rows(&a, r, pair_row, &calls, &rows);
    cr_assert(status_is_ok(&st));
    cr_assert_eq(calls, 3);
    cr_assert_eq(rows.n, 3);
    cr_assert_not(rows.more);
    pair_t *items = rows.items;
    cr_assert_str_eq(items[0].name, "a");
    cr_assert_eq(items[0].n, 1);
    cr_assert_str_eq(items[1].name, "b");
    cr_assert_eq(items[1].n, -1);
    cr_assert_str_eq(items[2].name, "c");
    cr_assert_eq(items[2].n, 3);
    cr_assert_null(items[3].name);
    cr_assert_eq(items[3].n, 0);
    arena_free(&a);
    PQclear(r);
}

Test(db_rows, a_limit_reads_that_many_and_says_there_were_more) {
    /* Goal: with a limit below the rows, only `limit` are read and `more` is set; at or above
     * the row count, all are read and `more` is not; an empty result still gives an array. */
    const char *cells[] = {"a", "1", "b", "2", "c", "3"};
    PGresult *r = result_of(3, 2, cells);
    arena_t a;
    arena_init(&a);
    int calls = 0;
    db_rows_t rows = {.item_size = sizeof(pair_t), .limit = 2};
    status_t st = db_result_rows(&a, r, pair_row, &calls, &rows);
    cr_assert(status_is_ok(&st));
    cr_assert_eq(calls, 2);
    cr_assert_eq(rows.n, 2);
    cr_assert(rows.more);
    rows = (db_rows_t){.item_size = sizeof(pair_t), .limit = 3};
    st = db_result_rows(&a, r, pair_row, &calls, &rows);
    cr_assert(status_is_ok(&st) && rows.n == 3 && !rows.more);
    PQclear(r);
    r = result_of(0, 2, NULL);
    rows = (db_rows_t){.item_size = sizeof(pair_t)};
    st = db_result_rows(&a, r, pair_row, &calls, &rows);
    cr_assert(status_is_ok(&st) && rows.n == 0 && !rows.more);
    cr_assert_not_null(rows.items);
    arena_free(&a);
    PQclear(r);
}

static status_t stop_at_second(void *ctx, arena_t *a, const PGresult *r, int row, void *item) {
    cr_assert_null(item, "no array was asked for");
    int *calls = ctx;
    (*calls)++;
    if (row == 1) {
        return status_make_relayed(STATUS_INTERNAL, "BAD_ROW", "row %d", row);
    }
    return status_ok();
}

Test(db_rows, the_first_failing_row_stops_the_reading_with_its_status) {
    /* Goal: a row function's error is returned as it is and no later row is read. */
    const char *cells[] = {"a", "b", "c"};
    PGresult *r = result_of(3, 1, cells);
    arena_t a;
    arena_init(&a);
    int calls = 0;
    status_t st = db_result_rows(&a, r, stop_at_second, &calls, NULL);
    cr_assert_eq(st.code, STATUS_INTERNAL);
    cr_assert_str_eq(st.reason, "BAD_ROW");
    cr_assert_eq(calls, 2);
    arena_free(&a);
    PQclear(r);
}

Test(db_cells, nullable_and_array_cells) {
    /* Goal: NULL is told apart where the getter promises it (NULL pointer, `none`), arrays
     * decode, and a NULL or malformed array cell reads as no items rather than garbage. */
    const char *cells[] = {NULL,       "x",  "{a,\"b c\"}", "{1,-2,9223372036854775807}",
                           "{1,NULL}", "{a", "{1,x}",       "{99999999999999999999}"};
    PGresult *r = result_of(1, 8, cells);
    arena_t a;
    arena_init(&a);
    cr_assert_null(db_dup_str_or_null(&a, r, 0, 0));
    cr_assert_str_eq(db_dup_str_or_null(&a, r, 0, 1), "x");
    cr_assert_eq(db_get_int_or(r, 0, 0, 42), 42);
    size_t n = 9;
    char **s = db_get_text_array(&a, r, 0, 2, &n);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(s[0], "a");
    cr_assert_str_eq(s[1], "b c");
    cr_assert_null(db_get_text_array(&a, r, 0, 0, &n));
    cr_assert_eq(n, 0);
    n = 9;
    cr_assert_null(db_get_text_array(&a, r, 0, 4, &n), "a NULL element");
    cr_assert_eq(n, 0);
    n = 9;
    cr_assert_null(db_get_text_array(&a, r, 0, 5, &n), "malformed");
    cr_assert_eq(n, 0);
    int64_t *v = NULL;
    cr_assert(db_get_int_array(&a, r, 0, 3, &v, &n));
    cr_assert_eq(n, 3);
    cr_assert_eq(v[0], 1);
    cr_assert_eq(v[1], -2);
    cr_assert_eq(v[2], INT64_MAX);
    for (int c = 0; c < 8; c++) {
        if (c == 3) {
            continue;
        }
        cr_assert_not(db_get_int_array(&a, r, 0, c, &v, &n), "column %d", c);
        cr_assert(v == NULL && n == 0, "column %d", c);
    }
    arena_free(&a);
    PQclear(r);
}

Test(db_cells, array_parameters_are_the_pgarray_literals) {
    /* Goal: the array parameters are text parameters holding pgarray's literals. */
    arena_t a;
    arena_init(&a);
    db_params_t p;
    db_params_init(&p);
    char *s[] = {"a", "b\"c"};
    int64_t v[] = {3, -4};
    bool b[] = {true, false};
    db_param_text_array(&p, &a, s, 2);
    db_param_int_array(&p, &a, v, 2);
    db_param_bool_array(&p, &a, b, 2);
    db_param_text_array(&p, &a, NULL, 0);
    cr_assert_eq(p.n, 4);
    cr_assert_str_eq(p.values[0], "{\"a\",\"b\\\"c\"}");
    cr_assert_str_eq(p.values[1], "{3,-4}");
    cr_assert_str_eq(p.values[2], "{t,f}");
    cr_assert_str_eq(p.values[3], "{}");
    arena_free(&a);
}

Test(db_cells, bytea_and_packed_message_cells) {
    /* Goal: a bytea cell's hex text decodes to its bytes in the arena (SQL NULL to none), and
     * a packed message unpacks from one, so that stores keep no PQunescapeBytea of their own. */
    arena_t a;
    arena_init(&a);
    Loyalty__V1__PageRequest req = LOYALTY__V1__PAGE_REQUEST__INIT;
    req.page_size = 25;
    req.cursor = "tok";
    size_t len = 0;
    unsigned char *packed = pb_pack_arena(&a, &req.base, &len);
    char *hex = arena_alloc(&a, 2 * len + 3);
    strcpy(hex, "\\x");
    for (size_t i = 0; i < len; i++) {
        snprintf(hex + 2 + 2 * i, 3, "%02x", packed[i]);
    }
    const char *cells[] = {"\\x00ff41", NULL, hex};
    PGresult *r = result_of(1, 3, cells);
    size_t n = 9;
    unsigned char *b = db_get_bytea(&a, r, 0, 0, &n);
    cr_assert_not_null(b);
    cr_assert_eq(n, 3);
    cr_assert(b[0] == 0x00 && b[1] == 0xff && b[2] == 'A');
    b = db_get_bytea(&a, r, 0, 1, &n);
    cr_assert_not_null(b);
    cr_assert_eq(n, 0);
    Loyalty__V1__PageRequest *got = (Loyalty__V1__PageRequest *)db_get_message(
        &a, &loyalty__v1__page_request__descriptor, r, 0, 2);
    cr_assert_not_null(got);
    cr_assert_eq(got->page_size, 25);
    cr_assert_str_eq(got->cursor, "tok");
    arena_free(&a);
    PQclear(r);
}
