/* test_db_cols.c -- the store kit's column tables without a database: results built in memory
 * (PQmakeEmptyPGresult / PQsetvalue) read by db_cols_read and db_row_read into a struct (every
 * column kind, NULL cells, a first column past 0) and into new messages by field name; cells
 * that are not what their column says, and tables that do not fit their destination, give an
 * INTERNAL status rather than a crash or a wrong value. */
#include "db.h"
#include "loyalty/v1/batch.pb-c.h"
#include "loyalty/v1/common.pb-c.h"
#include "loyalty/v1/member.pb-c.h"
#include "loyalty/v1/wallet.pb-c.h"
#include "pb.h"
#include "pg_result_it.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

/* The hex text of a bytea cell holding `m` packed. */
static char *packed_hex(arena_t *a, const ProtobufCMessage *m) {
    size_t len = 0;
    unsigned char *packed = pb_pack_arena(a, m, &len);
    char *hex = arena_alloc(a, 2 * len + 3);
    strcpy(hex, "\\x");
    for (size_t i = 0; i < len; i++) {
        snprintf(hex + 2 + 2 * i, 3, "%02x", packed[i]);
    }
    return hex;
}

typedef struct every_kind {
    char *name;
    char *note;
    int64_t big;
    int32_t small;
    Loyalty__V1__Gender gender;
    int64_t day;
    bool active;
    protobuf_c_boolean flag;
    ProtobufCBinaryData blob;
    char **tags;
    size_t n_tags;
    int64_t *bounds;
    size_t n_bounds;
    Loyalty__V1__PageRequest *page;
    char code[4];
} every_kind_t;

static const db_col_t EVERY_KIND_COLS[] = {
    DB_COL_SKIPPED,
    DB_COL(DB_COL_TEXT, every_kind_t, name),
    DB_COL(DB_COL_TEXT_OR_NULL, every_kind_t, note),
    DB_COL(DB_COL_INT, every_kind_t, big),
    DB_COL(DB_COL_INT, every_kind_t, small),
    DB_COL(DB_COL_INT, every_kind_t, gender),
    DB_COL_OR(every_kind_t, day, -7),
    DB_COL(DB_COL_BOOL, every_kind_t, active),
    DB_COL(DB_COL_BOOL, every_kind_t, flag),
    DB_COL(DB_COL_BYTEA, every_kind_t, blob),
    DB_COL_ARRAY(DB_COL_TEXT_ARRAY, every_kind_t, tags, n_tags),
    DB_COL_ARRAY(DB_COL_INT_ARRAY, every_kind_t, bounds, n_bounds),
    DB_COL_MSG(every_kind_t, page, &loyalty__v1__page_request__descriptor),
    DB_COL(DB_COL_TEXT_IN, every_kind_t, code),
};
static const db_cols_t EVERY_KIND = DB_COLS(EVERY_KIND_COLS);

Test(db_cols, every_kind_of_column_into_a_struct) {
    /* Goal: each kind lands in its member with the member's width (an int64, an int32, an
     * enum, a C bool and a protobuf_c_boolean side by side, so a wrong width shows as a wrong
     * neighbour), and a skipped column is left alone. */
    arena_t a;
    arena_init(&a);
    Loyalty__V1__PageRequest req = LOYALTY__V1__PAGE_REQUEST__INIT;
    req.page_size = 25;
    req.cursor = "tok";
    const char *cells[] = {"ignored",
                           "ann",
                           "a note",
                           "9000000000",
                           "-12",
                           "2",
                           "19000",
                           "t",
                           "t",
                           "\\x00ff41",
                           "{a,\"b c\"}",
                           "{1,-2,3}",
                           packed_hex(&a, &req.base),
                           "abcdef"};
    PGresult *r = result_of(1, 14, cells);
    every_kind_t e;
    memset(&e, 0x5a, sizeof e);
    status_t st = db_cols_read(&a, &EVERY_KIND, r, 0, &e);
    cr_assert(status_is_ok(&st), "%s", st.message);
    cr_assert_str_eq(e.name, "ann");
    cr_assert_str_eq(e.note, "a note");
    cr_assert_eq(e.big, 9000000000LL);
    cr_assert_eq(e.small, -12);
    cr_assert_eq(e.gender, (Loyalty__V1__Gender)2);
    cr_assert_eq(e.day, 19000);
    cr_assert(e.active);
    cr_assert_eq(e.flag, 1);
    cr_assert_eq(e.blob.len, 3);
    cr_assert(e.blob.data[0] == 0x00 && e.blob.data[1] == 0xff && e.blob.data[2] == 'A');
    cr_assert_eq(e.n_tags, 2);
    cr_assert_str_eq(e.tags[0], "a");
    cr_assert_str_eq(e.tags[1], "b c");
    cr_assert_eq(e.n_bounds, 3);
    cr_assert(e.bounds[0] == 1 && e.bounds[1] == -2 && e.bounds[2] == 3);
    cr_assert_not_null(e.page);
    cr_assert_eq(e.page->page_size, 25);
    cr_assert_str_eq(e.page->cursor, "tok");
    cr_assert_str_eq(e.code, "abc"); /* cut to fit its array */
    arena_free(&a);
    PQclear(r);
}

