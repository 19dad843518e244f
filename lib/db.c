/* db.c -- libpq connection, prepared-statement cache, error mapping, transactions, migrations. */
#include "db.h"

#include "log.h"
#include "rpc_metrics.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DB_STMT_CACHE_MAX 256 /* power of two: open addressing */
#define DB_SCHEMA_MAX 64

typedef struct db_stmt {
    uint64_t hash;
    char *sql; /* owned copy; NULL = empty slot */
    char name[16];
    bool generic; /* see db_sql_wants_generic_plan */
} db_stmt_t;

/* Inside a transaction, before the first statement that wants a generic plan. */
#define DB_SET_GENERIC_PLAN "SET LOCAL plan_cache_mode = force_generic_plan"

/* A write waiting for the transaction's next round trip (db_exec_deferred). Its param values
 * live in db->defer_buf (offsets, since the buffer may move; SIZE_MAX = NULL). */
typedef struct db_deferred {
    const char *sql;
    const char *name; /* prepared statement, or NULL: sent unprepared */
    db_params_t params;
    size_t offsets[DB_PARAMS_MAX];
    db_expect_t expect;
} db_deferred_t;

struct db {
    PGconn *conn;
    char *dsn;
    char schema[DB_SCHEMA_MAX];
    char *application_name;
    int64_t statement_timeout_ms;
    int tx_depth;
    /* db_tx opened a transaction whose BEGIN is not sent yet: it goes with the first statement,
     * in one round trip (pipeline mode). */
    bool begin_pending;
    /* db_tx_on_commit: a statement sent together with COMMIT (its params rebased on copy). */
    const char *commit_sql;
    db_params_t commit_params;
    db_deferred_t deferred[DB_DEFERRED_MAX];
    int n_deferred;
    bool deferred_rows_checked; /* some waiting write has a row count to check */
    char *defer_buf;
    size_t defer_len, defer_cap;
    int stmt_count;
    db_stmt_t stmts[DB_STMT_CACHE_MAX];
    bool tx_generic; /* DB_SET_GENERIC_PLAN was sent (or queued) in this transaction */
    char last_constraint[64];
    bool counted_open; /* in loyalty_db_connections_open */
};

static double db_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

db_t *db_create(const char *dsn, const char *schema, const char *application_name,
                int64_t statement_timeout_ms) {
    size_t schema_len = strlen(schema);
    assert(schema_len > 0 && schema_len < DB_SCHEMA_MAX);
    for (size_t i = 0; i < schema_len; i++) {
        assert((schema[i] >= 'a' && schema[i] <= 'z') || schema[i] == '_');
    }
    db_t *db = calloc(1, sizeof *db);
    if (db == NULL) {
        abort();
    }
    db->dsn = strdup(dsn);
    db->application_name = strdup(application_name);
    if (db->dsn == NULL || db->application_name == NULL) {
        abort();
    }
    memcpy(db->schema, schema, schema_len + 1);
    db->statement_timeout_ms = statement_timeout_ms;
    return db;
}

static void db_stmts_clear(db_t *db) {
    for (int i = 0; i < DB_STMT_CACHE_MAX; i++) {
        free(db->stmts[i].sql);
        db->stmts[i].sql = NULL;
    }
    db->stmt_count = 0;
}

static void db_disconnect(db_t *db) {
    if (db->conn != NULL) {
        if (db->counted_open) {
            rpc_metrics_db_connections_open(-1);
            db->counted_open = false;
        }
        PQfinish(db->conn);
        db->conn = NULL;
    }
    db_stmts_clear(db);
    db->tx_depth = 0;
    db->begin_pending = false;
    db->commit_sql = NULL;
    db->n_deferred = 0;
    db->deferred_rows_checked = false;
    db->defer_len = 0;
}

void db_destroy(db_t *db) {
    if (db == NULL) {
        return;
    }
    db_disconnect(db);
    free(db->dsn);
    free(db->application_name);
    free(db->defer_buf);
    free(db);
}

/* Server notices ("already exists, skipping") are not errors: keep them out of stderr. */
static void db_notice(void *arg, const char *message) {
    (void)arg;
    log_msg(LOG_DEBUG, "postgresql notice: %s", message);
}

