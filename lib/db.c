/* db.c -- libpq connection, prepared-statement cache, error mapping, transactions, migrations. */
#include "db.h"

#include "log.h"

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
} db_stmt_t;

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
    int stmt_count;
    db_stmt_t stmts[DB_STMT_CACHE_MAX];
    char last_constraint[64];
};

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
        PQfinish(db->conn);
        db->conn = NULL;
    }
    db_stmts_clear(db);
    db->tx_depth = 0;
    db->begin_pending = false;
    db->commit_sql = NULL;
}

void db_destroy(db_t *db) {
    if (db == NULL) {
        return;
    }
    db_disconnect(db);
    free(db->dsn);
    free(db->application_name);
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
static const char *db_stmt_name(db_t *db, const char *sql, int nparams, status_t *st);

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

static const char *db_stmt_name(db_t *db, const char *sql, int nparams, status_t *st) {
    uint64_t h = db_hash(sql);
    size_t mask = DB_STMT_CACHE_MAX - 1;
    for (size_t probe = 0; probe < DB_STMT_CACHE_MAX; probe++) {
        db_stmt_t *s = &db->stmts[(h + probe) & mask];
        if (s->sql == NULL) {
            if (db->stmt_count >= DB_STMT_CACHE_MAX / 2) {
                return NULL; /* keep probes short; run unprepared */
            }
            snprintf(s->name, sizeof s->name, "s%d", db->stmt_count);
            PGresult *r = PQprepare(db->conn, s->name, sql, nparams, NULL);
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
            db->stmt_count++;
            return s->name;
        }
        if (s->hash == h && strcmp(s->sql, sql) == 0) {
            return s->name;
        }
    }
    return NULL;
}

/* Sends the statement in one round trip with what must go with it (libpq pipeline mode): the
 * transaction's pending BEGIN before it, and/or COMMIT after it (db_tx_on_commit). Returns the
 * statement's result, which may be an error (then a COMMIT sent after it did not commit: the
 * transaction is left aborted for db_tx to roll back); NULL when BEGIN failed, COMMIT failed
 * or the connection broke, with *st set. */
static PGresult *db_exec_pipelined(db_t *db, const char *name, const char *sql,
                                   const db_params_t *params, bool with_begin, bool with_commit,
                                   status_t *st) {
    int n = params ? params->n : 0;
    const char *const *values = n ? params->values : NULL;
    const int *lengths = n ? params->lengths : NULL;
    const int *formats = n ? params->formats : NULL;
    bool sent =
        PQenterPipelineMode(db->conn) == 1 &&
        (!with_begin || PQsendQueryParams(db->conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) == 1) &&
        (name != NULL
             ? PQsendQueryPrepared(db->conn, name, n, values, lengths, formats, 0)
             : PQsendQueryParams(db->conn, sql, n, NULL, values, lengths, formats, 0)) == 1 &&
        (!with_commit ||
         PQsendQueryParams(db->conn, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) == 1) &&
        PQpipelineSync(db->conn) == 1;
    if (!sent) {
        *st = db_map_error(db, NULL);
        db_disconnect(db);
        return NULL;
    }
    /* One answer per query, each followed by NULL, then the sync. */
    PGresult *answers[3] = {NULL, NULL, NULL};
    int n_answers = 1 + with_begin + with_commit;
    for (int i = 0; i < n_answers; i++) {
        answers[i] = PQgetResult(db->conn);
        if (answers[i] != NULL) {
            PQclear(PQgetResult(db->conn));
        }
    }
    PGresult *sync = PQgetResult(db->conn);
    bool synced = PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
    PQclear(sync);
    PGresult *begin = with_begin ? answers[0] : NULL;
    PGresult *r = answers[with_begin];
    PGresult *commit = with_commit ? answers[n_answers - 1] : NULL;
    bool r_ok = r != NULL && (PQresultStatus(r) == PGRES_COMMAND_OK ||
                              PQresultStatus(r) == PGRES_TUPLES_OK);
    bool failed = !synced || PQexitPipelineMode(db->conn) != 1 ||
                  (begin != NULL && PQresultStatus(begin) != PGRES_COMMAND_OK) || r == NULL ||
                  (r_ok && commit != NULL && PQresultStatus(commit) != PGRES_COMMAND_OK);
    if (failed) {
        /* BEGIN or COMMIT refused (a serialization failure at commit, say), or the connection
         * broke: nothing of the transaction stands. */
        PGresult *why = begin != NULL && PQresultStatus(begin) == PGRES_FATAL_ERROR ? begin
                        : commit != NULL && PQresultStatus(commit) == PGRES_FATAL_ERROR ? commit
                                                                                        : NULL;
        *st = db_map_error(db, why);
        for (int i = 0; i < n_answers; i++) {
            PQclear(answers[i]);
        }
        if (!synced || db->conn == NULL || PQpipelineStatus(db->conn) != PQ_PIPELINE_OFF) {
            db_disconnect(db);
        }
        return NULL;
    }
    PQclear(begin);
    PQclear(commit);
    return r;
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
    const char *name = prepare ? db_stmt_name(db, sql, n, &st) : NULL;
    if (!status_is_ok(&st)) {
        return st;
    }
    PGresult *r;
    if (db->begin_pending) {
        db->begin_pending = false;
        r = db_exec_pipelined(db, name, sql, params, true, false, &st);
        if (r == NULL) {
            return st;
        }
    } else if (name != NULL) {
        r = PQexecPrepared(db->conn, name, n, n ? params->values : NULL, n ? params->lengths : NULL,
                           n ? params->formats : NULL, 0);
    } else {
        r = PQexecParams(db->conn, sql, n, NULL, n ? params->values : NULL,
                         n ? params->lengths : NULL, n ? params->formats : NULL, 0);
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

/* Ends fn's transaction: COMMIT, sent with the db_tx_on_commit statement when there is one (and
 * with BEGIN when nothing else was sent); nothing at all when the transaction ran nothing. */
static status_t db_commit(db_t *db) {
    if (db->commit_sql == NULL) {
        if (db->begin_pending) {
            db->begin_pending = false;
            return status_ok();
        }
        return db_exec(db, "COMMIT", NULL, NULL);
    }
    if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK) {
        return status_make(STATUS_UNAVAILABLE, "DATABASE_UNAVAILABLE", "database unavailable");
    }
    const char *sql = db->commit_sql;
    const db_params_t *params = &db->commit_params;
    db->last_constraint[0] = '\0';
    status_t st = status_ok();
    const char *name = db_stmt_name(db, sql, params->n, &st);
    if (!status_is_ok(&st)) {
        return st;
    }
    bool with_begin = db->begin_pending;
    PGresult *r = db_exec_pipelined(db, name, sql, params, with_begin, true, &st);
    db->begin_pending = false;
    db->commit_sql = NULL;
    if (r == NULL) {
        return st;
    }
    ExecStatusType rs = PQresultStatus(r);
    if (rs != PGRES_COMMAND_OK && rs != PGRES_TUPLES_OK) {
        st = db_map_error(db, r); /* the COMMIT after it did not commit */
    }
    PQclear(r);
    return st;
}

status_t db_tx(db_t *db, db_tx_fn fn, void *arg) {
    if (db->tx_depth > 0) {
        return fn(db, arg);
    }
    status_t st = status_ok();
    bool reconnected = false;
    for (int attempt = 0; attempt < DB_TX_ATTEMPTS_MAX; attempt++) {
        /* BEGIN is sent with the transaction's first statement (db_exec_pipelined). */
        st = db_connect(db) ? status_ok()
                            : status_make(STATUS_UNAVAILABLE, "DATABASE_UNAVAILABLE",
                                          "database unavailable");
        if (status_is_ok(&st)) {
            db->tx_depth = 1;
            db->begin_pending = true;
            db->commit_sql = NULL;
            st = fn(db, arg);
            if (status_is_ok(&st)) {
                st = db_commit(db);
                if (status_is_ok(&st)) {
                    db->tx_depth = 0;
                    return st;
                }
            }
            bool begun = !db->begin_pending; /* else nothing was sent: nothing to end */
            db->begin_pending = false;
            db->commit_sql = NULL;
            if (!status_is_ok(&st) && begun && db->conn != NULL &&
                PQtransactionStatus(db->conn) != PQTRANS_IDLE) {
                db->tx_depth = 0;
                status_t rb = db_exec(db, "ROLLBACK", NULL, NULL);
                (void)rb; /* a failed rollback leaves the connection bad; the next use resets */
            }
            db->tx_depth = 0;
        }
        bool conflict = st.code == STATUS_ABORTED && strcmp(st.reason, "CONCURRENCY_CONFLICT") == 0;
        bool lost = st.code == STATUS_UNAVAILABLE && !reconnected;
        if (!conflict && !lost) {
            return st;
        }
        reconnected = reconnected || lost;
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