Test(db_cols, null_cells_read_as_each_kind_says) {
    /* Goal: NULL is "" for text, NULL for text-or-null, 0 / `none` for integers, false, and no
     * bytes or items for bytea and arrays (not an error), and no message. */
    arena_t a;
    arena_init(&a);
    const char *cells[14] = {0};
    PGresult *r = result_of(1, 14, cells);
    every_kind_t e;
    memset(&e, 0x5a, sizeof e);
    status_t st = db_cols_read(&a, &EVERY_KIND, r, 0, &e);
    cr_assert(status_is_ok(&st), "%s", st.message);
    cr_assert_str_eq(e.name, "");
    cr_assert_null(e.note);
    cr_assert_eq(e.big, 0);
    cr_assert_eq(e.small, 0);
    cr_assert_eq(e.day, -7);
    cr_assert_not(e.active);
    cr_assert_eq(e.flag, 0);
    cr_assert_eq(e.blob.len, 0);
    cr_assert_null(e.blob.data);
    cr_assert_eq(e.n_tags, 0);
    cr_assert_null(e.tags);
    cr_assert_eq(e.n_bounds, 0);
    cr_assert_null(e.bounds);
    cr_assert_null(e.page);
    cr_assert_str_eq(e.code, "");
    arena_free(&a);
    PQclear(r);
}

Test(db_cols, malformed_cells_are_an_internal_status) {
    /* Goal: a text[] or bigint[] cell that is not an array literal (or holds a NULL element),
     * and bytes that are not the column's message, fail the read with INTERNAL
     * DATABASE_ERROR naming the column, never a crash or an empty value taken for data. */
    const char *bad[][3] = {
        {"{a,b", "{1}", NULL},         /* unterminated text[] */
        {"{a,NULL}", "{1}", NULL},     /* a NULL element */
        {"{a}", "{1,x}", NULL},        /* not a number */
        {"{a}", "{1}", "\\xffffffff"}, /* not a PageRequest */
    };
    static const db_col_t cols_table[] = {
        DB_COL_ARRAY(DB_COL_TEXT_ARRAY, every_kind_t, tags, n_tags),
        DB_COL_ARRAY(DB_COL_INT_ARRAY, every_kind_t, bounds, n_bounds),
        DB_COL_MSG(every_kind_t, page, &loyalty__v1__page_request__descriptor),
    };
    const db_cols_t cols = DB_COLS(cols_table);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        arena_t a;
        arena_init(&a);
        PGresult *r = result_of(1, 3, bad[i]);
        every_kind_t e = {0};
        status_t st = db_cols_read(&a, &cols, r, 0, &e);
        cr_assert_eq(st.code, STATUS_INTERNAL, "case %zu", i);
        cr_assert_str_eq(st.reason, "DATABASE_ERROR", "case %zu", i);
        cr_assert_not_null(strstr(st.message, "column"), "case %zu: %s", i, st.message);
        arena_free(&a);
        PQclear(r);
    }
}