static bool db_connect(db_t *db) {
    if (db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK) {
        return true;
    }
    db_disconnect(db);
    char options[256];
    snprintf(options, sizeof options, "-c search_path=%s -c statement_timeout=%" PRId64, db->schema,
             db->statement_timeout_ms);
    /* expand_dbname: the DSN is expanded first; the keywords after it override its values. */
    const char *keys[] = {"dbname", "options", "application_name", "connect_timeout", NULL};
    const char *vals[] = {db->dsn, options, db->application_name, "5", NULL};
    db->conn = PQconnectdbParams(keys, vals, 1);
    if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK) {
        log_msg(LOG_WARN, "postgresql unreachable: %s",
                db->conn ? PQerrorMessage(db->conn) : "out of memory");
        db_disconnect(db);
        return false;
    }
    PQsetNoticeProcessor(db->conn, db_notice, NULL);
    rpc_metrics_db_connections_open(1);
    db->counted_open = true;
    return true;
}

bool db_ping(db_t *db) {
    if (!db_connect(db)) {
        return false;
    }
    PGresult *r = PQexec(db->conn, "SELECT 1");
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    if (!ok) {
        db_disconnect(db);
    }
    rpc_metrics_db_up(ok);
    return ok;
}

void db_params_init(db_params_t *p) {
    p->n = 0;
}

static int db_param_slot(db_params_t *p) {
    assert(p->n < DB_PARAMS_MAX);
    int i = p->n++;
    p->lengths[i] = 0;
    p->formats[i] = 0;
    return i;
}

void db_param_text(db_params_t *p, const char *s) {
    int i = db_param_slot(p);
    p->values[i] = s;
}

void db_param_null(db_params_t *p) {
    db_param_text(p, NULL);
}

void db_param_int(db_params_t *p, int64_t v) {
    int i = db_param_slot(p);
    snprintf(p->numbers[i], DB_NUM_MAX, "%" PRId64, v);
    p->values[i] = p->numbers[i];
}

void db_param_bool(db_params_t *p, bool v) {
    int i = db_param_slot(p);
    p->values[i] = v ? "t" : "f";
}

void db_param_bytes(db_params_t *p, const void *data, size_t len) {
    int i = db_param_slot(p);
    assert(len <= INT32_MAX);
    p->values[i] = len ? data : "";
    p->lengths[i] = (int)len;
    p->formats[i] = 1;
}

static uint64_t db_hash(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

/* The prepared statement name for `sql`, preparing it on first use; NULL when the cache is full
 * (the caller then runs the statement unprepared). */
static const char *db_stmt_name(db_t *db, const char *sql, int nparams, status_t *st,
                                bool *generic);
static const char *db_stmt_for_tx(db_t *db, const char *sql, int nparams, status_t *st);

static status_t db_map_error(db_t *db, const PGresult *r) {
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *constraint = r ? PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME) : NULL;
    snprintf(db->last_constraint, sizeof db->last_constraint, "%s", constraint ? constraint : "");
    if (state == NULL && db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK) {
        /* Refused by libpq itself (e.g. a parameter count that does not match the statement):
         * a bug in the caller, not an outage. */
        log_msg(LOG_ERROR, "postgresql client error: %s", PQerrorMessage(db->conn));
        return status_make(STATUS_INTERNAL, "DATABASE_ERROR", "database error");
    }
    if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK || state == NULL ||
        strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0) {
        log_msg(LOG_WARN, "postgresql connection lost: %s",
                db->conn ? PQerrorMessage(db->conn) : "no connection");
        db_disconnect(db);
        return status_make(STATUS_UNAVAILABLE, "DATABASE_UNAVAILABLE", "database unavailable");
    }
    if (strcmp(state, "23505") == 0) {
        return status_make(STATUS_ALREADY_EXISTS, "DUPLICATE", "already exists");
    }
    if (strcmp(state, DB_REFUSE_SQLSTATE) == 0) { /* refuse(reason) in the statement */
        const char *reason = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        return status_make(STATUS_FAILED_PRECONDITION, reason ? reason : "REFUSED",
                           "the statement refused the change");
    }
    if (strcmp(state, "23514") == 0 || strcmp(state, "23503") == 0 || strcmp(state, "23502") == 0) {
        return status_make(STATUS_FAILED_PRECONDITION, "CONSTRAINT_VIOLATION",
                           "the change would break a rule of the data (%s)",
                           constraint ? constraint : state);
    }
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 || strcmp(state, "55P03") == 0) {
        return status_make(STATUS_ABORTED, "CONCURRENCY_CONFLICT",
                           "concurrent update, safe to retry");
    }
    if (strcmp(state, "57014") == 0) {
        return status_make(STATUS_DEADLINE_EXCEEDED, "STATEMENT_TIMEOUT",
                           "database statement timed out");
    }
    if (strncmp(state, "22", 2) == 0) {
        log_msg(LOG_WARN, "postgresql data exception %s: %s", state, PQresultErrorMessage(r));
        return status_make(STATUS_INVALID_ARGUMENT, "INVALID_VALUE", "a value is out of range");
    }
    log_msg(LOG_ERROR, "postgresql error %s: %s", state, PQresultErrorMessage(r));
    return status_make(STATUS_INTERNAL, "DATABASE_ERROR", "database error");
}

