/* db.c -- libpq connections (a handle's own, or a process pool's), prepared-statement cache,
 * error mapping, transactions, migrations; the session-free mode for a transaction pooler. */
#include "db.h"

#include "db_rowset.h"
#include "log.h"
#include "rpc_metrics.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DB_STMT_CACHE_MAX 256 /* power of two: open addressing */
#define DB_SCHEMA_MAX 64
#define DB_FLUSH_POLL_MS 5
/* The WAL writer flushes asynchronous commits within 3 x wal_writer_delay (200 ms by default). */
#define DB_DURABLE_WAIT_MS 5000

typedef struct db_stmt {
    uint64_t hash;
    char *sql; /* owned copy; NULL = empty slot */
    char name[16];
    bool generic; /* see db_sql_wants_generic_plan */
} db_stmt_t;

/* db_tx_part's savepoint: queued before its first statement, released with its end. */
#define DB_PART_BEGIN "SAVEPOINT loyalty_part"
#define DB_PART_END "RELEASE SAVEPOINT loyalty_part"
#define DB_PART_UNDO "ROLLBACK TO SAVEPOINT loyalty_part"
/* Inside a transaction, before the first statement that wants a generic plan. */
#define DB_SET_GENERIC_PLAN "SET LOCAL plan_cache_mode = force_generic_plan"
/* After BEGIN, in a transaction of a handle set to db_set_commit_async. */
#define DB_SET_COMMIT_ASYNC "SET LOCAL synchronous_commit = off"

/* One connection and the statements prepared on it (they live as long as it does). */
typedef struct db_conn {
    PGconn *pg;
    int stmt_count;
    db_stmt_t stmts[DB_STMT_CACHE_MAX];
    bool counted_open; /* in loyalty_db_connections_open */
    /* The session's synchronous_commit is off (db_session_commit_mode); false on a new one. */
    bool session_commit_async;
    /* A SET of it to send with the next round trip (session_set_queued), or sent in a
     * transaction that has not ended yet (session_set_sent): it holds once that commits. */
    bool session_set_queued, session_set_sent, session_set_async;
} db_conn_t;

struct db_pool {
    char *dsn;
    char schema[DB_SCHEMA_MAX];
    char *application_name;
    int64_t statement_timeout_ms;
    bool pooler;
    /* Through a pooler: the session settings, sent in every transaction or lone statement. */
    char set_search_path[DB_SCHEMA_MAX + 32]; /* SET LOCAL, after BEGIN */
    char set_timeout[64];                     /* SET LOCAL, after BEGIN */
    char set_both[DB_SCHEMA_MAX + 128];       /* set_config(.., true), before a lone statement */
    int size;                                 /* 0: each handle keeps a connection of its own */
    int64_t wait_ms;
    pthread_mutex_t mu;
    pthread_cond_t freed;
    db_conn_t *conns; /* size of them */
    db_conn_t **idle; /* a stack of the free ones */
    int n_idle;
};

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
    db_pool_t *pool;
    bool owns_pool; /* db_create: destroyed with the handle */
    db_conn_t own;  /* the handle's connection when the pool has size 0 */
    db_conn_t *c;   /* the connection held now (a statement or transaction runs), or NULL */
    int tx_depth;
    /* db_tx opened a transaction whose BEGIN is not sent yet: it goes with the first statement,
     * in one round trip (pipeline mode). */
    bool begin_pending;
    /* db_tx_on_commit: a statement sent together with COMMIT (its params rebased on copy). */
    const char *commit_sql;
    db_params_t commit_params;
    PGresult **commit_out; /* db_tx_on_commit_result: where its result goes */
    db_deferred_t deferred[DB_DEFERRED_MAX];
    int n_deferred;
    bool deferred_rows_checked; /* some waiting write has a row count to check */
    char *defer_buf;
    size_t defer_len, defer_cap;
    bool tx_generic;   /* DB_SET_GENERIC_PLAN was sent (or queued) in this transaction */
    bool commit_async; /* db_set_commit_async: transactions begun now skip the wait for the disk */
    bool in_part;      /* db_tx_part runs: "committing" releases its savepoint */
    long round_trips;  /* db_round_trip_all's, so that db_tx_part knows what it sent */
    char last_constraint[64];
    db_rowsets_t rowsets; /* rows collected for one statement each (db_rowset_append) */
};

db_rowsets_t *db_rowsets_of(db_t *db) {
    return &db->rowsets;
}

/* Whether this process ever committed without waiting for the disk (db_async_commits_seen). */
static atomic_bool g_async_commits_seen;

/* The cluster's system identifier, read once (db_cluster_id). */
static struct {
    pthread_mutex_t mu;
    char id[32];
} g_cluster = {PTHREAD_MUTEX_INITIALIZER, ""};

static double db_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The connection held now, or NULL. */
static PGconn *db_pg(const db_t *db) {
    return db->c != NULL ? db->c->pg : NULL;
}

static bool db_up(const db_t *db) {
    return db_pg(db) != NULL && PQstatus(db_pg(db)) == CONNECTION_OK;
}