Test(db_cols, tables_that_do_not_fit_are_an_internal_status) {
    /* Goal: a result with fewer columns than the table, a member whose width is not the
     * kind's, and a field name the message lacks (or of another kind) are refused. */
    arena_t a;
    arena_init(&a);
    const char *cells[] = {"1", "2"};
    PGresult *r = result_of(1, 2, cells);
    every_kind_t e = {0};

    static const db_col_t three[] = {DB_COL(DB_COL_INT, every_kind_t, big),
                                     DB_COL(DB_COL_INT, every_kind_t, big),
                                     DB_COL(DB_COL_INT, every_kind_t, big)};
    const db_cols_t too_many = DB_COLS(three);
    status_t st = db_cols_read(&a, &too_many, r, 0, &e);
    cr_assert_eq(st.code, STATUS_INTERNAL);

    static const db_col_t text_into_int[] = {DB_COL(DB_COL_TEXT, every_kind_t, small)};
    const db_cols_t wrong_width = DB_COLS(text_into_int);
    st = db_cols_read(&a, &wrong_width, r, 0, &e);
    cr_assert_eq(st.code, STATUS_INTERNAL);

    static const db_col_t no_such[] = {DB_FIELD(DB_COL_INT, "no_such_field")};
    const db_cols_t unknown = DB_COLS_MESSAGE(no_such, &loyalty__v1__page_request__descriptor);
    Loyalty__V1__PageRequest *m = NULL;
    st = db_cols_read(&a, &unknown, r, 0, &m);
    cr_assert_eq(st.code, STATUS_INTERNAL);

    static const db_col_t int_into_string[] = {DB_FIELD(DB_COL_INT, "cursor")};
    const db_cols_t wrong_kind =
        DB_COLS_MESSAGE(int_into_string, &loyalty__v1__page_request__descriptor);
    st = db_cols_read(&a, &wrong_kind, r, 0, &m);
    cr_assert_eq(st.code, STATUS_INTERNAL);
    arena_free(&a);
    PQclear(r);
}

/* A call result by field name: int32, string and bytes fields of a message. */
static const db_col_t CALL_RESULT_COLS[] = {
    DB_FIELD(DB_COL_INT, "code"),
    DB_FIELD(DB_COL_TEXT, "reason"),
    DB_FIELD(DB_COL_TEXT, "message"),
    DB_FIELD(DB_COL_BYTEA, "response"),
};

Test(db_cols, new_messages_by_field_name_through_db_rows) {
    /* Goal: as a db_row_fn, the reader fills an array of new messages, each field found by
     * name with its type's width, the column table starting past the result's first column. */
    arena_t a;
    arena_init(&a);
    const char *cells[] = {"x", "5", "NOT_FOUND", "no such", "\\x0a01", "y", "0", NULL, "", NULL};
    PGresult *r = result_of(2, 5, cells);
    db_cols_t cols = DB_COLS_MESSAGE(CALL_RESULT_COLS, &loyalty__v1__batch_call_result__descriptor);
    cols.first = 1;
    db_rows_t rows = {.item_size = sizeof(Loyalty__V1__BatchCallResult *)};
    status_t st = db_result_rows(&a, r, db_row_read, &cols, &rows);
    cr_assert(status_is_ok(&st), "%s", st.message);
    cr_assert_eq(rows.n, 2);
    Loyalty__V1__BatchCallResult **items = rows.items;
    cr_assert_eq(items[0]->code, 5);
    cr_assert_str_eq(items[0]->reason, "NOT_FOUND");
    cr_assert_str_eq(items[0]->message, "no such");
    cr_assert_eq(items[0]->response.len, 2);
    cr_assert_eq(items[0]->response.data[1], 0x01);
    cr_assert_eq(items[1]->code, 0);
    cr_assert_str_eq(items[1]->reason, "");
    cr_assert_eq(items[1]->response.len, 0);
    cr_assert_null(items[2]);
    /* A packed message by field name takes the field's own type. */
    arena_free(&a);
    PQclear(r);
}

/* A profile's repeated strings and a nested message by field name. */
static const db_col_t PROFILE_COLS[] = {
    DB_FIELD(DB_COL_TEXT, "name"),
    DB_FIELD(DB_COL_TEXT_ARRAY, "tags"),
    DB_FIELD(DB_COL_MESSAGE, "address"),
};

Test(db_cols, repeated_and_message_fields_by_name) {
    /* Goal: a text[] fills a repeated string field and its count; a packed message column fills
     * a message field with the field's own type. */
    arena_t a;
    arena_init(&a);
    Loyalty__V1__Address addr = LOYALTY__V1__ADDRESS__INIT;
    addr.city = "Lyon";
    const char *cells[] = {"Ann", "{vip,new}", packed_hex(&a, &addr.base)};
    PGresult *r = result_of(1, 3, cells);
    const db_cols_t cols = DB_COLS_MESSAGE(PROFILE_COLS, &loyalty__v1__member_profile__descriptor);
    Loyalty__V1__MemberProfile *p = NULL;
    status_t st = db_cols_read(&a, &cols, r, 0, &p);
    cr_assert(status_is_ok(&st), "%s", st.message);
    cr_assert_not_null(p);
    cr_assert_str_eq(p->name, "Ann");
    cr_assert_eq(p->n_tags, 2);
    cr_assert_str_eq(p->tags[1], "new");
    cr_assert_not_null(p->address);
    cr_assert_str_eq(p->address->city, "Lyon");
    arena_free(&a);
    PQclear(r);
}

