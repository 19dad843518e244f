/* member_store_list.c -- member lists, imports and import batches. */
#include "member_store_list.h"

#include "member_store.h"
#include "sql_time.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_SQL_MAX 4096

typedef struct sql_buf {
    char text[LIST_SQL_MAX];
    size_t len;
} sql_buf_t;

static void sql_add(sql_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sql_add(sql_buf_t *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->text + b->len, sizeof b->text - b->len, fmt, ap);
    va_end(ap);
    /* The fragments are fixed and few: overflowing the buffer is a bug. */
    if (n < 0 || (size_t)n >= sizeof b->text - b->len) {
        abort();
    }
    b->len += (size_t)n;
}

/* Appends " AND <head>$n<tail>" for the parameter just added. */
static void filter_text(sql_buf_t *b, db_params_t *p, const char *head, const char *tail,
                        const char *value) {
    db_param_text(p, value);
    sql_add(b, " AND %s$%d%s", head, p->n, tail);
}

static void filter_int(sql_buf_t *b, db_params_t *p, const char *head, const char *tail,
                       int64_t value) {
    db_param_int(p, value);
    sql_add(b, " AND %s$%d%s", head, p->n, tail);
}

/* Every filter is an equality on the leading columns of one of the members_by_* indexes, or a
 * refinement evaluated on the rows that index yields; the order is always (created_at, id), so
 * a page is a range scan that stops after `limit` matching rows. */
const char *member_list_sql(arena_t *a, const char *merchant_id, const member_list_query_t *q,
                            db_params_t *p) {
    sql_buf_t b = {.len = 0};
    db_params_init(p);
    db_param_text(p, merchant_id);
    sql_add(&b, "SELECT " MEMBER_PROFILE_COLUMNS ", " MEMBER_ROW_COLUMNS
                ", " SQL_EPOCH_US("created_at") " FROM members WHERE merchant_id = $1");
    if (q->tier_id != NULL && q->tier_id[0] == '\0') {
        sql_add(&b, " AND effective_tier_id IS NULL");
    } else if (q->tier_id != NULL) {
        filter_text(&b, p, "effective_tier_id = ", "", q->tier_id);
    }
    if (q->card_kind) {
        filter_int(&b, p, "effective_kind = ", "", q->card_kind);
    }
    if (q->segment) {
        filter_int(&b, p, "segment = ", "", q->segment);
    }
    if (q->tag) {
        /* tag_keys holds '<merchant>|<tag>' (migration 003, index members_by_tag). */
        filter_text(&b, p, "tag_keys @> ARRAY[$1 || '|' || ", "]", q->tag);
    }
    if (q->birth_month) {
        filter_int(&b, p, "birth_month = ", "", q->birth_month);
    }
    if (q->birth_day) {
        filter_int(&b, p, "birth_day = ", "", q->birth_day);
    }
    if (q->registered_from) {
        filter_int(&b, p, "created_at >= to_timestamp(", ")", q->registered_from);
    }
    if (q->registered_to) {
        filter_int(&b, p, "created_at < to_timestamp(", ")", q->registered_to);
    }
    if (q->last_order_from) {
        filter_int(&b, p, "last_order_at >= to_timestamp(", ")", q->last_order_from);
    }
    if (q->last_order_to) {
        filter_int(&b, p, "last_order_at < to_timestamp(", ")", q->last_order_to);
    }
    if (q->after_id != NULL) {
        db_param_int(p, q->after_created_us);
        db_param_text(p, q->after_id);
        sql_add(&b, " AND (created_at, id) %s (" SQL_TS_OF_US("$%d") ", $%d)",
                q->newest_first ? "<" : ">", p->n - 1, p->n);
    }
    db_param_int(p, q->limit);
    sql_add(&b,
            q->newest_first ? " ORDER BY created_at DESC, id DESC LIMIT $%d"
                            : " ORDER BY created_at, id LIMIT $%d",
            p->n);
    return arena_strdup(a, b.text);
}