/* Statements over parameter arrays (unnest) are where PostgreSQL's plan cache goes wrong on the
 * hot paths: the generic plan's estimate of an array of unknown length loses against each call's
 * custom plan, so such a statement is planned again on every call (the wallet's ledger flush
 * spent as long planning as running). Their plans do not depend on the arrays' contents (every
 * target is reached through a key), so inside a transaction they run under a generic plan. */
static bool db_sql_wants_generic_plan(const char *sql) {
    return strstr(sql, "unnest(") != NULL;
}

static const char *db_stmt_name(db_t *db, const char *sql, int nparams, status_t *st,
                                bool *generic) {
    *generic = false;
    uint64_t h = db_hash(sql);
    size_t mask = DB_STMT_CACHE_MAX - 1;
    for (size_t probe = 0; probe < DB_STMT_CACHE_MAX; probe++) {
        db_stmt_t *s = &db->stmts[(h + probe) & mask];
        if (s->sql == NULL) {
            if (db->stmt_count >= DB_STMT_CACHE_MAX / 2) {
                return NULL; /* keep probes short; run unprepared */
            }
            snprintf(s->name, sizeof s->name, "s%d", db->stmt_count);
            double start_s = db_now_s();
            PGresult *r = PQprepare(db->conn, s->name, sql, nparams, NULL);
            rpc_metrics_db_round_trip(db_now_s() - start_s);
            if (PQresultStatus(r) != PGRES_COMMAND_OK) {
                *st = db_map_error(db, r);
                PQclear(r);
                return NULL;
            }
            PQclear(r);
            s->sql = strdup(sql);
            if (s->sql == NULL) {
                abort();
            }
            s->hash = h;
            s->generic = db_sql_wants_generic_plan(sql);
            db->stmt_count++;
            *generic = s->generic;
            return s->name;
        }
        if (s->hash == h && strcmp(s->sql, sql) == 0) {
            *generic = s->generic;
            return s->name;
        }
    }
    return NULL;
}

/* The round trip's queries: the transaction's pending BEGIN, the deferred writes, the
 * statement, the COMMIT. */
typedef enum { DB_Q_BEGIN, DB_Q_DEFERRED, DB_Q_STMT, DB_Q_COMMIT } db_query_kind_t;

typedef struct db_query {
    db_query_kind_t kind;
    const char *name; /* prepared statement, or NULL */
    const char *sql;
    const db_params_t *params;
    const db_deferred_t *deferred;
} db_query_t;

#define DB_ROUND_TRIP_MAX (DB_DEFERRED_MAX + 3)

static bool db_send(db_t *db, const db_query_t *q) {
    int n = q->params ? q->params->n : 0;
    const char *const *values = n ? q->params->values : NULL;
    const int *lengths = n ? q->params->lengths : NULL;
    const int *formats = n ? q->params->formats : NULL;
    return (q->name != NULL
                ? PQsendQueryPrepared(db->conn, q->name, n, values, lengths, formats, 0)
                : PQsendQueryParams(db->conn, q->sql, n, NULL, values, lengths, formats, 0)) == 1;
}