Test(db_params, key_and_texts) {
    /* Goal: db_params_key starts a fresh parameter list with the merchant and the id, and
     * DB_PARAM_TEXTS appends each of its arguments, NULL as SQL NULL, in order. */
    db_params_t p;
    p.n = 5;
    db_params_key(&p, "m1", "id1");
    DB_PARAM_TEXTS(&p, "x", NULL, "z");
    cr_assert_eq(p.n, 5);
    cr_assert_str_eq(p.values[0], "m1");
    cr_assert_str_eq(p.values[1], "id1");
    cr_assert_str_eq(p.values[2], "x");
    cr_assert_null(p.values[3]);
    cr_assert_str_eq(p.values[4], "z");
}

Test(db_cols, a_oneof_member_is_set_only_when_not_null) {
    /* Goal: a oneof member (the `_expiry_months` of a plan) becomes the one set when its cell
     * has a value, 0 included, and stays unset for NULL, so "absent" survives the read. */
    static const db_col_t plan_cols[] = {DB_FIELD(DB_COL_TEXT, "id"),
                                         DB_FIELD(DB_COL_INT, "expiry_months")};
    const db_cols_t cols = DB_COLS_MESSAGE(plan_cols, &loyalty__v1__wallet_top_up_plan__descriptor);
    arena_t a;
    arena_init(&a);
    const char *cells[] = {"p1", "0", "p2", NULL};
    PGresult *r = result_of(2, 2, cells);
    Loyalty__V1__WalletTopUpPlan *p = NULL;
    status_t st = db_cols_read(&a, &cols, r, 0, &p);
    cr_assert(status_is_ok(&st), "%s", st.message);
    cr_assert_eq(p->_expiry_months_case,
                 LOYALTY__V1__WALLET_TOP_UP_PLAN___EXPIRY_MONTHS_EXPIRY_MONTHS);
    cr_assert_eq(p->expiry_months, 0);
    st = db_cols_read(&a, &cols, r, 1, &p);
    cr_assert(status_is_ok(&st), "%s", st.message);
    cr_assert_str_eq(p->id, "p2");
    cr_assert_eq(p->_expiry_months_case, LOYALTY__V1__WALLET_TOP_UP_PLAN___EXPIRY_MONTHS__NOT_SET);
    arena_free(&a);
    PQclear(r);
}

Test(db_cols, a_packed_message_with_overriding_columns) {
    /* Goal: with `packed`, the item is the message stored in the first column, and the table's
     * columns after it override its fields; a NULL or undecodable first cell is an INTERNAL
     * status, not an empty message taken for the stored one. */
    static const db_col_t after[] = {DB_FIELD(DB_COL_TEXT, "cursor")};
    const db_cols_t cols = DB_COLS_PACKED(after, &loyalty__v1__page_request__descriptor);
    arena_t a;
    arena_init(&a);
    Loyalty__V1__PageRequest req = LOYALTY__V1__PAGE_REQUEST__INIT;
    req.page_size = 7;
    req.cursor = "stored";
    const char *cells[] = {packed_hex(&a, &req.base), "fresh", NULL, "x", "\\xffff", "y"};
    PGresult *r = result_of(3, 2, cells);
    Loyalty__V1__PageRequest *got = NULL;
    status_t st = db_cols_read(&a, &cols, r, 0, &got);
    cr_assert(status_is_ok(&st), "%s", st.message);
    cr_assert_eq(got->page_size, 7);
    cr_assert_str_eq(got->cursor, "fresh");
    st = db_cols_read(&a, &cols, r, 1, &got);
    cr_assert_eq(st.code, STATUS_INTERNAL);
    st = db_cols_read(&a, &cols, r, 2, &got);
    cr_assert_eq(st.code, STATUS_INTERNAL);
    arena_free(&a);
    PQclear(r);
}
