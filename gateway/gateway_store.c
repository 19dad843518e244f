/* gateway_store.c -- the saga log, orders and settings in schema `gateway`. A flush of the log
 * is one statement (saga row and steps together, conditioned on the lease), so every write of
 * the log is one round trip and one commit. */
#include "gateway_store.h"

#include "gateway_calls.h"

#include "cursor.h"
#include "pb.h"
#include "pgarray.h"

#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- steps as parallel text arrays ---- */

typedef struct step_arrays {
    char *name, *seq, *dir, *state, *attempts, *resp, *ecode, *ereason, *emsg, *started, *finished;
} step_arrays_t;

/* Whether the response of step `s` is written: always while the saga may still run a flow (a
 * resumed flow answers from it); once the saga is COMPLETED or CANCELLED only for the steps its
 * kind's views still read (gw_flows_t.final_responses). */
static bool response_kept(const gw_saga_t *x, const gw_step_t *s) {
    const gw_flows_t *f = gw_flows_of(x->kind);
    if (f == NULL || f->final_responses == NULL ||
        (x->state != GW_COMPLETED && x->state != GW_CANCELLED)) {
        return true;
    }
    for (const gw_step_def_t *const *d = f->final_responses; *d != NULL; d++) {
        if (strcmp((*d)->name, s->name) == 0) {
            return true;
        }
    }
    return false;
}

/* Every step of x as text[] literals (a write of the saga writes its whole step array: the
 * executor holding the lease has them all); a step's times are set here when it has none yet. */
static void step_arrays(gw_saga_t *x, step_arrays_t *o) {
    arena_t *a = x->a;
    char *cols[11][GW_STEPS_MAX];
    int n = 0;
    for (int i = 0; i < x->n_steps; i++) {
        gw_step_t *s = &x->steps[i];
        if (s->started_at == 0) {
            s->started_at = x->ctx->now_s;
        }
        if (s->state != GW_STARTED && s->finished_at == 0) {
            s->finished_at = x->ctx->now_s;
        }
        if (s->state == GW_STARTED) {
            s->finished_at = 0;
        }
        cols[0][n] = s->name;
        cols[1][n] = arena_printf(a, "%d", (int)s->seq);
        cols[2][n] = arena_printf(a, "%d", s->direction);
        cols[3][n] = arena_printf(a, "%d", s->state);
        cols[4][n] = arena_printf(a, "%d", (int)s->attempts);
        cols[5][n] = s->state == GW_DONE && response_kept(x, s)
                         ? pgarray_hex(a, s->response, s->response_len)
                         : "";
        cols[6][n] = arena_printf(a, "%d", (int)s->error.code);
        cols[7][n] = s->error.reason;
        cols[8][n] = s->error.message;
        cols[9][n] = arena_printf(a, "%lld", (long long)s->started_at);
        cols[10][n] = arena_printf(a, "%lld", (long long)s->finished_at);
        n++;
    }
    char **out[11] = {&o->name,  &o->seq,     &o->dir,  &o->state,   &o->attempts, &o->resp,
                      &o->ecode, &o->ereason, &o->emsg, &o->started, &o->finished};
    for (int c = 0; c < 11; c++) {
        *out[c] = pgarray_encode(a, cols[c], (size_t)n);
    }
}

static void step_params(db_params_t *p, const step_arrays_t *s) {
    db_param_text(p, s->name);
    db_param_text(p, s->seq);
    db_param_text(p, s->dir);
    db_param_text(p, s->state);
    db_param_text(p, s->attempts);
    db_param_text(p, s->resp);
    db_param_text(p, s->ecode);
    db_param_text(p, s->ereason);
    db_param_text(p, s->emsg);
    db_param_text(p, s->started);
    db_param_text(p, s->finished);
}

/* The saga's steps column from the eleven arrays of step_params (%d: the first one's number). */
#define STEPS_ARRAY_FMT                                                                            \
    "ARRAY(SELECT ROW(u.name, u.seq::int, u.dir::smallint, u.state::smallint, u.attempts::int, "   \
    " CASE WHEN u.resp = '' THEN NULL ELSE decode(u.resp, 'hex') END, u.ecode::smallint, "         \
    " NULLIF(u.ereason, ''), NULLIF(u.emsg, ''), u.started::bigint, "                              \
    " NULLIF(u.fin::bigint, 0))::saga_step "                                                       \
    "FROM unnest($%d::text[], $%d::text[], $%d::text[], $%d::text[], $%d::text[], $%d::text[], "   \
    " $%d::text[], $%d::text[], $%d::text[], $%d::text[], $%d::text[]) WITH ORDINALITY "           \
    " AS u(name, seq, dir, state, attempts, resp, ecode, ereason, emsg, started, fin, ord) "       \
    "ORDER BY u.ord)"

/* Inserts of one idempotency key queue on a transaction lock first (class 0x6777, "gw"), so the
 * second normally sees the first's row and does nothing. ON CONFLICT arbitrates only the key:
 * two same-key Begins of one order otherwise race on the order's index (the second failed
 * ORDER_ALREADY_CHECKED_OUT, or deadlocked with the first's next update) instead of answering
 * from the first; what still slips through is told apart by insert_refused. */
#define GW_KEY_LOCK_CLASS "26487"

/* The statements are built once (the parameter numbers of the steps CTE depend on the saga
 * part), so that db_exec prepares each exactly once. */
/* How the statement's transaction commits: `param` NULL keeps synchronous_commit as it is
 * (waiting for the disk in production), 'off' does not wait. */
#define COMMIT_MODE_SQL(param)                                                                     \
    "set_config('synchronous_commit', coalesce(" param "::text, "                                  \
    "current_setting('synchronous_commit')), true)"

/* A saga's update under its lease, with its steps (%s: STEPS_ARRAY_FMT) and what it answers
 * (%s). With $26 (x->claim_pending) it takes the lease, when it is free and the row is still the
 * version the executor read. */
#define UPDATE_SQL_FMT                                                                             \
    "WITH s AS (UPDATE sagas SET state = $3, context = $4, reason = $5, error_code = $6, "         \
    " error_reason = $7, error_message = $8, attempts = $9, updated_at = now(), "                  \
    " lease_owner = CASE WHEN $10::boolean THEN $13 END, "                                         \
    " lease_until = CASE WHEN $10::boolean THEN now() + $11::bigint * interval '1 s' END, "        \
    " next_attempt_at = CASE WHEN NOT $10::boolean "                                               \
    "  THEN now() + $12::bigint * interval '1 s' "                                                 \
    "  WHEN state <> $3 THEN now() ELSE next_attempt_at END, "                                     \
    " steps = %s "                                                                                 \
    "FROM (SELECT " COMMIT_MODE_SQL(                                                               \
        "$25") ") AS commit_mode "                                                                 \
               "WHERE merchant_id = $1 AND id = $2 AND (lease_owner = $13 "                        \
               " OR (xmin = $26::xid AND (lease_owner IS NULL OR lease_until < now()))) "          \
               "RETURNING extract(epoch FROM updated_at)::bigint) "                                \
               "%s"

static char g_insert_sql[4096];
static char g_update_sql[4096];
static char g_final_sql[4096];