/* Points the waiting writes' values at the buffer (it may have moved since they were queued). */
static void db_deferred_rebase(db_t *db) {
    for (int i = 0; i < db->n_deferred; i++) {
        db_deferred_t *d = &db->deferred[i];
        for (int k = 0; k < d->params.n; k++) {
            d->params.values[k] = d->offsets[k] == SIZE_MAX ? NULL : db->defer_buf + d->offsets[k];
        }
    }
}

static void db_deferred_clear(db_t *db) {
    db->n_deferred = 0;
    db->deferred_rows_checked = false;
    db->defer_len = 0;
}

/* A deferred write's answer: its error, or its refusal when `expect` says no. */
static status_t db_deferred_check(db_t *db, const db_deferred_t *d, const PGresult *r) {
    ExecStatusType rs = PQresultStatus(r);
    if (rs != PGRES_COMMAND_OK && rs != PGRES_TUPLES_OK) {
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        status_t st = db_map_error(db, r);
        bool refused = state != NULL && strcmp(state, DB_REFUSE_SQLSTATE) == 0 &&
                       d->expect.refusal.code != STATUS_OK;
        if (refused || (st.code == STATUS_ALREADY_EXISTS && d->expect.constraint != NULL &&
                        strcmp(db->last_constraint, d->expect.constraint) == 0)) {
            return d->expect.refusal;
        }
        return st;
    }
    if (d->expect.rows >= 0 && atoi(PQcmdTuples((PGresult *)r)) != d->expect.rows) {
        return d->expect.refusal;
    }
    return status_ok();
}

/* One round trip (libpq pipeline mode): the pending BEGIN, the deferred writes, the statement
 * (when sql is not NULL) and COMMIT (when with_commit), in that order. On OK *out (when not
 * NULL) receives the statement's result for the caller to PQclear. Otherwise the error of the
 * first part that failed: BEGIN, a deferred write (or its refusal), the statement, or the COMMIT
 * after it. After a failure the transaction is left for db_tx to roll back (PostgreSQL skips
 * the rest of the pipeline, so a COMMIT sent after a failed part did not commit); when the
 * connection broke it is dropped. */
static status_t db_round_trip(db_t *db, const char *name, const char *sql,
                              const db_params_t *params, bool with_commit, PGresult **out) {
    if (out != NULL) {
        *out = NULL;
    }
    db_query_t q[DB_ROUND_TRIP_MAX];
    int n = 0;
    if (db->begin_pending) {
        q[n++] = (db_query_t){.kind = DB_Q_BEGIN, .sql = "BEGIN"};
    }
    db_deferred_rebase(db);
    for (int i = 0; i < db->n_deferred; i++) {
        const db_deferred_t *d = &db->deferred[i];
        q[n++] = (db_query_t){.kind = DB_Q_DEFERRED,
                              .name = d->name,
                              .sql = d->sql,
                              .params = &d->params,
                              .deferred = d};
    }
    if (sql != NULL) {
        q[n++] = (db_query_t){.kind = DB_Q_STMT, .name = name, .sql = sql, .params = params};
    }
    if (with_commit) {
        q[n++] = (db_query_t){.kind = DB_Q_COMMIT, .sql = "COMMIT"};
    }
    db->begin_pending = false;
    double start_s = db_now_s();
    bool sent = PQenterPipelineMode(db->conn) == 1;
    for (int i = 0; i < n && sent; i++) {
        sent = db_send(db, &q[i]);
    }
    sent = sent && PQpipelineSync(db->conn) == 1;
    PGresult *answers[DB_ROUND_TRIP_MAX] = {NULL};
    bool synced = false;
    if (sent) {
        /* One answer per query, each followed by NULL, then the sync. */
        for (int i = 0; i < n; i++) {
            answers[i] = PQgetResult(db->conn);
            if (answers[i] != NULL) {
                PQclear(PQgetResult(db->conn));
            }
        }
        PGresult *sync = PQgetResult(db->conn);
        synced = PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
        PQclear(sync);
    }
    rpc_metrics_db_round_trip(db_now_s() - start_s);
    status_t st = status_ok();
    if (!synced || PQexitPipelineMode(db->conn) != 1) {
        st = db_map_error(db, NULL);
    }
    PGresult *stmt = NULL;
    for (int i = 0; i < n && status_is_ok(&st); i++) {
        PGresult *r = answers[i];
        ExecStatusType rs = PQresultStatus(r);
        if (r == NULL) {
            st = db_map_error(db, NULL);
        } else if (q[i].kind == DB_Q_DEFERRED) {
            st = db_deferred_check(db, q[i].deferred, r);
        } else if (rs != PGRES_COMMAND_OK && rs != PGRES_TUPLES_OK) {
            st = db_map_error(db, r);
        } else if (q[i].kind == DB_Q_STMT) {
            stmt = r;
            answers[i] = NULL; /* kept for the caller */
        }
    }
    for (int i = 0; i < n; i++) {
        PQclear(answers[i]);
    }
    db_deferred_clear(db);
    if (db->conn != NULL && PQpipelineStatus(db->conn) != PQ_PIPELINE_OFF) {
        db_disconnect(db);
    }
    if (!status_is_ok(&st) || out == NULL) {
        PQclear(stmt);
        return st;
    }
    *out = stmt;
    return st;
}