db_pool_t *db_pool_create(const db_options_t *opts) {
    size_t schema_len = strlen(opts->schema);
    assert(schema_len > 0 && schema_len < DB_SCHEMA_MAX);
    for (size_t i = 0; i < schema_len; i++) {
        assert((opts->schema[i] >= 'a' && opts->schema[i] <= 'z') || opts->schema[i] == '_');
    }
    assert(opts->pool_size >= 0);
    db_pool_t *pool = calloc(1, sizeof *pool);
    if (pool == NULL) {
        abort();
    }
    pool->dsn = strdup(opts->dsn);
    pool->application_name = strdup(opts->application_name);
    if (pool->dsn == NULL || pool->application_name == NULL) {
        abort();
    }
    memcpy(pool->schema, opts->schema, schema_len + 1);
    pool->statement_timeout_ms = opts->statement_timeout_ms;
    pool->pooler = opts->transaction_pooler;
    /* The schema was checked above to be [a-z_]+, so it is a safe identifier and literal. */
    snprintf(pool->set_search_path, sizeof pool->set_search_path, "SET LOCAL search_path TO %s",
             pool->schema);
    snprintf(pool->set_timeout, sizeof pool->set_timeout, "SET LOCAL statement_timeout = %" PRId64,
             pool->statement_timeout_ms);
    snprintf(pool->set_both, sizeof pool->set_both,
             "SELECT set_config('search_path', '%s', true), "
             "set_config('statement_timeout', '%" PRId64 "', true)",
             pool->schema, pool->statement_timeout_ms);
    pool->size = opts->pool_size;
    pool->wait_ms = opts->pool_wait_ms > 0 ? opts->pool_wait_ms : 1000;
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->freed, NULL);
    if (pool->size > 0) {
        pool->conns = calloc((size_t)pool->size, sizeof *pool->conns);
        pool->idle = calloc((size_t)pool->size, sizeof *pool->idle);
        if (pool->conns == NULL || pool->idle == NULL) {
            abort();
        }
        for (int i = 0; i < pool->size; i++) {
            pool->idle[i] = &pool->conns[pool->size - 1 - i];
        }
        pool->n_idle = pool->size;
    }
    return pool;
}

static void db_conn_close(db_conn_t *c) {
    if (c->pg != NULL) {
        if (c->counted_open) {
            rpc_metrics_db_connections_open(-1);
            c->counted_open = false;
        }
        PQfinish(c->pg);
        c->pg = NULL;
    }
    for (int i = 0; i < DB_STMT_CACHE_MAX; i++) {
        free(c->stmts[i].sql);
        c->stmts[i].sql = NULL;
    }
    c->stmt_count = 0;
    c->session_commit_async = false;
    c->session_set_queued = c->session_set_sent = false;
}

void db_pool_destroy(db_pool_t *pool) {
    if (pool == NULL) {
        return;
    }
    assert(pool->n_idle == pool->size); /* every handle gave its connection back */
    for (int i = 0; i < pool->size; i++) {
        db_conn_close(&pool->conns[i]);
    }
    free(pool->conns);
    free(pool->idle);
    pthread_cond_destroy(&pool->freed);
    pthread_mutex_destroy(&pool->mu);
    free(pool->dsn);
    free(pool->application_name);
    free(pool);
}

db_t *db_open(db_pool_t *pool) {
    db_t *db = calloc(1, sizeof *db);
    if (db == NULL) {
        abort();
    }
    db->pool = pool;
    return db;
}

db_t *db_create_with(const db_options_t *opts) {
    db_options_t own = *opts;
    own.pool_size = 0;
    db_t *db = db_open(db_pool_create(&own));
    db->owns_pool = true;
    return db;
}

db_t *db_create(const char *dsn, const char *schema, const char *application_name,
                int64_t statement_timeout_ms) {
    db_options_t opts = {.dsn = dsn,
                         .schema = schema,
                         .application_name = application_name,
                         .statement_timeout_ms = statement_timeout_ms};
    return db_create_with(&opts);
}

/* Takes a connection for this handle: its own, or a free one of the pool, waiting up to the
 * pool's wait for one. A no-op while one is held (a statement inside a transaction). */
static status_t db_acquire(db_t *db) {
    if (db->c != NULL) {
        return status_ok();
    }
    db_pool_t *pool = db->pool;
    if (pool->size == 0) {
        db->c = &db->own;
        return status_ok();
    }
    double start_s = db_now_s();
    pthread_mutex_lock(&pool->mu);
    if (pool->n_idle == 0) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += (time_t)(pool->wait_ms / 1000);
        until.tv_nsec += (long)(pool->wait_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (pool->n_idle == 0) {
            if (pthread_cond_timedwait(&pool->freed, &pool->mu, &until) == ETIMEDOUT) {
                break;
            }
        }
    }
    if (pool->n_idle > 0) {
        db->c = pool->idle[--pool->n_idle];
    }
    pthread_mutex_unlock(&pool->mu);
    rpc_metrics_db_pool_wait(db_now_s() - start_s, db->c != NULL);
    if (db->c == NULL) {
        return status_make(STATUS_UNAVAILABLE, REASON_DB_POOL_EXHAUSTED,
                           "no database connection came free within %" PRId64 " ms", pool->wait_ms);
    }
    return status_ok();
}

/* Gives the held connection back (it stays open for the next borrower). */
static void db_release(db_t *db) {
    db_conn_t *c = db->c;
    if (c == NULL) {
        return;
    }
    db->c = NULL;
    if (c->pg != NULL && PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
        /* A transaction left open (a failed ROLLBACK): never lend it to the next borrower. */
        db_conn_close(c);
    }
    db_pool_t *pool = db->pool;
    if (pool->size == 0) {
        return;
    }
    pthread_mutex_lock(&pool->mu);
    assert(pool->n_idle < pool->size);
    pool->idle[pool->n_idle++] = c;
    pthread_cond_signal(&pool->freed);
    pthread_mutex_unlock(&pool->mu);
}

/* Drops the held connection (lost, or in an unknown state) and what the transaction had queued.
 * A transaction stays open (tx_depth) until its db_tx ends it: whatever its function sends
 * afterwards, a part or a statement, fails as the transaction did (db_ready), and never reaches
 * PostgreSQL on a new connection, where it would run and commit alone. */
static void db_disconnect(db_t *db) {
    if (db->c != NULL) {
        db_conn_close(db->c);
    }
    db->begin_pending = false;
    db->commit_sql = NULL;
    db->n_deferred = 0;
    db->deferred_rows_checked = false;
    db->defer_len = 0;
    db_rowsets_drop(&db->rowsets);
}

void db_destroy(db_t *db) {
    if (db == NULL) {
        return;
    }
    assert(db->c == NULL || db->pool->size == 0);
    db->c = NULL;
    db_conn_close(&db->own);
    if (db->owns_pool) {
        db_pool_destroy(db->pool);
    }
    free(db->defer_buf);
    db_rowsets_free(&db->rowsets);
    free(db);
}