static void build_sql(void) {
    char steps[2048];
    snprintf(steps, sizeof steps, STEPS_ARRAY_FMT, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29);
    snprintf(
        g_insert_sql, sizeof g_insert_sql,
        "INSERT INTO sagas (merchant_id, id, kind, state, idempotency_key, "
        " request_hash, request, context, reason, error_code, error_reason, error_message, "
        " order_id, member_id, lease_owner, lease_until, next_attempt_at, attempts, steps) "
        "SELECT $1, $2, $3, $4, $5, sha256($6), $7, $8, $9, $10, $11, $12, "
        " NULLIF($13, ''), NULLIF($14, ''), $15, "
        " CASE WHEN $15::text IS NULL THEN NULL ELSE now() + $16::bigint * interval '1 s' END, "
        " now() + $17::bigint * interval '1 s', $18, %s "
        "FROM (SELECT pg_advisory_xact_lock(" GW_KEY_LOCK_CLASS
        ", hashtext($1::text || ':' || $5::text)), " COMMIT_MODE_SQL(
            "$30") ") l "
                   "ON CONFLICT ON CONSTRAINT sagas_idempotency_key DO NOTHING "
                   "RETURNING extract(epoch FROM created_at)::bigint",
        steps);
    snprintf(steps, sizeof steps, STEPS_ARRAY_FMT, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24);
    snprintf(g_update_sql, sizeof g_update_sql, UPDATE_SQL_FMT, steps, "SELECT * FROM s");
    /* The same as the last statement of a transaction, sent with its COMMIT: without the lease
     * it refuses, so that nothing else of the transaction commits either. */
    snprintf(g_final_sql, sizeof g_final_sql, UPDATE_SQL_FMT, steps,
             "SELECT coalesce((SELECT * FROM s), refuse('SAGA_LEASE_LOST'))");
}

static pthread_once_t g_sql_once = PTHREAD_ONCE_INIT;

/* The context as written. A checkout's promo quote (every line, discount and promotion
 * considered: most of the context's size) is already in the promo_reserve step's response, so
 * it is left out of the context rather than rewritten by every write (checkout_ctx puts it back
 * from the log); so are the checkout's ids, which are the saga's own columns (id, order_id,
 * member_id: context_ids_restore puts them back). */
static unsigned char *pack_context(gw_saga_t *x, size_t *len) {
    Loyalty__V1__GatewayCheckout *co = x->context->checkout;
    Loyalty__V1__GatewayCheckoutBreakdown *b = co ? co->breakdown : NULL;
    Loyalty__V1__PromoQuoteResult *q = b ? b->quote : NULL;
    if (b != NULL) {
        b->quote = NULL;
    }
    char *ids[4] = {0};
    if (co != NULL) {
        ids[0] = co->checkout_id, ids[1] = co->order_id, ids[2] = co->member_id;
        ids[3] = co->promo_checkout_id;
        co->checkout_id = co->order_id = co->member_id = co->promo_checkout_id = "";
    }
    unsigned char *out = pb_pack_arena(x->a, &x->context->base, len);
    if (b != NULL) {
        b->quote = q;
    }
    if (co != NULL) {
        co->checkout_id = ids[0], co->order_id = ids[1], co->member_id = ids[2];
        co->promo_checkout_id = ids[3];
    }
    return out;
}

/* A checkout's ids as pack_context left them out (a context written before has them). */
static void context_ids_restore(gw_saga_t *x) {
    Loyalty__V1__GatewayCheckout *co = x->context->checkout;
    if (co == NULL || x->kind != GW_KIND_CHECKOUT) {
        return;
    }
    if (co->checkout_id == NULL || co->checkout_id[0] == '\0') {
        co->checkout_id = x->id;
    }
    if (co->promo_checkout_id == NULL || co->promo_checkout_id[0] == '\0') {
        co->promo_checkout_id = x->id;
    }
    if (co->order_id == NULL || co->order_id[0] == '\0') {
        co->order_id = x->order_id;
    }
    if (co->member_id == NULL || co->member_id[0] == '\0') {
        co->member_id = x->member_id;
    }
}

/* The insert ran into another live checkout of the order (or a lock conflict): when a saga
 * with our idempotency key exists by now, that one is ours -- a concurrent duplicate committed
 * first -- and the caller answers from it (SAGA_EXISTS); otherwise the refusal stands. */
static status_t insert_refused(db_t *db, gw_saga_t *x, status_t st, bool order_taken) {
    char *id = NULL;
    bool same = false;
    status_t look = gw_store_find_by_key(db, x->a, x->merchant_id, x->idempotency_key,
                                         x->hash_input, x->hash_len, &id, &same);
    if (status_is_ok(&look)) {
        return status_make(STATUS_ALREADY_EXISTS, REASON_SAGA_EXISTS,
                           "a saga with this idempotency key exists");
    }
    if (look.code != STATUS_NOT_FOUND) {
        return look;
    }
    if (order_taken) {
        return status_make(STATUS_ALREADY_EXISTS, REASON_ORDER_ALREADY_CHECKED_OUT,
                           "order %s already has a checkout that is not cancelled", x->order_id);
    }
    return st;
}

status_t gw_store_insert(db_t *db, gw_saga_t *x, const unsigned char *hash_input, size_t hash_len,
                         bool wait_for_disk) {
    pthread_once(&g_sql_once, build_sql);
    size_t ctx_len = 0;
    unsigned char *ctx_bytes = pack_context(x, &ctx_len);
    step_arrays_t sa;
    step_arrays(x, &sa);
    db_params_t p;
    db_params_key(&p, x->merchant_id, x->id);
    db_param_int(&p, x->kind);
    db_param_int(&p, x->state);
    db_param_text(&p, x->idempotency_key);
    db_param_bytes(&p, hash_input, hash_len);
    db_param_bytes(&p, x->request_bytes, x->request_len);
    db_param_bytes(&p, ctx_bytes, ctx_len);
    db_param_text(&p, x->reason);
    db_param_int(&p, x->error.code);
    db_param_text(&p, x->error.reason);
    db_param_text(&p, x->error.message);
    db_param_text(&p, x->order_id);
    db_param_text(&p, x->member_id);
    db_param_text(&p, x->leased ? x->lease_token : NULL);
    db_param_int(&p, x->svc->lease_s);
    db_param_int(&p, x->next_delay_s);
    db_param_int(&p, x->attempts);
    step_params(&p, &sa);
    db_param_text(&p, wait_for_disk ? NULL : "off");
    PGresult *r = NULL;
    status_t st = db_exec(db, g_insert_sql, &p, &r);
    if (!status_is_ok(&st)) {
        bool order_taken = st.code == STATUS_ALREADY_EXISTS &&
                           strcmp(db_last_constraint(db), "sagas_checkout_order") == 0;
        bool conflict = st.code == STATUS_ABORTED;
        if (order_taken || conflict) {
            return insert_refused(db, x, st, order_taken);
        }
        return st;
    }
    bool inserted = PQntuples(r) == 1;
    if (inserted) {
        x->created_at = db_get_int(r, 0, 0);
        x->updated_at = x->created_at;
    }
    PQclear(r);
    if (!inserted) {
        return status_make(STATUS_ALREADY_EXISTS, REASON_SAGA_EXISTS,
                           "a saga with this idempotency key exists");
    }
    x->persisted = true;
    return status_ok();
}