static status_t db_exec_once(db_t *db, const char *sql, const db_params_t *params, PGresult **out,
                             bool prepare) {
    if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK) {
        if (db->tx_depth > 0) { /* the transaction died with the old connection */
            return status_make(STATUS_UNAVAILABLE, "DATABASE_UNAVAILABLE", "database unavailable");
        }
        if (!db_connect(db)) {
            return status_make(STATUS_UNAVAILABLE, "DATABASE_UNAVAILABLE", "database unavailable");
        }
    }
    int n = params ? params->n : 0;
    status_t st = status_ok();
    const char *name = prepare ? db_stmt_for_tx(db, sql, n, &st) : NULL;
    if (!status_is_ok(&st)) {
        return st;
    }
    if (db->begin_pending || db->n_deferred > 0) {
        return db_round_trip(db, name, sql, params, false, out);
    }
    PGresult *r;
    bool alone = db->tx_depth == 0; /* else the transaction holds the connection already */
    if (alone) {
        rpc_metrics_db_connections_in_use(1);
    }
    double start_s = db_now_s();
    if (name != NULL) {
        r = PQexecPrepared(db->conn, name, n, n ? params->values : NULL, n ? params->lengths : NULL,
                           n ? params->formats : NULL, 0);
    } else {
        r = PQexecParams(db->conn, sql, n, NULL, n ? params->values : NULL,
                         n ? params->lengths : NULL, n ? params->formats : NULL, 0);
    }
    rpc_metrics_db_round_trip(db_now_s() - start_s);
    if (alone) {
        rpc_metrics_db_connections_in_use(-1);
    }
    ExecStatusType rs = PQresultStatus(r);
    if (rs != PGRES_COMMAND_OK && rs != PGRES_TUPLES_OK) {
        st = db_map_error(db, r);
        PQclear(r);
        return st;
    }
    if (out) {
        *out = r;
    } else {
        PQclear(r);
    }
    return status_ok();
}

static status_t db_exec_mode(db_t *db, const char *sql, const db_params_t *params, PGresult **out,
                             bool prepare) {
    if (out) {
        *out = NULL;
    }
    db->last_constraint[0] = '\0';
    bool in_tx = db->tx_depth > 0;
    status_t st = db_exec_once(db, sql, params, out, prepare);
    /* Outside a transaction a statement is a read (writes always run in db_tx), so after a
     * lost connection (server restart, idle timeout, failover) it is safe to run it once more
     * on a new connection. Inside one, db_tx retries the whole transaction instead. */
    if (!in_tx && st.code == STATUS_UNAVAILABLE && strcmp(st.reason, "DATABASE_UNAVAILABLE") == 0 &&
        strcmp(sql, "BEGIN") != 0 && strcmp(sql, "COMMIT") != 0) {
        st = db_exec_once(db, sql, params, out, prepare);
    }
    return st;
}

status_t db_exec(db_t *db, const char *sql, const db_params_t *params, PGresult **out) {
    return db_exec_mode(db, sql, params, out, true);
}

status_t db_exec_custom_plan(db_t *db, const char *sql, const db_params_t *params, PGresult **out) {
    return db_exec_mode(db, sql, params, out, false);
}