status_t member_list(db_t *db, arena_t *a, const char *merchant_id, const member_list_query_t *q,
                     member_list_page_t *out) {
    db_params_t p;
    const char *sql = member_list_sql(a, merchant_id, q, &p);
    PGresult *r = NULL;
    /* Planned for the values at hand: whether the tag index or a scan in registration order is
     * cheaper depends on how common the tag is, which a generic plan cannot know. */
    status_t st = db_exec_custom_plan(db, sql, &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    int n = PQntuples(r);
    out->n = n;
    out->members = arena_alloc(a, (size_t)(n ? n : 1) * sizeof *out->members);
    out->rows = arena_alloc(a, (size_t)(n ? n : 1) * sizeof *out->rows);
    out->created_us = arena_alloc(a, (size_t)(n ? n : 1) * sizeof *out->created_us);
    for (int i = 0; i < n && status_is_ok(&st); i++) {
        st = member_store_from_result(a, r, i, &out->members[i]);
        if (status_is_ok(&st)) {
            st = member_row_from_result(a, r, i, MEMBER_PROFILE_COLUMN_COUNT, &out->rows[i]);
        }
        out->created_us[i] =
            db_get_int(r, i, MEMBER_PROFILE_COLUMN_COUNT + MEMBER_ROW_COLUMN_COUNT);
    }
    PQclear(r);
    return st;
}

/* Which unique value of the member is taken: the external id (with its holder), or else the
 * phone or the e-mail. */
static status_t import_conflict(db_t *db, arena_t *a, const char *merchant_id,
                                const char *external_id, const Loyalty__V1__MemberProfile *profile,
                                char **existing_id, const char **reason) {
    db_params_t p;
    db_params_key(&p, merchant_id, external_id);
    db_param_text(&p, profile->phone[0] ? profile->phone : NULL);
    PGresult *r = NULL;
    status_t st = db_exec(db,
                          "SELECT coalesce((SELECT id FROM members WHERE merchant_id = $1 "
                          "   AND external_id = $2), ''), "
                          " EXISTS (SELECT 1 FROM members WHERE merchant_id = $1 AND phone = $3)",
                          &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    *existing_id = arena_strdup(a, db_get_str(r, 0, 0));
    *reason = (*existing_id)[0]      ? "EXTERNAL_ID_TAKEN"
              : db_get_bool(r, 0, 1) ? "PHONE_TAKEN"
                                     : "EMAIL_TAKEN";
    PQclear(r);
    return status_ok();
}

status_t member_import_insert(db_t *db, arena_t *a, const char *merchant_id, const char *id,
                              const char *external_id, const Loyalty__V1__MemberProfile *pr,
                              int64_t registered_at, bool *inserted, char **existing_id,
                              const char **reason) {
    status_t st =
        member_store_insert_at(db, a, merchant_id, id, external_id, pr, registered_at, inserted);
    if (!status_is_ok(&st) || *inserted) {
        *existing_id = "";
        *reason = "";
        return st;
    }
    return import_conflict(db, a, merchant_id, external_id, pr, existing_id, reason);
}

status_t member_import_claim(db_t *db, arena_t *a, const char *merchant_id, const char *batch_id,
                             const unsigned char *request, size_t len, unsigned char **replay,
                             size_t *replay_len) {
    *replay = NULL;
    *replay_len = 0;
    db_params_t p;
    db_params_key(&p, merchant_id, batch_id);
    db_param_bytes(&p, request, len);
    bool claimed = false;
    status_t st = db_row_find(db, NULL,
                              "INSERT INTO import_batches (merchant_id, batch_id, request_hash) "
                              "VALUES ($1, $2, sha256($3)) ON CONFLICT DO NOTHING RETURNING 1",
                              &p, NULL, NULL, &claimed);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (claimed) {
        return status_ok();
    }
    PGresult *r = NULL;
    st = db_exec(db,
                 "SELECT request_hash = sha256($3), response "
                 "FROM import_batches WHERE merchant_id = $1 AND batch_id = $2",
                 &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    bool same = PQntuples(r) == 1 && db_get_bool(r, 0, 0) && !db_is_null(r, 0, 1);
    if (!same) {
        PQclear(r);
        return status_make(STATUS_ALREADY_EXISTS, REASON_BATCH_ID_REUSED,
                           "batch id already used for other items");
    }
    *replay = db_get_bytea(a, r, 0, 1, replay_len);
    PQclear(r);
    if (*replay == NULL) {
        return status_make(STATUS_INTERNAL, REASON_DATABASE_ERROR, "cannot read a stored response");
    }
    return status_ok();
}

status_t member_import_store(db_t *db, const char *merchant_id, const char *batch_id,
                             const unsigned char *response, size_t len) {
    db_params_t p;
    db_params_key(&p, merchant_id, batch_id);
    db_param_bytes(&p, response, len);
    return db_exec(db,
                   "UPDATE import_batches SET response = $3 WHERE merchant_id = $1 "
                   " AND batch_id = $2",
                   &p, NULL);
}