static void update_params(gw_saga_t *x, bool keep_lease, bool wait_for_disk, db_params_t *p) {
    size_t ctx_len = 0;
    unsigned char *ctx_bytes = pack_context(x, &ctx_len);
    step_arrays_t sa;
    step_arrays(x, &sa);
    db_params_key(p, x->merchant_id, x->id);
    db_param_int(p, x->state);
    db_param_bytes(p, ctx_bytes, ctx_len);
    db_param_text(p, x->reason);
    db_param_int(p, x->error.code);
    db_param_text(p, x->error.reason);
    db_param_text(p, x->error.message);
    db_param_int(p, x->attempts);
    db_param_bool(p, keep_lease);
    db_param_int(p, x->svc->lease_s);
    db_param_int(p, x->next_delay_s);
    db_param_text(p, x->lease_token);
    step_params(p, &sa);
    db_param_text(p, wait_for_disk ? NULL : "off");
    db_param_text(p, x->claim_pending ? x->claim_xmin : NULL);
}

status_t gw_store_update_at_commit(db_t *db, gw_saga_t *x, PGresult **out) {
    pthread_once(&g_sql_once, build_sql);
    db_params_t *p = arena_alloc(x->a, sizeof *p);
    update_params(x, false, true, p);
    return db_tx_on_commit_result(db, g_final_sql, p, out);
}