status_t db_exec_row(db_t *db, const char *sql, const db_params_t *params, PGresult **out,
                     status_code_t missing_code, const char *missing_reason,
                     const char *missing_message) {
    status_t st = db_exec(db, sql, params, out);
    if (status_is_ok(&st) && PQntuples(*out) != 1) {
        PQclear(*out);
        *out = NULL;
        return status_make(missing_code, missing_reason, "%s", missing_message);
    }
    return st;
}

status_t db_exec_script(db_t *db, const char *sql) {
    assert(!db->begin_pending); /* scripts are migrations, never inside db_tx */
    if (!db_connect(db)) {
        return status_make(STATUS_UNAVAILABLE, "DATABASE_UNAVAILABLE", "database unavailable");
    }
    PGresult *r = PQexec(db->conn, sql);
    ExecStatusType rs = PQresultStatus(r);
    status_t st = status_ok();
    if (rs != PGRES_COMMAND_OK && rs != PGRES_TUPLES_OK) {
        st = db_map_error(db, r);
    }
    PQclear(r);
    return st;
}

const char *db_last_constraint(const db_t *db) {
    return db->last_constraint;
}

const char *db_get_str(const PGresult *r, int row, int col) {
    return PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col);
}

int64_t db_get_int(const PGresult *r, int row, int col) {
    if (PQgetisnull(r, row, col)) {
        return 0;
    }
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

bool db_get_bool(const PGresult *r, int row, int col) {
    return !PQgetisnull(r, row, col) && PQgetvalue(r, row, col)[0] == 't';
}

bool db_is_null(const PGresult *r, int row, int col) {
    return PQgetisnull(r, row, col) != 0;
}

bool db_in_tx(const db_t *db) {
    return db->tx_depth > 0;
}

static void db_backoff(int attempt) {
    /* 1..4 ms times the attempt: enough to let the winner of a row lock commit. */
    unsigned int seed = (unsigned int)(uintptr_t)&attempt ^ (unsigned int)time(NULL);
    long us = (long)(1000 + rand_r(&seed) % 3000) * (attempt + 1);
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
}

status_t db_tx_on_commit(db_t *db, const char *sql, const db_params_t *params) {
    assert(db->tx_depth > 0 && db->commit_sql == NULL);
    db->commit_sql = sql;
    db_params_init(&db->commit_params);
    if (params != NULL) {
        db->commit_params = *params;
        /* Numbers live inside the struct: point the copy at its own. */
        for (int i = 0; i < params->n; i++) {
            if (params->values[i] == params->numbers[i]) {
                db->commit_params.values[i] = db->commit_params.numbers[i];
            }
        }
    }
    return status_ok();
}

/* Queues a write for the next round trip (db_exec_deferred); `name` NULL: sent unprepared. */
static status_t db_defer(db_t *db, const char *sql, const char *name, const db_params_t *params,
                         const db_expect_t *expect) {
    if (db->n_deferred == DB_DEFERRED_MAX) {
        status_t st = db_round_trip(db, NULL, NULL, NULL, false, NULL);
        if (!status_is_ok(&st)) {
            return st;
        }
    }
    int n = params ? params->n : 0;
    db_deferred_t *d = &db->deferred[db->n_deferred];
    d->sql = sql;
    d->name = name;
    d->expect = expect ? *expect : (db_expect_t){.rows = -1};
    db_params_init(&d->params);
    for (int i = 0; i < n; i++) {
        const char *v = params->values[i];
        size_t len = v == NULL            ? 0
                     : params->formats[i] ? (size_t)params->lengths[i]
                                          : strlen(v) + 1;
        d->params.values[i] = NULL;
        d->params.lengths[i] = params->lengths[i];
        d->params.formats[i] = params->formats[i];
        d->offsets[i] = SIZE_MAX;
        if (v == NULL) {
            continue;
        }
        if (db->defer_len + len > db->defer_cap) {
            size_t cap = db->defer_cap ? db->defer_cap : 4096;
            while (cap < db->defer_len + len) {
                cap *= 2;
            }
            char *grown = realloc(db->defer_buf, cap);
            if (grown == NULL) {
                abort();
            }
            db->defer_buf = grown;
            db->defer_cap = cap;
        }
        memcpy(db->defer_buf + db->defer_len, v, len);
        d->offsets[i] = db->defer_len;
        db->defer_len += len;
    }
    d->params.n = n;
    db->deferred_rows_checked |= d->expect.rows >= 0;
    db->n_deferred++;
    return status_ok();
}

/* Once per transaction, before its first statement that wants a generic plan: the SET travels
 * in the round trip of that statement and ends with the transaction. */
static status_t db_plan_generic(db_t *db) {
    if (db->tx_depth == 0 || db->tx_generic) {
        return status_ok();
    }
    db->tx_generic = true;
    return db_defer(db, DB_SET_GENERIC_PLAN, NULL, NULL, NULL);
}

/* The prepared statement for `sql` (db_stmt_name), with the generic-plan SET queued first when
 * the statement wants it and the transaction has not sent it yet. */
static const char *db_stmt_for_tx(db_t *db, const char *sql, int nparams, status_t *st) {
    bool generic = false;
    const char *name = db_stmt_name(db, sql, nparams, st, &generic);
    if (status_is_ok(st) && name != NULL && generic) {
        *st = db_plan_generic(db);
    }
    return name;
}

status_t db_exec_deferred(db_t *db, const char *sql, const db_params_t *params,
                          const db_expect_t *expect) {
    assert(db->tx_depth > 0); /* writes run in db_tx */
    if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK) {
        return status_make(STATUS_UNAVAILABLE, "DATABASE_UNAVAILABLE", "database unavailable");
    }
    status_t st = status_ok();
    const char *name = db_stmt_for_tx(db, sql, params ? params->n : 0, &st);
    if (!status_is_ok(&st)) {
        return st;
    }
    return db_defer(db, sql, name, params, expect);
}