/* Server notices ("already exists, skipping") are not errors: keep them out of stderr. */
static void db_notice(void *arg, const char *message) {
    (void)arg;
    log_msg(LOG_DEBUG, "postgresql notice: %s", message);
}

/* Connects the held connection when it is not up. */
static bool db_connect(db_t *db) {
    assert(db->c != NULL);
    if (db_up(db)) {
        return true;
    }
    db_disconnect(db);
    const db_pool_t *pool = db->pool;
    char options[256];
    /* random_page_cost: the services reach their rows through keys, in tables PostgreSQL keeps in
     * memory, where a random read costs about what a sequential one does (PostgreSQL's own advice
     * for such storage is 1.1). With the default of 4, the generic plan of a statement whose keys
     * come in an array (`= ANY ($2)`, a join to unnest()) costs a table of a few thousand rows
     * cheaper to scan whole than to probe, and keeps scanning it as it grows. */
    snprintf(options, sizeof options,
             "-c search_path=%s -c statement_timeout=%" PRId64 " -c random_page_cost=1.1",
             pool->schema, pool->statement_timeout_ms);
    /* expand_dbname: the DSN is expanded first; the keywords after it override its values.
     * Through a pooler no `options`: PgBouncer refuses the startup parameter, and a setting made
     * there would follow the server connection to other clients. */
    const char *keys[] = {"application_name", "connect_timeout", "dbname",
                          pool->pooler ? NULL : "options", NULL};
    const char *vals[] = {pool->application_name, "5", pool->dsn, options, NULL};
    db_conn_t *c = db->c;
    c->pg = PQconnectdbParams(keys, vals, 1);
    if (c->pg == NULL || PQstatus(c->pg) != CONNECTION_OK) {
        log_msg(LOG_WARN, "postgresql unreachable: %s",
                c->pg ? PQerrorMessage(c->pg) : "out of memory");
        db_disconnect(db);
        return false;
    }
    PQsetNoticeProcessor(c->pg, db_notice, NULL);
    rpc_metrics_db_connections_open(1);
    c->counted_open = true;
    return true;
}

/* Before a transaction or a lone statement on a direct connection: the session's
 * synchronous_commit as the handle wants it (db_set_commit_async). A connection serving saga
 * steps stays off and pays nothing per transaction; the SET goes only when a connection changes
 * hands between such a call and any other, which then waits for the disk as configured (DEFAULT:
 * the server's, the role's or the database's setting). The SET is queued for the round trip that
 * follows (db_round_trip_all), not sent on its own. Through a transaction pooler the session is
 * not ours: the setting travels as SET LOCAL in each transaction instead. */
static void db_session_commit_mode(db_t *db) {
    db_conn_t *c = db->c;
    assert(!c->session_set_sent); /* a transaction's SET is settled when it ends */
    c->session_set_queued = !db->pool->pooler && c->session_commit_async != db->commit_async;
    c->session_set_async = db->commit_async;
    if (c->session_set_queued && db->commit_async) {
        atomic_store(&g_async_commits_seen, true);
    }
}

/* The end of the transaction that carried a queued SET: it holds if that committed. */
static void db_session_settle(db_t *db, bool committed) {
    db_conn_t *c = db->c;
    if (c == NULL || !c->session_set_sent) {
        return;
    }
    c->session_set_sent = false;
    if (committed) {
        c->session_commit_async = c->session_set_async;
    }
}