status_t gw_store_update_committed(gw_saga_t *x, status_t st, PGresult *r) {
    if (st.code == STATUS_FAILED_PRECONDITION && strcmp(st.reason, "SAGA_LEASE_LOST") == 0) {
        x->leased = x->claim_pending = false;
        return status_make(STATUS_ABORTED, REASON_SAGA_IN_PROGRESS,
                           "another executor took over the saga; retry later");
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    assert(r != NULL && PQntuples(r) == 1);
    x->updated_at = db_get_int(r, 0, 0);
    x->leased = x->claim_pending = false;
    return status_ok();
}

status_t gw_store_update(db_t *db, gw_saga_t *x, bool keep_lease, bool wait_for_disk) {
    pthread_once(&g_sql_once, build_sql);
    db_params_t p;
    update_params(x, keep_lease, wait_for_disk, &p);
    PGresult *r = NULL;
    status_t st = db_exec(db, g_update_sql, &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    bool updated = PQntuples(r) == 1;
    if (updated) {
        x->updated_at = db_get_int(r, 0, 0);
    }
    PQclear(r);
    x->claim_pending = false;
    if (!updated) {
        x->leased = false;
        return status_make(STATUS_ABORTED, REASON_SAGA_IN_PROGRESS,
                           "another executor took over the saga; retry later");
    }
    if (!keep_lease) {
        x->leased = false;
    }
    return status_ok();
}

status_t gw_store_find_by_key(db_t *db, arena_t *a, const char *merchant_id, const char *key,
                              const unsigned char *hash_input, size_t hash_len, char **id,
                              bool *same_request) {
    db_params_t p;
    db_params_key(&p, merchant_id, key);
    db_param_bytes(&p, hash_input, hash_len);
    PGresult *r = NULL;
    status_t st =
        db_exec_row(db,
                    "SELECT id, request_hash = sha256($3) FROM sagas "
                    "WHERE merchant_id = $1 AND idempotency_key = $2",
                    &p, &r, STATUS_NOT_FOUND, REASON_SAGA_NOT_FOUND, "no saga has this key");
    if (!status_is_ok(&st)) {
        return st;
    }
    *id = arena_strdup(a, db_get_str(r, 0, 0));
    *same_request = db_get_bool(r, 0, 1);
    PQclear(r);
    return status_ok();
}

status_t gw_store_unclaim(db_t *db, const char *merchant_id, const char *id, const char *token) {
    db_params_t p;
    db_params_key(&p, merchant_id, id);
    db_param_text(&p, token);
    return db_exec(db,
                   "UPDATE sagas SET lease_owner = NULL, lease_until = NULL "
                   "WHERE merchant_id = $1 AND id = $2 AND lease_owner = $3",
                   &p, NULL);
}

static unsigned char *unescape(arena_t *a, const char *hex, size_t *len) {
    size_t n = 0;
    unsigned char *b = PQunescapeBytea((const unsigned char *)hex, &n);
    if (b == NULL) {
        *len = 0;
        return NULL;
    }
    unsigned char *out = arena_alloc(a, n ? n : 1);
    memcpy(out, b, n);
    PQfreemem(b);
    *len = n;
    return out;
}

static void status_from_row(status_t *s, int code, const char *reason, const char *message) {
    *s = code == 0
             ? status_ok()
             : status_make_relayed((status_code_t)code, reason[0] ? reason : NULL, "%s", message);
}

/* The steps of a saga: its steps array, or for a saga last written before the array existed
 * (steps NULL, migration 057) its saga_steps rows. */
#define STEPS_SQL                                                                                  \
    "SELECT u.name, u.seq, u.direction, u.state, u.attempts, u.response, u.error_code, "           \
    " coalesce(u.error_reason, ''), coalesce(u.error_message, ''), u.started_at, "                 \
    " coalesce(u.finished_at, 0) "                                                                 \
    "FROM sagas s CROSS JOIN LATERAL unnest(s.steps) AS u "                                        \
    "WHERE s.merchant_id = $1 AND s.id = $2 "                                                      \
    "UNION ALL "                                                                                   \
    "SELECT name, seq, direction, state, attempts, response, error_code, error_reason, "           \
    " error_message, extract(epoch FROM started_at)::bigint, "                                     \
    " coalesce(extract(epoch FROM finished_at)::bigint, 0) "                                       \
    "FROM saga_steps WHERE merchant_id = $1 AND saga_id = $2 "                                     \
    " AND EXISTS (SELECT 1 FROM sagas s WHERE s.merchant_id = $1 AND s.id = $2 "                   \
    "  AND s.steps IS NULL) "                                                                      \
    "ORDER BY 2"

/* STEPS_SQL's columns; the response (5) and the error (6..8) are read by steps_from_result. */
static const db_col_t STEP_COL_TABLE[] = {
    DB_COL(DB_COL_TEXT_IN, gw_step_t, name),
    DB_COL(DB_COL_INT, gw_step_t, seq),
    DB_COL(DB_COL_INT, gw_step_t, direction),
    DB_COL(DB_COL_INT, gw_step_t, state),
    DB_COL(DB_COL_INT, gw_step_t, attempts),
    DB_COL_SKIPPED,
    DB_COL_SKIPPED,
    DB_COL_SKIPPED,
    DB_COL_SKIPPED,
    DB_COL(DB_COL_INT, gw_step_t, started_at),
    DB_COL(DB_COL_INT, gw_step_t, finished_at),
};
static const db_cols_t STEP_COLS = DB_COLS(STEP_COL_TABLE);

static status_t steps_from_result(gw_saga_t *x, const PGresult *r) {
    int n = PQntuples(r);
    x->n_steps = 0;
    for (int i = 0; i < n && i < GW_STEPS_MAX; i++) {
        gw_step_t *s = &x->steps[x->n_steps++];
        memset(s, 0, sizeof *s);
        status_t st = db_cols_read(x->a, &STEP_COLS, r, i, s);
        if (!status_is_ok(&st)) {
            return st;
        }
        if (!db_is_null(r, i, 5)) {
            s->response = unescape(x->a, db_get_str(r, i, 5), &s->response_len);
        }
        status_from_row(&s->error, (int)db_get_int(r, i, 6), db_get_str(r, i, 7),
                        db_get_str(r, i, 8));
    }
    return status_ok();
}

static status_t load_steps(db_t *db, gw_saga_t *x) {
    db_params_t p;
    db_params_key(&p, x->merchant_id, x->id);
    PGresult *r = NULL;
    status_t st = db_exec(db, STEPS_SQL, &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    st = steps_from_result(x, r);
    PQclear(r);
    return st;
}

/* The saga row's columns as saga_from_row reads them. */
#define SAGA_COLUMNS                                                                               \
    "kind, state, idempotency_key, request, context, reason, error_code, error_reason, "           \
    " error_message, coalesce(order_id, ''), coalesce(member_id, ''), attempts, "                  \
    " extract(epoch FROM created_at)::bigint, extract(epoch FROM updated_at)::bigint, "            \
    " extract(epoch FROM next_attempt_at)::bigint "

/* SAGA_COLUMNS; the request and context bytes (3, 4) and the error (6..8) are read by
 * saga_fields_from_row. */
static const db_col_t SAGA_COL_TABLE[] = {
    DB_COL(DB_COL_INT, gw_saga_t, kind),
    DB_COL(DB_COL_INT, gw_saga_t, state),
    DB_COL(DB_COL_TEXT, gw_saga_t, idempotency_key),
    DB_COL_SKIPPED,
    DB_COL_SKIPPED,
    DB_COL(DB_COL_TEXT_IN, gw_saga_t, reason),
    DB_COL_SKIPPED,
    DB_COL_SKIPPED,
    DB_COL_SKIPPED,
    DB_COL(DB_COL_TEXT, gw_saga_t, order_id),
    DB_COL(DB_COL_TEXT, gw_saga_t, member_id),
    DB_COL(DB_COL_INT, gw_saga_t, attempts),
    DB_COL(DB_COL_INT, gw_saga_t, created_at),
    DB_COL(DB_COL_INT, gw_saga_t, updated_at),
    DB_COL(DB_COL_INT, gw_saga_t, next_attempt_at),
};
static const db_cols_t SAGA_COLS = DB_COLS(SAGA_COL_TABLE);

/* Reads row 0 of r (SAGA_COLUMNS) into x, without its steps. */
static status_t saga_fields_from_row(gw_saga_t *x, const PGresult *r) {
    arena_t *a = x->a;
    status_t st = db_cols_read(a, &SAGA_COLS, r, 0, x);
    if (!status_is_ok(&st)) {
        return st;
    }
    x->request_bytes = unescape(a, db_get_str(r, 0, 3), &x->request_len);
    size_t ctx_len = 0;
    unsigned char *ctx_bytes = unescape(a, db_get_str(r, 0, 4), &ctx_len);
    status_from_row(&x->error, (int)db_get_int(r, 0, 6), db_get_str(r, 0, 7), db_get_str(r, 0, 8));
    x->context = (Loyalty__V1__GatewaySagaContext *)pb_unpack_arena(
        a, &loyalty__v1__gateway_saga_context__descriptor, ctx_bytes, ctx_len);
    if (x->context == NULL) {
        return status_make(STATUS_DATA_LOSS, REASON_CORRUPT_SAGA,
                           "saga %s has an unreadable context", x->id);
    }
    context_ids_restore(x);
    x->persisted = true;
    return status_ok();
}

/* Reads row 0 of r (SAGA_COLUMNS) into x, then its steps. */
static status_t saga_from_row(db_t *db, gw_saga_t *x, const PGresult *r) {
    status_t st = saga_fields_from_row(x, r);
    return status_is_ok(&st) ? load_steps(db, x) : st;
}

status_t gw_store_load(db_t *db, gw_saga_t *x) {
    db_params_t p;
    db_params_key(&p, x->merchant_id, x->id);
    PGresult *r = NULL;
    status_t st =
        db_exec_row(db, "SELECT " SAGA_COLUMNS "FROM sagas WHERE merchant_id = $1 AND id = $2", &p,
                    &r, STATUS_NOT_FOUND, REASON_SAGA_NOT_FOUND, "no such saga");
    if (!status_is_ok(&st)) {
        if (strcmp(st.reason, "SAGA_NOT_FOUND") == 0) {
            st = status_make(STATUS_NOT_FOUND, REASON_SAGA_NOT_FOUND, "saga %s not found", x->id);
        }
        return st;
    }
    st = saga_from_row(db, x, r);
    PQclear(r);
    return st;
}

status_t gw_store_load_claimable(db_t *db, gw_saga_t *x, bool *lease_free) {
    db_params_t p;
    db_params_key(&p, x->merchant_id, x->id);
    db_params_t ps;
    db_params_key(&ps, x->merchant_id, x->id);
    /* The steps by a statement of their own in the same round trip: should a writer come in
     * between, the steps may be newer than the row read, but then so is the row's xmin, and the
     * first write (conditioned on the xmin read here) refuses. */
    db_exec_item_t q[2] = {
        {.sql = "SELECT " SAGA_COLUMNS ", xmin::text, "
                " lease_owner IS NULL OR lease_until < now() "
                "FROM sagas WHERE merchant_id = $1 AND id = $2",
         .params = &p},
        {.sql = STEPS_SQL, .params = &ps},
    };
    status_t st = db_exec_all(db, q, 2);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (PQntuples(q[0].out) != 1) {
        st = status_make(STATUS_NOT_FOUND, REASON_SAGA_NOT_FOUND, "saga %s not found", x->id);
    } else {
        st = saga_fields_from_row(x, q[0].out);
    }
    if (status_is_ok(&st)) {
        snprintf(x->claim_xmin, sizeof x->claim_xmin, "%s", db_get_str(q[0].out, 0, 15));
        *lease_free = db_get_bool(q[0].out, 0, 16);
        st = steps_from_result(x, q[1].out);
    }
    PQclear(q[0].out);
    PQclear(q[1].out);
    return st;
}

status_t gw_store_claim_load(db_t *db, gw_saga_t *x, const char *token, int64_t lease_s,
                             bool *claimed) {
    assert(!db_in_tx(db)); /* the setting below must end with this statement */
    db_params_t p;
    db_params_key(&p, x->merchant_id, x->id);
    db_param_text(&p, token);
    db_param_int(&p, lease_s);
    db_params_t ps;
    db_params_key(&ps, x->merchant_id, x->id);
    /* RETURNING reads the row version the lease was taken on (after waiting for a writer that
     * held it), so the state cannot be older than the lease; the steps are read afterwards, by
     * a statement of their own (its own snapshot, in the same round trip), for the same reason.
     * The claim commits without waiting for its WAL to reach the disk (synchronous_commit off
     * for the round trip's own transaction): a lease is only worth anything while PostgreSQL
     * runs, and one lost in a crash makes the executor's next write, which is durable and
     * conditioned on the lease, find it gone. */
    db_exec_item_t q[2] = {
        {.sql = "UPDATE sagas SET lease_owner = $3, "
                " lease_until = now() + $4::bigint * interval '1 s' "
                "FROM (SELECT set_config('synchronous_commit', 'off', true)) AS nosync "
                "WHERE merchant_id = $1 AND id = $2 "
                " AND (lease_owner IS NULL OR lease_until < now() OR lease_owner = $3) "
                "RETURNING " SAGA_COLUMNS,
         .params = &p},
        {.sql = STEPS_SQL, .params = &ps},
    };
    status_t st = db_exec_all(db, q, 2);
    if (!status_is_ok(&st)) {
        return st;
    }
    *claimed = PQntuples(q[0].out) == 1;
    if (!*claimed) { /* leased by someone else, or missing: read it as it is */
        PQclear(q[0].out);
        PQclear(q[1].out);
        return gw_store_load(db, x);
    }
    st = saga_fields_from_row(x, q[0].out);
    if (status_is_ok(&st)) {
        st = steps_from_result(x, q[1].out);
    }
    PQclear(q[0].out);
    PQclear(q[1].out);
    return st;
}

status_t gw_store_saga_census(db_t *db, PGresult **out) {
    /* Two halves, so that each reads its partial index (sagas_due, sagas_needs_attention). */
    return db_exec(db,
                   "SELECT kind, state, count(*), "
                   " extract(epoch FROM now() - min(created_at))::float8 "
                   "FROM sagas WHERE state IN (1, 2, 3, 5) GROUP BY kind, state "
                   "UNION ALL "
                   "SELECT kind, 7, count(*), extract(epoch FROM now() - min(created_at))::float8 "
                   "FROM sagas WHERE state = 7 GROUP BY kind",
                   NULL, out);
}

status_t gw_store_claim_due(db_t *db, arena_t *a, const char *token, int64_t lease_s,
                            char **merchant_id, char **id, bool *found) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, token);
    db_param_int(&p, lease_s);
    PGresult *r = NULL;
    status_t st = db_exec(
        db,
        "UPDATE sagas s SET lease_owner = $1, lease_until = now() + $2::bigint * interval '1 s', "
        " attempts = s.attempts + 1 "
        "FROM (SELECT merchant_id, id FROM sagas "
        "      WHERE state IN (1, 2, 3, 5) AND next_attempt_at <= now() "
        "      AND (lease_owner IS NULL OR lease_until < now()) "
        "      ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED) d "
        "WHERE s.merchant_id = d.merchant_id AND s.id = d.id "
        "RETURNING s.merchant_id, s.id",
        &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    *found = PQntuples(r) == 1;
    if (*found) {
        *merchant_id = arena_strdup(a, db_get_str(r, 0, 0));
        *id = arena_strdup(a, db_get_str(r, 0, 1));
    }
    PQclear(r);
    return status_ok();
}

/* The columns of a listed saga, merchant last: one merchant's list and the operators' list
 * across merchants read them the same way. Two statements rather than an optional merchant
 * filter, so that a prepared plan of the one-merchant list always uses the primary key. */
#define GW_LIST_COLUMNS                                                                            \
    "SELECT id, kind, state, reason, error_code, error_reason, error_message, "                    \
    " coalesce(member_id, ''), coalesce(order_id, ''), attempts, "                                 \
    " extract(epoch FROM next_attempt_at)::bigint, extract(epoch FROM created_at)::bigint, "       \
    " extract(epoch FROM updated_at)::bigint, merchant_id FROM sagas "
#define GW_LIST_FILTERS                                                                            \
    " AND ($2 = 0 OR state = $2) AND ($3 = 0 OR kind = $3) AND ($4 = '' OR id < $4) "              \
    " AND ($6::bigint = 0 OR updated_at <= now() - make_interval(secs => $6::bigint)) ORDER BY "   \
    "id DESC LIMIT $5"

/* GW_LIST_COLUMNS; the error (4..6) is a message of its own, made by list_row. */
static const db_col_t LIST_COL_TABLE[] = {
    DB_FIELD(DB_COL_TEXT, "id"),
    DB_FIELD(DB_COL_INT, "kind"),
    DB_FIELD(DB_COL_INT, "state"),
    DB_FIELD(DB_COL_TEXT, "reason"),
    DB_COL_SKIPPED,
    DB_COL_SKIPPED,
    DB_COL_SKIPPED,
    DB_FIELD(DB_COL_TEXT, "member_id"),
    DB_FIELD(DB_COL_TEXT, "order_id"),
    DB_FIELD(DB_COL_INT, "attempts"),
    DB_FIELD(DB_COL_INT, "next_attempt_at"),
    DB_FIELD(DB_COL_INT, "created_at"),
    DB_FIELD(DB_COL_INT, "updated_at"),
    DB_FIELD(DB_COL_TEXT, "merchant_id"),
};
static const db_cols_t LIST_COLS =
    DB_COLS_MESSAGE(LIST_COL_TABLE, &loyalty__v1__gateway_saga__descriptor);

/* A saga of a GW_LIST_COLUMNS result as a message (without steps). */
static status_t list_row(void *ctx, arena_t *a, const PGresult *r, int i, void *item) {
    (void)ctx;
    status_t st = db_cols_read(a, &LIST_COLS, r, i, item);
    if (!status_is_ok(&st)) {
        return st;
    }
    Loyalty__V1__GatewaySaga *g = *(Loyalty__V1__GatewaySaga **)item;
    if (db_get_int(r, i, 4) != 0) {
        Loyalty__V1__GatewayError *e = pb_new(a, &loyalty__v1__gateway_error__descriptor);
        e->code = arena_strdup(a, status_code_name((int)db_get_int(r, i, 4)));
        e->reason = db_dup_str(a, r, i, 5);
        e->message = db_dup_str(a, r, i, 6);
        g->error = e;
    }
    return status_ok();
}

/* Runs a GW_LIST_COLUMNS statement into *out. */
static status_t list_sagas(db_t *db, arena_t *a, const char *sql, const db_params_t *p,
                           Loyalty__V1__GatewaySaga ***out, size_t *n) {
    db_rows_t rows = {.item_size = sizeof **out};
    status_t st = db_rows(db, a, sql, p, list_row, NULL, &rows);
    *out = rows.items;
    *n = rows.n;
    return st;
}

status_t gw_store_list(db_t *db, arena_t *a, const char *merchant_id, int state, int kind,
                       int64_t older_than_s, const char *after_id, int32_t limit,
                       Loyalty__V1__GatewaySaga ***out, size_t *n) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_int(&p, state);
    db_param_int(&p, kind);
    db_param_text(&p, after_id);
    db_param_int(&p, limit);
    db_param_int(&p, older_than_s);
    return list_sagas(db, a,
                      merchant_id[0] ? GW_LIST_COLUMNS "WHERE merchant_id = $1" GW_LIST_FILTERS
                                     : GW_LIST_COLUMNS "WHERE $1 = ''" GW_LIST_FILTERS,
                      &p, out, n);
}

status_t gw_store_list_member_orders(db_t *db, arena_t *a, const char *merchant_id,
                                     const char *member_id, int32_t limit,
                                     Loyalty__V1__GatewaySaga ***out, size_t *n) {
    db_params_t p;
    db_params_key(&p, merchant_id, member_id);
    db_param_int(&p, limit);
    /* kind 2 = CHECKOUT, 3 = REFUND: the partial index sagas_member_orders. */
    return list_sagas(db, a,
                      GW_LIST_COLUMNS "WHERE merchant_id = $1 AND member_id = $2 "
                                      "AND kind IN (2, 3) ORDER BY id DESC LIMIT $3",
                      &p, out, n);
}

status_t gw_store_checkout_of_order(db_t *db, arena_t *a, const char *merchant_id,
                                    const char *order_id, char **checkout_id) {
    db_params_t p;
    db_params_key(&p, merchant_id, order_id);
    PGresult *r = NULL;
    status_t st = db_exec(db,
                          "SELECT id FROM sagas WHERE merchant_id = $1 AND order_id = $2 "
                          "AND kind = 2 ORDER BY (state <> 6) DESC, created_at DESC, id DESC "
                          "LIMIT 1",
                          &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (PQntuples(r) != 1) {
        PQclear(r);
        return status_make(STATUS_NOT_FOUND, REASON_CHECKOUT_NOT_FOUND, "no checkout for order %s",
                           order_id);
    }
    *checkout_id = arena_strdup(a, db_get_str(r, 0, 0));
    PQclear(r);
    return status_ok();
}

/* A step RetrySaga calls again: FAILED in the direction resumed, with the saga's error. */
#define RETRIED_STEP_SQL                                                                           \
    "(u.state = 3 AND u.direction = $3 AND u.error_code = $4 "                                     \
    " AND coalesce(u.error_reason, '') = $5)"

status_t gw_store_retry(db_t *db, const char *merchant_id, const char *id, int state, int direction,
                        int64_t *steps_retried) {
    *steps_retried = 0;
    db_params_t p;
    db_params_key(&p, merchant_id, id);
    db_param_int(&p, state);
    PGresult *r = NULL;
    /* Two statements (the caller's transaction): the saga first, locked and still waiting for
     * attention, then its steps that failed with the saga's error. (In one statement the data-
     * modifying parts would run in no set order.) */
    status_t st = db_exec(db,
                          "UPDATE sagas SET state = $3, reason = '', error_code = 0, "
                          " error_reason = '', error_message = '', lease_owner = NULL, "
                          " lease_until = NULL, next_attempt_at = now(), updated_at = now() "
                          "WHERE merchant_id = $1 AND id = $2 AND state = 7 "
                          "RETURNING (SELECT error_code FROM sagas o WHERE o.merchant_id = $1 "
                          " AND o.id = $2), (SELECT error_reason FROM sagas o "
                          " WHERE o.merchant_id = $1 AND o.id = $2)",
                          &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    bool done = PQntuples(r) == 1;
    int64_t code = done ? db_get_int(r, 0, 0) : 0;
    char reason[STATUS_REASON_MAX];
    snprintf(reason, sizeof reason, "%s", done ? db_get_str(r, 0, 1) : "");
    PQclear(r);
    if (!done) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_SAGA_NOT_RETRYABLE,
                           "saga %s does not need attention", id);
    }
    db_params_t q;
    db_params_key(&q, merchant_id, id);
    db_param_int(&q, direction);
    db_param_int(&q, code);
    db_param_text(&q, reason);
    PGresult *steps = NULL;
    st = db_exec(db,
                 "UPDATE sagas s SET steps = ARRAY(SELECT CASE WHEN " RETRIED_STEP_SQL
                 " THEN ROW(u.name, u.seq, u.direction, 1::smallint, u.attempts, u.response, "
                 "  u.error_code, u.error_reason, u.error_message, "
                 "  extract(epoch FROM now())::bigint, NULL::bigint)::saga_step "
                 " ELSE ROW(u.name, u.seq, u.direction, u.state, u.attempts, u.response, "
                 "  u.error_code, u.error_reason, u.error_message, u.started_at, "
                 "  u.finished_at)::saga_step END "
                 " FROM unnest(s.steps) WITH ORDINALITY AS u(name, seq, direction, state, "
                 "  attempts, response, error_code, error_reason, error_message, started_at, "
                 "  finished_at, ord) ORDER BY u.ord) "
                 "FROM (SELECT count(*) AS n FROM sagas o CROSS JOIN LATERAL unnest(o.steps) u "
                 " WHERE o.merchant_id = $1 AND o.id = $2 AND " RETRIED_STEP_SQL ") k "
                 "WHERE s.merchant_id = $1 AND s.id = $2 AND s.steps IS NOT NULL "
                 "RETURNING k.n",
                 &q, &steps);
    if (!status_is_ok(&st)) {
        return st;
    }
    bool in_row = PQntuples(steps) == 1;
    *steps_retried = in_row ? db_get_int(steps, 0, 0) : 0;
    PQclear(steps);
    if (in_row) {
        return status_ok();
    }
    /* A saga last written before migration 057: its steps are saga_steps rows. */
    st = db_exec(db,
                 "UPDATE saga_steps SET state = 1, finished_at = NULL, started_at = now() "
                 "WHERE merchant_id = $1 AND saga_id = $2 AND state = 3 AND direction = $3 "
                 " AND error_code = $4 AND error_reason = $5",
                 &q, &steps);
    if (status_is_ok(&st)) {
        *steps_retried = strtoll(PQcmdTuples(steps), NULL, 10);
        PQclear(steps);
    }
    return st;
}

/* ---- orders ---- */

status_t gw_store_insert_order(db_t *db, const char *merchant_id, const gw_order_row_t *o) {
    arena_t a;
    arena_init(&a);
    char **ids = arena_alloc(&a, (o->n_lines + 1) * sizeof *ids);
    char **kinds = arena_alloc(&a, (o->n_lines + 1) * sizeof *kinds);
    char **qty = arena_alloc(&a, (o->n_lines + 1) * sizeof *qty);
    char **fin = arena_alloc(&a, (o->n_lines + 1) * sizeof *fin);
    for (size_t i = 0; i < o->n_lines; i++) {
        ids[i] = o->lines[i].line_id;
        kinds[i] = arena_printf(&a, "%d", o->lines[i].kind);
        qty[i] = arena_printf(&a, "%lld", (long long)o->lines[i].quantity);
        fin[i] = arena_printf(&a, "%lld", (long long)o->lines[i].final_amount_cents);
    }
    db_params_t p;
    db_params_key(&p, merchant_id, o->order_id);
    db_param_text(&p, o->checkout_id);
    db_param_text(&p, o->member_id);
    db_param_int(&p, o->f.total_cents);
    db_param_int(&p, o->f.points_cash_cents);
    db_param_int(&p, o->f.wallet_cents);
    db_param_int(&p, o->f.external_cents);
    db_param_int(&p, o->f.spend_cents);
    db_param_int(&p, o->f.refundable_cents);
    db_param_text_array(&p, &a, ids, o->n_lines);
    db_param_text_array(&p, &a, kinds, o->n_lines);
    db_param_text_array(&p, &a, qty, o->n_lines);
    db_param_text_array(&p, &a, fin, o->n_lines);
    /* Deferred: the order travels with the saga's final COMMIT. */
    status_t st = db_exec_deferred(
        db,
        "INSERT INTO orders (merchant_id, order_id, checkout_id, member_id, total_cents, "
        " points_cash_cents, wallet_cents, external_cents, spend_cents, refundable_cents, lines) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, "
        " ARRAY(SELECT ROW(u.id, u.kind::smallint, u.qty::bigint, u.fin::bigint, 0, 0)::order_line "
        "  FROM unnest($11::text[], $12::text[], $13::text[], $14::text[]) WITH ORDINALITY "
        "  AS u(id, kind, qty, fin, ord) ORDER BY u.ord)) "
        "ON CONFLICT DO NOTHING",
        &p, NULL);
    arena_free(&a);
    return st;
}

static const db_col_t ORDER_LINE_COL_TABLE[] = {
    DB_COL(DB_COL_TEXT, gw_order_line_row_t, line_id),
    DB_COL(DB_COL_INT, gw_order_line_row_t, kind),
    DB_COL(DB_COL_INT, gw_order_line_row_t, quantity),
    DB_COL(DB_COL_INT, gw_order_line_row_t, final_amount_cents),
    DB_COL(DB_COL_INT, gw_order_line_row_t, refunded_quantity),
    DB_COL(DB_COL_INT, gw_order_line_row_t, refunded_cents),
};
static const db_cols_t ORDER_LINE_COLS = DB_COLS(ORDER_LINE_COL_TABLE);

/* The order's columns after its id: its checkout, member and figures. */
static const db_col_t ORDER_COL_TABLE[] = {
    DB_COL(DB_COL_TEXT, gw_order_row_t, checkout_id),
    DB_COL(DB_COL_TEXT, gw_order_row_t, member_id),
    DB_COL(DB_COL_INT, gw_order_row_t, f.total_cents),
    DB_COL(DB_COL_INT, gw_order_row_t, f.points_cash_cents),
    DB_COL(DB_COL_INT, gw_order_row_t, f.wallet_cents),
    DB_COL(DB_COL_INT, gw_order_row_t, f.external_cents),
    DB_COL(DB_COL_INT, gw_order_row_t, f.spend_cents),
    DB_COL(DB_COL_INT, gw_order_row_t, f.refundable_cents),
    DB_COL(DB_COL_INT, gw_order_row_t, f.refunded_cents),
    DB_COL(DB_COL_INT, gw_order_row_t, f.refunded_points_cash_cents),
    DB_COL(DB_COL_INT, gw_order_row_t, f.refunded_wallet_cents),
    DB_COL(DB_COL_INT, gw_order_row_t, f.refunded_external_cents),
    DB_COL(DB_COL_INT, gw_order_row_t, f.refunded_share_bps),
    DB_COL(DB_COL_INT, gw_order_row_t, f.refunded_spend_cents),
};
static const db_cols_t ORDER_COLS = DB_COLS(ORDER_COL_TABLE);

status_t gw_store_get_order(db_t *db, arena_t *a, const char *merchant_id, const char *order_id,
                            bool for_update, gw_order_row_t *out) {
    memset(out, 0, sizeof *out);
    db_params_t p;
    db_params_key(&p, merchant_id, order_id);
    PGresult *r = NULL;
    static const char *const sql[2] = {
        "SELECT checkout_id, member_id, total_cents, points_cash_cents, wallet_cents, "
        " external_cents, spend_cents, refundable_cents, refunded_cents, "
        " refunded_points_cash_cents, refunded_wallet_cents, refunded_external_cents, "
        " refunded_share_bps, refunded_spend_cents FROM orders "
        "WHERE merchant_id = $1 AND order_id = $2",
        "SELECT checkout_id, member_id, total_cents, points_cash_cents, wallet_cents, "
        " external_cents, spend_cents, refundable_cents, refunded_cents, "
        " refunded_points_cash_cents, refunded_wallet_cents, refunded_external_cents, "
        " refunded_share_bps, refunded_spend_cents FROM orders "
        "WHERE merchant_id = $1 AND order_id = $2 FOR UPDATE"};
    status_t st = db_exec(db, sql[for_update ? 1 : 0], &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (PQntuples(r) != 1) {
        PQclear(r);
        return status_make(STATUS_NOT_FOUND, REASON_ORDER_NOT_FOUND, "order %s not found",
                           order_id);
    }
    out->order_id = arena_strdup(a, order_id);
    st = db_cols_read(a, &ORDER_COLS, r, 0, out);
    PQclear(r);
    if (!status_is_ok(&st)) {
        return st;
    }
    /* The order's lines array, or the order_lines rows of an order written before it (058). */
    db_rows_t rows = {.item_size = sizeof *out->lines};
    st = db_rows_cols(
        db, a,
        "SELECT l.line_id, l.kind, l.quantity, l.final_amount_cents, "
        " l.refunded_quantity, l.refunded_cents, l.ord::int "
        "FROM orders o CROSS JOIN LATERAL unnest(o.lines) WITH ORDINALITY "
        " AS l(line_id, kind, quantity, final_amount_cents, refunded_quantity, "
        "  refunded_cents, ord) "
        "WHERE o.merchant_id = $1 AND o.order_id = $2 "
        "UNION ALL "
        "SELECT line_id, kind, quantity, final_amount_cents, refunded_quantity, "
        " refunded_cents, idx FROM order_lines WHERE merchant_id = $1 AND order_id = $2 "
        " AND EXISTS (SELECT 1 FROM orders o WHERE o.merchant_id = $1 "
        "  AND o.order_id = $2 AND o.lines IS NULL) "
        "ORDER BY 7",
        &p, &ORDER_LINE_COLS, &rows);
    out->lines = rows.items;
    out->n_lines = rows.n;
    return st;
}

status_t gw_store_add_refund(db_t *db, const char *merchant_id, const char *order_id,
                             int64_t amount_cents, const gw_refund_split_t *s,
                             const gw_order_line_row_t *lines, size_t n_lines) {
    db_params_t p;
    db_params_key(&p, merchant_id, order_id);
    db_param_int(&p, amount_cents);
    db_param_int(&p, s->points_cash_cents);
    db_param_int(&p, s->wallet_cents);
    db_param_int(&p, s->external_cents);
    db_param_int(&p, s->share_bps);
    db_param_int(&p, s->spend_cents);
    arena_t a;
    arena_init(&a);
    char **ids = arena_alloc(&a, (n_lines + 1) * sizeof *ids);
    char **qty = arena_alloc(&a, (n_lines + 1) * sizeof *qty);
    char **cents = arena_alloc(&a, (n_lines + 1) * sizeof *cents);
    for (size_t i = 0; i < n_lines; i++) {
        ids[i] = lines[i].line_id;
        qty[i] = arena_printf(&a, "%lld", (long long)lines[i].refunded_quantity);
        cents[i] = arena_printf(&a, "%lld", (long long)lines[i].refunded_cents);
    }
    db_param_text_array(&p, &a, ids, n_lines);
    db_param_text_array(&p, &a, qty, n_lines);
    db_param_text_array(&p, &a, cents, n_lines);
    PGresult *r = NULL;
    /* The totals and this refund's quantities and cents per line ($9..$11), in the one row. */
    status_t st = db_exec(
        db,
        "UPDATE orders SET refunded_cents = refunded_cents + $3, "
        " refunded_points_cash_cents = refunded_points_cash_cents + $4, "
        " refunded_wallet_cents = refunded_wallet_cents + $5, "
        " refunded_external_cents = refunded_external_cents + $6, "
        " refunded_share_bps = refunded_share_bps + $7, "
        " refunded_spend_cents = refunded_spend_cents + $8, updated_at = now(), "
        " lines = CASE WHEN lines IS NOT NULL THEN ARRAY(SELECT ROW(l.line_id, l.kind, "
        "  l.quantity, l.final_amount_cents, l.refunded_quantity + coalesce(u.qty::bigint, 0), "
        "  l.refunded_cents + coalesce(u.cents::bigint, 0))::order_line "
        "  FROM unnest(lines) WITH ORDINALITY AS l(line_id, kind, quantity, "
        "   final_amount_cents, refunded_quantity, refunded_cents, ord) "
        "  LEFT JOIN unnest($9::text[], $10::text[], $11::text[]) AS u(id, qty, cents) "
        "   ON u.id = l.line_id ORDER BY l.ord) END "
        "WHERE merchant_id = $1 AND order_id = $2 RETURNING lines IS NULL",
        &p, &r);
    arena_free(&a);
    bool legacy = status_is_ok(&st) && PQntuples(r) == 1 && db_get_bool(r, 0, 0);
    if (status_is_ok(&st)) {
        PQclear(r);
    }
    /* An order written before its lines array (058): its order_lines rows. */
    for (size_t i = 0; legacy && status_is_ok(&st) && i < n_lines; i++) {
        db_params_t q;
        db_params_key(&q, merchant_id, order_id);
        db_param_text(&q, lines[i].line_id);
        db_param_int(&q, lines[i].refunded_quantity); /* this refund's quantity */
        db_param_int(&q, lines[i].refunded_cents);    /* and cents */
        st = db_exec(db,
                     "UPDATE order_lines SET refunded_quantity = refunded_quantity + $4, "
                     " refunded_cents = refunded_cents + $5 "
                     "WHERE merchant_id = $1 AND order_id = $2 AND line_id = $3",
                     &q, NULL);
    }
    return st;
}

/* ---- settings ---- */

static const db_col_t SETTINGS_COL_TABLE[] = {
    DB_FIELD(DB_COL_TEXT_ARRAY, "welcome_coupon_template_ids"),
    DB_FIELD(DB_COL_INT, "updated_at"),
};
static const db_cols_t SETTINGS_COLS =
    DB_COLS_MESSAGE(SETTINGS_COL_TABLE, &loyalty__v1__gateway_settings__descriptor);

/* The settings row, or the defaults without one. */
static status_t settings_from_row(arena_t *a, const PGresult *r,
                                  Loyalty__V1__GatewaySettings **out) {
    if (PQntuples(r) != 1) {
        *out = pb_new(a, &loyalty__v1__gateway_settings__descriptor);
        return status_ok();
    }
    return db_cols_read(a, &SETTINGS_COLS, r, 0, out);
}

status_t gw_store_get_settings(db_t *db, arena_t *a, const char *merchant_id,
                               Loyalty__V1__GatewaySettings **out) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    PGresult *r = NULL;
    status_t st = db_exec(db,
                          "SELECT welcome_coupon_template_ids, "
                          " extract(epoch FROM updated_at)::bigint "
                          "FROM settings WHERE merchant_id = $1",
                          &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    st = settings_from_row(a, r, out);
    PQclear(r);
    return st;
}

status_t gw_store_put_settings(db_t *db, arena_t *a, const char *merchant_id,
                               const Loyalty__V1__GatewaySettings *in,
                               Loyalty__V1__GatewaySettings **out) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text_array(&p, a, in->welcome_coupon_template_ids, in->n_welcome_coupon_template_ids);
    PGresult *r = NULL;
    status_t st = db_exec(db,
                          "INSERT INTO settings (merchant_id, welcome_coupon_template_ids) "
                          "VALUES ($1, $2::text[]) ON CONFLICT (merchant_id) DO UPDATE SET "
                          " welcome_coupon_template_ids = excluded.welcome_coupon_template_ids, "
                          " updated_at = now() "
                          "RETURNING welcome_coupon_template_ids, "
                          " extract(epoch FROM updated_at)::bigint",
                          &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    st = settings_from_row(a, r, out);
    PQclear(r);
    return st;
}

/* ---- held referral rewards ---- */

status_t gw_store_referral_due(db_t *db, const char *merchant_id, int64_t due_at) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_int(&p, due_at);
    return db_exec(db,
                   "INSERT INTO referral_release_due (merchant_id, due_at) "
                   "VALUES ($1, to_timestamp($2)) ON CONFLICT (merchant_id) DO UPDATE "
                   "SET due_at = LEAST(referral_release_due.due_at, excluded.due_at)",
                   &p, NULL);
}

status_t gw_store_take_referral_due(db_t *db, arena_t *a, char **merchant_id, bool *found) {
    PGresult *r = NULL;
    status_t st = db_exec(db,
                          "DELETE FROM referral_release_due WHERE merchant_id = ("
                          " SELECT merchant_id FROM referral_release_due WHERE due_at <= now() "
                          " ORDER BY due_at LIMIT 1 FOR UPDATE SKIP LOCKED) "
                          "RETURNING merchant_id",
                          NULL, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    *found = PQntuples(r) == 1;
    if (*found) {
        *merchant_id = arena_strdup(a, db_get_str(r, 0, 0));
    }
    PQclear(r);
    return status_ok();
}

/* ---- retention ---- */

status_t gw_store_drop_old_steps(db_t *db, int64_t days, int64_t batch, int64_t *dropped) {
    db_params_t p;
    db_params_init(&p);
    db_param_int(&p, days);
    db_param_int(&p, batch);
    PGresult *r = NULL;
    /* Oldest first by creation (a saga finishes after it is created, so every saga finished
     * before the cutoff was created before it); each saga is done once (steps_dropped), so a
     * batch never meets the same sagas again. */
    status_t st = db_exec(db,
                          "WITH old AS (UPDATE sagas s SET steps_dropped = true, "
                          " steps = CASE WHEN s.steps IS NOT NULL THEN '{}'::saga_step[] END FROM ("
                          "  SELECT merchant_id, id FROM sagas "
                          "  WHERE state IN (4, 6) AND NOT steps_dropped "
                          "  AND created_at < now() - make_interval(days => $1::int) "
                          "  AND updated_at < now() - make_interval(days => $1::int) "
                          "  ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED) o "
                          " WHERE s.merchant_id = o.merchant_id AND s.id = o.id "
                          " RETURNING s.merchant_id, s.id), "
                          "gone AS (DELETE FROM saga_steps st USING old "
                          " WHERE st.merchant_id = old.merchant_id AND st.saga_id = old.id) "
                          "SELECT count(*) FROM old",
                          &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    *dropped = db_get_int(r, 0, 0);
    PQclear(r);
    return status_ok();
}