/* Ends fn's transaction: COMMIT, sent with the deferred writes and the db_tx_on_commit statement
 * (and BEGIN when nothing else was sent); nothing at all when the transaction ran nothing. A
 * deferred write whose row count is checked goes in a round trip of its own first: that check is
 * made here, not by PostgreSQL, so a COMMIT behind it would commit whatever it says. */
static status_t db_commit(db_t *db) {
    if (db->commit_sql == NULL && db->n_deferred == 0) {
        if (db->begin_pending) {
            db->begin_pending = false;
            return status_ok();
        }
        return db_exec(db, "COMMIT", NULL, NULL);
    }
    if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK) {
        return status_make(STATUS_UNAVAILABLE, "DATABASE_UNAVAILABLE", "database unavailable");
    }
    db->last_constraint[0] = '\0';
    status_t st = status_ok();
    if (db->deferred_rows_checked) {
        st = db_round_trip(db, NULL, NULL, NULL, false, NULL);
        if (!status_is_ok(&st)) {
            return st;
        }
    }
    const char *sql = db->commit_sql;
    const db_params_t *params = &db->commit_params;
    const char *name = sql ? db_stmt_for_tx(db, sql, params->n, &st) : NULL;
    if (!status_is_ok(&st)) {
        return st;
    }
    db->commit_sql = NULL;
    return db_round_trip(db, name, sql, sql ? params : NULL, true, NULL);
}