bool db_ping(db_t *db) {
    status_t st = db_acquire(db);
    if (!status_is_ok(&st)) {
        return true; /* every connection is busy with PostgreSQL (db.h) */
    }
    bool ok = db_connect(db);
    if (ok) {
        PGresult *r = PQexec(db_pg(db), "SELECT 1");
        ok = PQresultStatus(r) == PGRES_TUPLES_OK;
        PQclear(r);
        if (!ok) {
            db_disconnect(db);
        }
    }
    db_release(db);
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
    if (state == NULL && db_up(db)) {
        /* Refused by libpq itself (e.g. a parameter count that does not match the statement):
         * a bug in the caller, not an outage. */
        log_msg(LOG_ERROR, "postgresql client error: %s", PQerrorMessage(db_pg(db)));
        return status_make(STATUS_INTERNAL, REASON_DATABASE_ERROR, "database error");
    }
    if (!db_up(db) || state == NULL || strncmp(state, "08", 2) == 0 ||
        strncmp(state, "57P", 3) == 0) {
        log_msg(LOG_WARN, "postgresql connection lost: %s",
                db_pg(db) ? PQerrorMessage(db_pg(db)) : "no connection");
        db_disconnect(db);
        return status_make(STATUS_UNAVAILABLE, REASON_DATABASE_UNAVAILABLE, "database unavailable");
    }
    if (strcmp(state, "23505") == 0) {
        return status_make(STATUS_ALREADY_EXISTS, REASON_DUPLICATE, "already exists");
    }
    if (strcmp(state, DB_REFUSE_SQLSTATE) == 0) { /* refuse(reason) in the statement */
        const char *reason = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        return status_make_relayed(STATUS_FAILED_PRECONDITION,
                                   reason ? reason : reason_name(REASON_REFUSED),
                                   "the statement refused the change");
    }
    if (strcmp(state, "23514") == 0 || strcmp(state, "23503") == 0 || strcmp(state, "23502") == 0) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_CONSTRAINT_VIOLATION,
                           "the change would break a rule of the data (%s)",
                           constraint ? constraint : state);
    }
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 || strcmp(state, "55P03") == 0) {
        return status_make(STATUS_ABORTED, REASON_CONCURRENCY_CONFLICT,
                           "concurrent update, safe to retry");
    }
    if (strcmp(state, "57014") == 0) {
        return status_make(STATUS_DEADLINE_EXCEEDED, REASON_STATEMENT_TIMEOUT,
                           "database statement timed out");
    }
    if (strncmp(state, "22", 2) == 0) {
        log_msg(LOG_WARN, "postgresql data exception %s: %s", state, PQresultErrorMessage(r));
        return status_make(STATUS_INVALID_ARGUMENT, REASON_INVALID_VALUE,
                           "a value is out of range");
    }
    log_msg(LOG_ERROR, "postgresql error %s: %s", state, PQresultErrorMessage(r));
    return status_make(STATUS_INTERNAL, REASON_DATABASE_ERROR, "database error");
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
    if (db->pool->pooler) {
        /* Through a pooler the next transaction may run on another server connection, where a
         * named statement does not exist: every statement is unnamed, parsed and planned in its
         * own round trip (so the generic-plan SET, which only saves re-planning a named one,
         * is not sent either). */
        return NULL;
    }
    uint64_t h = db_hash(sql);
    size_t mask = DB_STMT_CACHE_MAX - 1;
    for (size_t probe = 0; probe < DB_STMT_CACHE_MAX; probe++) {
        db_stmt_t *s = &db->c->stmts[(h + probe) & mask];
        if (s->sql == NULL) {
            if (db->c->stmt_count >= DB_STMT_CACHE_MAX / 2) {
                return NULL; /* keep probes short; run unprepared */
            }
            snprintf(s->name, sizeof s->name, "s%d", db->c->stmt_count);
            double start_s = db_now_s();
            PGresult *r = PQprepare(db_pg(db), s->name, sql, nparams, NULL);
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
            db->c->stmt_count++;
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

/* A statement without parameters the runtime sends in most transactions (BEGIN, COMMIT, RELEASE,
 * the generic-plan SET): prepared once per connection like any other statement, so that the
 * server does not parse it again each time (about 24 such statements per checkout). NULL: send it
 * unnamed (through a pooler, or when preparing failed: the send then reports the failure). */
static const char *db_fixed_stmt(db_t *db, const char *sql) {
    status_t st = status_ok();
    bool generic = false;
    const char *name = db_stmt_name(db, sql, 0, &st, &generic);
    return status_is_ok(&st) ? name : NULL;
}

/* The round trip's queries: the transaction's pending BEGIN (through a pooler with the SET LOCALs
 * after it, or the set_config before a lone statement), the deferred writes, the statement, the
 * COMMIT. */
typedef enum { DB_Q_BEGIN, DB_Q_DEFERRED, DB_Q_STMT, DB_Q_COMMIT } db_query_kind_t;

typedef struct db_query {
    db_query_kind_t kind;
    const char *name; /* prepared statement, or NULL */
    const char *sql;
    const db_params_t *params;
    const db_deferred_t *deferred;
} db_query_t;

#define DB_ROUND_TRIP_MAX (DB_DEFERRED_MAX + 6)

static bool db_send(db_t *db, const db_query_t *q) {
    int n = q->params ? q->params->n : 0;
    const char *const *values = n ? q->params->values : NULL;
    const int *lengths = n ? q->params->lengths : NULL;
    const int *formats = n ? q->params->formats : NULL;
    return (q->name != NULL
                ? PQsendQueryPrepared(db_pg(db), q->name, n, values, lengths, formats, 0)
                : PQsendQueryParams(db_pg(db), q->sql, n, NULL, values, lengths, formats, 0)) == 1;
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
 * (when sql is not NULL) and COMMIT (when with_commit), in that order. Through a pooler the
 * session settings go first: SET LOCAL after BEGIN, or, outside a transaction, set_config(..,
 * true), which lasts until the round trip's Sync ends its implicit transaction. On OK *out (when
 * not NULL) receives the statement's result for the caller to PQclear. Otherwise the error of the
 * first part that failed: BEGIN, a deferred write (or its refusal), the statement, or the COMMIT
 * after it. After a failure the transaction is left for db_tx to roll back (PostgreSQL skips
 * the rest of the pipeline, so a COMMIT sent after a failed part did not commit); when the
 * connection broke it is dropped. */
static status_t db_round_trip_all(db_t *db, const char *const *names, db_exec_item_t *items,
                                  int n_items, bool with_commit);

static status_t db_round_trip(db_t *db, const char *name, const char *sql,
                              const db_params_t *params, bool with_commit, PGresult **out) {
    db_exec_item_t item = {.sql = sql, .params = params};
    status_t st = db_round_trip_all(db, &name, &item, sql != NULL, with_commit);
    if (out != NULL) {
        *out = item.out;
    } else {
        PQclear(item.out);
    }
    return st;
}

/* db_round_trip with any number of statements (items[i].out gets each one's result on OK). */
static status_t db_round_trip_all(db_t *db, const char *const *names, db_exec_item_t *items,
                                  int n_items, bool with_commit) {
    assert(n_items >= 0 && n_items <= DB_EXEC_ALL_MAX);
    db_query_t q[DB_ROUND_TRIP_MAX + DB_EXEC_ALL_MAX];
    int n = 0;
    const db_pool_t *pool = db->pool;
    const char *session_set = NULL;
    if (db->c->session_set_queued) {
        session_set = db->c->session_set_async ? "SET synchronous_commit = off"
                                               : "SET synchronous_commit TO DEFAULT";
        db->c->session_set_queued = false;
        db->c->session_set_sent = true;
    }
    if (session_set != NULL && !db->begin_pending) { /* a lone statement's, or a transaction's
                                                        first round trip after its BEGIN */
        q[n++] = (db_query_t){.kind = DB_Q_BEGIN, .sql = session_set};
    }
    if (db->begin_pending) {
        q[n++] =
            (db_query_t){.kind = DB_Q_BEGIN, .name = db_fixed_stmt(db, "BEGIN"), .sql = "BEGIN"};
        if (session_set != NULL) {
            q[n++] = (db_query_t){.kind = DB_Q_BEGIN, .sql = session_set};
        }
        if (db->commit_async && pool->pooler) { /* else the session is (db_session_commit_mode) */
            q[n++] = (db_query_t){.kind = DB_Q_BEGIN, .sql = DB_SET_COMMIT_ASYNC};
            atomic_store(&g_async_commits_seen, true);
        }
        if (pool->pooler) {
            /* Utility statements: they take no snapshot, so SET TRANSACTION may still follow. */
            q[n++] = (db_query_t){.kind = DB_Q_BEGIN, .sql = pool->set_search_path};
            q[n++] = (db_query_t){.kind = DB_Q_BEGIN, .sql = pool->set_timeout};
        }
    } else if (pool->pooler && db->tx_depth == 0) {
        q[n++] = (db_query_t){.kind = DB_Q_BEGIN, .sql = pool->set_both};
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
    int first_stmt = n;
    for (int i = 0; i < n_items; i++) {
        q[n++] = (db_query_t){
            .kind = DB_Q_STMT, .name = names[i], .sql = items[i].sql, .params = items[i].params};
    }
    if (with_commit) {
        const char *commit = db->in_part ? DB_PART_END : "COMMIT";
        q[n++] =
            (db_query_t){.kind = DB_Q_COMMIT, .name = db_fixed_stmt(db, commit), .sql = commit};
    }
    db->begin_pending = false;
    db->round_trips++;
    double start_s = db_now_s();
    bool sent = PQenterPipelineMode(db_pg(db)) == 1;
    for (int i = 0; i < n && sent; i++) {
        sent = db_send(db, &q[i]);
    }
    sent = sent && PQpipelineSync(db_pg(db)) == 1;
    PGresult *answers[DB_ROUND_TRIP_MAX + DB_EXEC_ALL_MAX] = {NULL};
    bool synced = false;
    if (sent) {
        /* One answer per query, each followed by NULL, then the sync. */
        for (int i = 0; i < n; i++) {
            answers[i] = PQgetResult(db_pg(db));
            if (answers[i] != NULL) {
                PQclear(PQgetResult(db_pg(db)));
            }
        }
        PGresult *sync = PQgetResult(db_pg(db));
        synced = PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
        PQclear(sync);
    }
    rpc_metrics_db_round_trip(db_now_s() - start_s);
    status_t st = status_ok();
    if (!synced || PQexitPipelineMode(db_pg(db)) != 1) {
        st = db_map_error(db, NULL);
    }
    for (int i = 0; i < n && status_is_ok(&st); i++) {
        PGresult *r = answers[i];
        ExecStatusType rs = PQresultStatus(r);
        if (r == NULL) {
            st = db_map_error(db, NULL);
        } else if (q[i].kind == DB_Q_DEFERRED) {
            st = db_deferred_check(db, q[i].deferred, r);
        } else if (rs != PGRES_COMMAND_OK && rs != PGRES_TUPLES_OK) {
            st = db_map_error(db, r);
        }
    }
    for (int i = 0; i < n_items; i++) {
        items[i].out = status_is_ok(&st) ? answers[first_stmt + i] : NULL;
        if (status_is_ok(&st)) {
            answers[first_stmt + i] = NULL; /* kept for the caller */
        }
    }
    for (int i = 0; i < n; i++) {
        PQclear(answers[i]);
    }
    if (db->tx_depth == 0 || (with_commit && !db->in_part)) { /* it ended its transaction */
        db_session_settle(db, status_is_ok(&st));
    }
    db_deferred_clear(db);
    if (db_pg(db) != NULL && PQpipelineStatus(db_pg(db)) != PQ_PIPELINE_OFF) {
        db_disconnect(db);
    }
    return st;
}

/* Before a statement: a connection (a lone statement may open a new one; a transaction's died
 * with the old one), with the session's commit mode queued for a lone statement. */
static status_t db_ready(db_t *db) {
    if (!db_up(db)) {
        if (db->tx_depth > 0) { /* the transaction died with the old connection */
            return status_make(STATUS_UNAVAILABLE, REASON_DATABASE_UNAVAILABLE,
                               "database unavailable");
        }
        if (!db_connect(db)) {
            return status_make(STATUS_UNAVAILABLE, REASON_DATABASE_UNAVAILABLE,
                               "database unavailable");
        }
    }
    if (db->tx_depth == 0) {
        db_session_commit_mode(db);
    }
    return status_ok();
}

static status_t db_exec_once(db_t *db, const char *sql, const db_params_t *params, PGresult **out,
                             bool prepare) {
    status_t ready = db_ready(db);
    if (!status_is_ok(&ready)) {
        return ready;
    }
    int n = params ? params->n : 0;
    status_t st = status_ok();
    const char *name = prepare ? db_stmt_for_tx(db, sql, n, &st) : NULL;
    if (!status_is_ok(&st)) {
        return st;
    }
    if (db->begin_pending || db->n_deferred > 0 || db->c->session_set_queued) {
        return db_round_trip(db, name, sql, params, false, out);
    }
    PGresult *r;
    bool alone = db->tx_depth == 0; /* else the transaction holds the connection already */
    if (alone) {
        rpc_metrics_db_connections_in_use(1);
    }
    if (alone && db->pool->pooler) { /* with its session settings, in the same round trip */
        st = db_round_trip(db, NULL, sql, params, false, out);
        rpc_metrics_db_connections_in_use(-1);
        return st;
    }
    double start_s = db_now_s();
    if (name != NULL) {
        r = PQexecPrepared(db_pg(db), name, n, n ? params->values : NULL,
                           n ? params->lengths : NULL, n ? params->formats : NULL, 0);
    } else {
        r = PQexecParams(db_pg(db), sql, n, NULL, n ? params->values : NULL,
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
    bool held = db->c != NULL; /* by the transaction; else borrowed for this statement */
    status_t st = held ? status_ok() : db_acquire(db);
    if (!status_is_ok(&st)) {
        return st;
    }
    st = db_exec_once(db, sql, params, out, prepare);
    /* Outside a transaction a statement is a read (writes always run in db_tx), so after a
     * lost connection (server restart, idle timeout, failover) it is safe to run it once more
     * on a new connection. Inside one, db_tx retries the whole transaction instead. */
    if (!in_tx && st.code == STATUS_UNAVAILABLE && strcmp(st.reason, "DATABASE_UNAVAILABLE") == 0 &&
        strcmp(sql, "BEGIN") != 0 && strcmp(sql, "COMMIT") != 0) {
        st = db_exec_once(db, sql, params, out, prepare);
    }
    if (!held) {
        db_release(db);
    }
    return st;
}

status_t db_exec(db_t *db, const char *sql, const db_params_t *params, PGresult **out) {
    return db_exec_mode(db, sql, params, out, true);
}

status_t db_exec_custom_plan(db_t *db, const char *sql, const db_params_t *params, PGresult **out) {
    return db_exec_mode(db, sql, params, out, false);
}

static status_t db_exec_all_once(db_t *db, db_exec_item_t *items, int n) {
    status_t ready = db_ready(db);
    if (!status_is_ok(&ready)) {
        return ready;
    }
    const char *names[DB_EXEC_ALL_MAX];
    status_t st = status_ok();
    for (int i = 0; i < n && status_is_ok(&st); i++) {
        names[i] = db_stmt_for_tx(db, items[i].sql, items[i].params ? items[i].params->n : 0, &st);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    bool alone = db->tx_depth == 0;
    if (alone) {
        rpc_metrics_db_connections_in_use(1);
    }
    st = db_round_trip_all(db, names, items, n, false);
    if (alone) {
        rpc_metrics_db_connections_in_use(-1);
    }
    return st;
}

status_t db_exec_all(db_t *db, db_exec_item_t *items, int n) {
    assert(n > 0 && n <= DB_EXEC_ALL_MAX);
    for (int i = 0; i < n; i++) {
        items[i].out = NULL;
    }
    db->last_constraint[0] = '\0';
    bool in_tx = db->tx_depth > 0;
    bool held = db->c != NULL;
    status_t st = held ? status_ok() : db_acquire(db);
    if (!status_is_ok(&st)) {
        return st;
    }
    st = db_exec_all_once(db, items, n);
    /* Outside a transaction these are reads: once more on a new connection (db_exec_mode). */
    if (!in_tx && st.code == STATUS_UNAVAILABLE && strcmp(st.reason, "DATABASE_UNAVAILABLE") == 0) {
        st = db_exec_all_once(db, items, n);
    }
    if (!held) {
        db_release(db);
    }
    return st;
}

status_t db_time_zone_known(db_t *db, const char *tz, bool *known) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, tz);
    PGresult *r = NULL;
    status_t st =
        db_exec(db, "SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $1)", &p, &r);
    if (status_is_ok(&st)) {
        *known = db_get_bool(r, 0, 0);
        PQclear(r);
    }
    return st;
}

status_t db_exec_row(db_t *db, const char *sql, const db_params_t *params, PGresult **out,
                     status_code_t missing_code, reason_id_t missing_reason,
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
    bool held = db->c != NULL;
    status_t st = held ? status_ok() : db_acquire(db);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (!db_connect(db)) {
        st = status_make(STATUS_UNAVAILABLE, REASON_DATABASE_UNAVAILABLE, "database unavailable");
    } else {
        PGresult *r = PQexec(db_pg(db), sql);
        ExecStatusType rs = PQresultStatus(r);
        if (rs != PGRES_COMMAND_OK && rs != PGRES_TUPLES_OK) {
            st = db_map_error(db, r);
        }
        PQclear(r);
    }
    if (!held) {
        db_release(db);
    }
    return st;
}

const char *db_last_constraint(const db_t *db) {
    return db->last_constraint;
}

const char *db_get_str(const PGresult *r, int row, int col) {
    return PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col);
}

char *db_dup_str(arena_t *a, const PGresult *r, int row, int col) {
    return arena_strdup(a, db_get_str(r, row, col));
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

void db_set_commit_async(db_t *db, bool on) {
    db->commit_async = on;
}

bool db_async_commits_seen(void) {
    return atomic_load(&g_async_commits_seen);
}

const char *db_cluster_id(db_t *db) {
    pthread_mutex_lock(&g_cluster.mu);
    bool known = g_cluster.id[0] != '\0';
    pthread_mutex_unlock(&g_cluster.mu);
    if (!known) {
        PGresult *r = NULL;
        status_t st =
            db_exec(db, "SELECT system_identifier::text FROM pg_control_system()", NULL, &r);
        if (!status_is_ok(&st)) {
            return "";
        }
        pthread_mutex_lock(&g_cluster.mu);
        snprintf(g_cluster.id, sizeof g_cluster.id, "%s", db_get_str(r, 0, 0));
        pthread_mutex_unlock(&g_cluster.mu);
        PQclear(r);
    }
    return g_cluster.id; /* written once, never changed after */
}

status_t db_wait_durable(db_t *db) {
    assert(db->tx_depth == 0);
    /* Every commit so far has its record before the WAL's insert position now. A commit of a
     * transaction that wrote nothing else does not wait for the disk even when synchronous, so
     * this waits for the flush instead: someone's synchronous commit, or the WAL writer. */
    PGresult *r = NULL;
    status_t st = db_exec(db, "SELECT pg_current_wal_insert_lsn()::text", NULL, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    char lsn[32];
    snprintf(lsn, sizeof lsn, "%s", db_get_str(r, 0, 0));
    PQclear(r);
    return db_wait_flushed(db, lsn, DB_DURABLE_WAIT_MS);
}

status_t db_wait_flushed(db_t *db, const char *lsn, int64_t wait_ms_max) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, lsn);
    for (int64_t waited_ms = 0;; waited_ms += DB_FLUSH_POLL_MS) {
        PGresult *r = NULL;
        status_t st = db_exec(db, "SELECT pg_current_wal_flush_lsn() >= $1::pg_lsn", &p, &r);
        if (!status_is_ok(&st)) {
            return st;
        }
        bool flushed = db_get_bool(r, 0, 0);
        PQclear(r);
        if (flushed) {
            return status_ok();
        }
        if (waited_ms >= wait_ms_max) {
            return status_make(STATUS_UNAVAILABLE, REASON_WAL_NOT_FLUSHED,
                               "the WAL up to %s is not on disk yet", lsn);
        }
        struct timespec ts = {0, DB_FLUSH_POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
}

bool db_in_tx(const db_t *db) {
    return db->tx_depth > 0;
}

bool db_tx_lost(const db_t *db) {
    return db->tx_depth > 0 && !db_up(db);
}

static void db_backoff(int attempt) {
    /* 1..4 ms times the attempt: enough to let the winner of a row lock commit. */
    unsigned int seed = (unsigned int)(uintptr_t)&attempt ^ (unsigned int)time(NULL);
    long us = (long)(1000 + rand_r(&seed) % 3000) * (attempt + 1);
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
}

status_t db_tx_on_commit_result(db_t *db, const char *sql, const db_params_t *params,
                                PGresult **out) {
    status_t st = db_tx_on_commit(db, sql, params);
    db->commit_out = out;
    *out = NULL;
    return st;
}

status_t db_tx_on_commit(db_t *db, const char *sql, const db_params_t *params) {
    assert(db->tx_depth > 0 && db->commit_sql == NULL);
    db->commit_out = NULL;
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
    return db_defer(db, DB_SET_GENERIC_PLAN, db_fixed_stmt(db, DB_SET_GENERIC_PLAN), NULL, NULL);
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
    if (!db_up(db)) {
        return status_make(STATUS_UNAVAILABLE, REASON_DATABASE_UNAVAILABLE, "database unavailable");
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
    status_t queued = db_rowsets_queue_all(db, &db->rowsets);
    if (!status_is_ok(&queued)) {
        return queued;
    }
    if (db->commit_sql == NULL && db->n_deferred == 0) {
        if (db->begin_pending) {
            db->begin_pending = false;
            return status_ok();
        }
        return db_exec(db, db->in_part ? DB_PART_END : "COMMIT", NULL, NULL);
    }
    if (!db_up(db)) {
        return status_make(STATUS_UNAVAILABLE, REASON_DATABASE_UNAVAILABLE, "database unavailable");
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
    PGresult **out = db->commit_out;
    db->commit_out = NULL;
    return db_round_trip(db, name, sql, sql ? params : NULL, true, out);
}

status_t db_tx(db_t *db, db_tx_fn fn, void *arg) {
    if (db->tx_depth > 0) {
        return fn(db, arg);
    }
    status_t st = status_ok();
    bool reconnected = false;
    for (int attempt = 0; attempt < DB_TX_ATTEMPTS_MAX; attempt++) {
        /* The connection is held for the whole attempt, and given back between attempts. A
         * pool that stays exhausted ends the transaction at once: the wait was the retry. */
        st = db_acquire(db);
        if (!status_is_ok(&st)) {
            return st;
        }
        /* BEGIN is sent with the transaction's first statement (db_round_trip). */
        st = db_connect(db) ? status_ok()
                            : status_make(STATUS_UNAVAILABLE, REASON_DATABASE_UNAVAILABLE,
                                          "database unavailable");
        if (status_is_ok(&st)) {
            db_session_commit_mode(db);
            db->tx_depth = 1;
            db->tx_generic = false;
            db->in_part = false;
            db->begin_pending = true;
            db->commit_sql = NULL;
            db->commit_out = NULL;
            rpc_metrics_db_transaction();
            rpc_metrics_db_connections_in_use(1);
            st = fn(db, arg);
            if (status_is_ok(&st)) {
                st = db_commit(db);
                if (status_is_ok(&st)) {
                    db_session_settle(db, true);
                    db->tx_depth = 0;
                    rpc_metrics_db_connections_in_use(-1);
                    db_release(db);
                    return st;
                }
            }
            if (db_tx_lost(db) && st.code != STATUS_UNAVAILABLE) {
                /* Its connection died, whatever fn made of that: run it again, as any loss. */
                st = status_make(STATUS_UNAVAILABLE, REASON_DATABASE_UNAVAILABLE,
                                 "database unavailable");
            }
            db_session_settle(db, false);    /* a SET sent in it is rolled back with it */
            bool begun = !db->begin_pending; /* else nothing was sent: nothing to end */
            db->begin_pending = false;
            db->commit_sql = NULL;
            db->commit_out = NULL;
            db_deferred_clear(db);
            db_rowsets_drop(&db->rowsets);
            if (!status_is_ok(&st) && begun && db_pg(db) != NULL &&
                PQtransactionStatus(db_pg(db)) != PQTRANS_IDLE) {
                /* Still "in" the transaction: the ROLLBACK goes alone, never retried, and
                 * without the session settings a pooler would get before a lone statement. */
                char constraint[sizeof db->last_constraint]; /* the failure's, not ROLLBACK's */
                memcpy(constraint, db->last_constraint, sizeof constraint);
                status_t rb = db_exec(db, "ROLLBACK", NULL, NULL);
                (void)rb; /* a failed rollback leaves the connection bad; the next use resets */
                memcpy(db->last_constraint, constraint, sizeof constraint);
            }
            db->tx_depth = 0;
            rpc_metrics_db_connections_in_use(-1);
        }
        db_release(db);
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

/* Undoes a failed part: nothing when its SAVEPOINT never left (it and the part's writes are
 * dropped), else ROLLBACK TO and RELEASE in one round trip. The failure's constraint is kept for
 * the caller (idem_key_taken). */
static status_t db_part_undo(db_t *db, bool sent) {
    db->commit_sql = NULL;
    db->commit_out = NULL;
    db_deferred_clear(db);
    db_rowsets_drop(&db->rowsets);
    if (!sent) {
        return status_ok();
    }
    char constraint[sizeof db->last_constraint];
    memcpy(constraint, db->last_constraint, sizeof constraint);
    status_t st = db_defer(db, DB_PART_UNDO, NULL, NULL, NULL);
    if (status_is_ok(&st)) {
        st = db_round_trip(db, NULL, DB_PART_END, NULL, false, NULL);
    }
    memcpy(db->last_constraint, constraint, sizeof constraint);
    return st;
}

status_t db_tx_part(db_t *db, db_tx_fn fn, void *arg) {
    assert(db->tx_depth > 0 && !db->in_part && db->commit_sql == NULL);
    /* Writes of the transaction's own, not the part's: sent before the part begins. */
    status_t st = db_rowsets_queue_all(db, &db->rowsets);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (db->n_deferred > 0) {
        st = db_round_trip(db, NULL, NULL, NULL, false, NULL);
        if (!status_is_ok(&st)) {
            return st;
        }
    }
    for (int attempt = 0;; attempt++) {
        bool generic = db->tx_generic; /* a SET LOCAL in the part is undone with it */
        long trips = db->round_trips;
        db->in_part = true;
        st = db_exec_deferred(db, DB_PART_BEGIN, NULL, NULL); /* prepared once per connection */
        if (status_is_ok(&st)) {
            st = fn(db, arg);
        }
        if (status_is_ok(&st)) {
            st = db_rowsets_queue_all(db, &db->rowsets); /* the part's rows count as sent */
        }
        if (status_is_ok(&st) && db->round_trips == trips && db->n_deferred == 1 &&
            db->commit_sql == NULL) {
            db_deferred_clear(db); /* the part sent nothing: no savepoint to send either */
            db->in_part = false;
            return st;
        }
        if (status_is_ok(&st)) {
            st = db_commit(db); /* with RELEASE instead of COMMIT */
        }
        db->in_part = false;
        if (status_is_ok(&st)) {
            return st;
        }
        db->tx_generic = generic;
        status_t undo = db_part_undo(db, db->round_trips != trips);
        if (!status_is_ok(&undo)) {
            return undo; /* the transaction is lost with its connection */
        }
        bool conflict = st.code == STATUS_ABORTED && strcmp(st.reason, "CONCURRENCY_CONFLICT") == 0;
        if (!conflict || attempt + 1 >= DB_TX_ATTEMPTS_MAX) {
            return st;
        }
        rpc_metrics_db_serialization_retry();
        db_backoff(attempt);
    }
}

/* Opens a migration's transaction: BEGIN, the replicas' migration lock (released by its COMMIT
 * or ROLLBACK, so it works through a transaction pooler) and, through a pooler, the session
 * settings; one round trip. */
static status_t db_migrate_begin(db_t *db) {
    const db_pool_t *pool = db->pool;
    /* The schema was checked to be [a-z_]+ (db_pool_create): a safe literal. */
    char sql[512];
    /* A migration runs as long as it needs: one that converts the rows of a large table takes
     * longer than any statement of a call may (DB_STATEMENT_TIMEOUT_MS), and failing it would
     * only make the service fail to start, again and again. The lock comes first, so a replica
     * waiting for it still gives up at the statement timeout and is restarted. */
    snprintf(sql, sizeof sql,
             "BEGIN; SELECT pg_advisory_xact_lock(hashtext('loyalty-migrate:%s'))%s%s%s%s; "
             "SET LOCAL statement_timeout = 0",
             pool->schema, pool->pooler ? "; " : "", pool->pooler ? pool->set_search_path : "",
             pool->pooler ? "; " : "", pool->pooler ? pool->set_timeout : "");
    return db_exec_script(db, sql);
}

/* Ends a migration's transaction: COMMIT when `st` is OK, else ROLLBACK; returns `st`, or the
 * COMMIT's error. */
static status_t db_migrate_end(db_t *db, status_t st) {
    if (status_is_ok(&st)) {
        return db_exec_script(db, "COMMIT");
    }
    if (db_up(db)) {
        (void)db_exec_script(db, "ROLLBACK"); /* a failure leaves the connection to reset */
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
        /* Looked up under the lock: another replica may have applied it a moment ago. */
        status_t st = db_migrate_begin(db);
        PGresult *r = NULL;
        if (status_is_ok(&st)) {
            st = db_exec(db, "SELECT 1 FROM schema_migrations WHERE id = $1", &p, &r);
        }
        bool applied = status_is_ok(&st) && PQntuples(r) > 0;
        PQclear(r);
        if (status_is_ok(&st) && !applied) {
            st = db_exec_script(db, (const char *)m->data);
            if (status_is_ok(&st)) {
                st = db_exec(db, "INSERT INTO schema_migrations (id) VALUES ($1)", &p, NULL);
            }
        }
        st = db_migrate_end(db, st);
        if (!status_is_ok(&st)) {
            log_msg(LOG_ERROR, "migration %s failed: %s", id, st.message);
            return st;
        }
        if (!applied) {
            log_msg(LOG_INFO, "migration %s applied", id);
        }
    }
    return status_ok();
}

status_t db_migrate(db_t *db, const embed_file_t *runtime_migrations,
                    const embed_file_t *service_migrations) {
    assert(db->tx_depth == 0);
    status_t st = db_acquire(db);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (!db_connect(db)) {
        db_release(db);
        return status_make(STATUS_UNAVAILABLE, REASON_DATABASE_UNAVAILABLE, "database unavailable");
    }
    /* Every statement below runs inside a migration's transaction: none is retried alone, nor
     * sent with a lone statement's settings. */
    db->tx_depth = 1;
    const char *schema = db->pool->schema; /* [a-z_]+: a safe identifier */
    char ddl[512];
    snprintf(ddl, sizeof ddl,
             "CREATE SCHEMA IF NOT EXISTS %s; "
             "CREATE TABLE IF NOT EXISTS %s.schema_migrations ("
             " id text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
             schema, schema);
    st = db_migrate_begin(db);
    if (status_is_ok(&st)) {
        st = db_exec_script(db, ddl);
    }
    st = db_migrate_end(db, st);
    if (status_is_ok(&st)) {
        st = db_migrate_table(db, runtime_migrations, "runtime");
    }
    if (status_is_ok(&st)) {
        st = db_migrate_table(db, service_migrations, schema);
    }
    db->tx_depth = 0;
    db_release(db);
    return st;
}

status_t db_lock_named(db_t *db, const char *what, const char *merchant_id) {
    assert(db_in_tx(db));
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, what);
    db_param_text(&p, merchant_id);
    return db_exec(db, "SELECT pg_advisory_xact_lock(hashtext($1 || ':' || $2))", &p, NULL);
}