status_t db_tx(db_t *db, db_tx_fn fn, void *arg) {
    if (db->tx_depth > 0) {
        return fn(db, arg);
    }
    status_t st = status_ok();
    bool reconnected = false;
    for (int attempt = 0; attempt < DB_TX_ATTEMPTS_MAX; attempt++) {
        /* BEGIN is sent with the transaction's first statement (db_round_trip). */
        st = db_connect(db)
                 ? status_ok()
                 : status_make(STATUS_UNAVAILABLE, "DATABASE_UNAVAILABLE", "database unavailable");
        if (status_is_ok(&st)) {
            db->tx_depth = 1;
            db->tx_generic = false;
            db->begin_pending = true;
            db->commit_sql = NULL;
            rpc_metrics_db_transaction();
            rpc_metrics_db_connections_in_use(1);
            st = fn(db, arg);
            if (status_is_ok(&st)) {
                st = db_commit(db);
                if (status_is_ok(&st)) {
                    db->tx_depth = 0;
                    rpc_metrics_db_connections_in_use(-1);
                    return st;
                }
            }
            bool begun = !db->begin_pending; /* else nothing was sent: nothing to end */
            db->begin_pending = false;
            db->commit_sql = NULL;
            db_deferred_clear(db);
            if (!status_is_ok(&st) && begun && db->conn != NULL &&
                PQtransactionStatus(db->conn) != PQTRANS_IDLE) {
                db->tx_depth = 0;
                char constraint[sizeof db->last_constraint]; /* the failure's, not ROLLBACK's */
                memcpy(constraint, db->last_constraint, sizeof constraint);
                status_t rb = db_exec(db, "ROLLBACK", NULL, NULL);
                (void)rb; /* a failed rollback leaves the connection bad; the next use resets */
                memcpy(db->last_constraint, constraint, sizeof constraint);
            }
            db->tx_depth = 0;
            rpc_metrics_db_connections_in_use(-1);
        }
        bool conflict = st.code == STATUS_ABORTED && strcmp(st.reason, "CONCURRENCY_CONFLICT") == 0;
        bool lost = st.code == STATUS_UNAVAILABLE && !reconnected;
        if (!conflict && !lost) {
            return st;
        }
        reconnected = reconnected || lost;
        if (conflict) {
            rpc_metrics_db_serialization_retry();
        }
        db_backoff(attempt);
    }
    return st;
}

static status_t db_migrate_table(db_t *db, const embed_file_t *table, const char *origin) {
    for (const embed_file_t *m = table; m && m->name; m++) {
        char id[256];
        snprintf(id, sizeof id, "%s/%s", origin, m->name);
        db_params_t p;
        db_params_init(&p);
        db_param_text(&p, id);
        PGresult *r = NULL;
        status_t st = db_exec(db, "SELECT 1 FROM schema_migrations WHERE id = $1", &p, &r);
        if (!status_is_ok(&st)) {
            return st;
        }
        bool applied = PQntuples(r) > 0;
        PQclear(r);
        if (applied) {
            continue;
        }
        st = db_exec(db, "BEGIN", NULL, NULL);
        db->tx_depth = 1; /* so that nothing below is retried outside the transaction */
        if (status_is_ok(&st)) {
            st = db_exec_script(db, (const char *)m->data);
        }
        if (status_is_ok(&st)) {
            st = db_exec(db, "INSERT INTO schema_migrations (id) VALUES ($1)", &p, NULL);
        }
        if (status_is_ok(&st)) {
            st = db_exec(db, "COMMIT", NULL, NULL);
        }
        db->tx_depth = 0;
        if (!status_is_ok(&st)) {
            log_msg(LOG_ERROR, "migration %s failed: %s", id, st.message);
            if (db->conn) {
                (void)db_exec_script(db, "ROLLBACK");
            }
            return st;
        }
        log_msg(LOG_INFO, "migration %s applied", id);
    }
    return status_ok();
}

status_t db_migrate(db_t *db, const embed_file_t *runtime_migrations,
                    const embed_file_t *service_migrations) {
    if (!db_connect(db)) {
        return status_make(STATUS_UNAVAILABLE, "DATABASE_UNAVAILABLE", "database unavailable");
    }
    char lock_key[96];
    snprintf(lock_key, sizeof lock_key, "loyalty-migrate:%s", db->schema);
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, lock_key);
    status_t st = db_exec(db, "SELECT pg_advisory_lock(hashtext($1))", &p, NULL);
    if (!status_is_ok(&st)) {
        return st;
    }
    /* The schema name was checked in db_create to be [a-z_]+, so it is a safe identifier. */
    char ddl[512];
    snprintf(ddl, sizeof ddl,
             "CREATE SCHEMA IF NOT EXISTS %s; "
             "CREATE TABLE IF NOT EXISTS %s.schema_migrations ("
             " id text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
             db->schema, db->schema);
    st = db_exec_script(db, ddl);
    if (status_is_ok(&st)) {
        st = db_migrate_table(db, runtime_migrations, "runtime");
    }
    if (status_is_ok(&st)) {
        st = db_migrate_table(db, service_migrations, db->schema);
    }
    if (db->conn != NULL) {
        status_t unlock = db_exec(db, "SELECT pg_advisory_unlock(hashtext($1))", &p, NULL);
        (void)unlock; /* released with the session anyway */
    }
    return st;
}
