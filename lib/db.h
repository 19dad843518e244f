/* db.h -- PostgreSQL access: handles for threads over a process's connections, bound to a
 * service's schema, parameterized queries through transparently prepared statements, error
 * mapping to status_t, and a transaction helper that retries conflicts. A handle (db_t) is not
 * thread-safe: every thread owns its own. It either keeps a connection of its own (the default:
 * the fastest path) or borrows one from its process's pool (db_options_t.pool_size) only while
 * it runs a statement or a transaction. Either can go through a pooler in transaction mode
 * (PgBouncer pool_mode=transaction): then no state is kept in the server's session. */
#ifndef LOYALTY_DB_H
#define LOYALTY_DB_H

#include "arena.h"
#include "embed.h"
#include "status.h"

#include <libpq-fe.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct db db_t;
typedef struct db_pool db_pool_t;

/** How a process reaches PostgreSQL. */
typedef struct db_options {
    const char *dsn;
    const char *schema; /* the search_path: lowercase letters and '_' */
    const char *application_name;
    int64_t statement_timeout_ms; /* 0: none */
    /* Through a pooler in transaction mode: statements are unnamed (no server-side prepared
     * statement outlives its transaction), and search_path and statement_timeout are set in
     * every transaction (SET LOCAL after BEGIN; set_config(..., true) in the round trip of a
     * statement outside one) instead of at connection start (the `options` startup parameter
     * that PgBouncer refuses). */
    bool transaction_pooler;
    /* Connections the process's handles share; 0: each handle keeps one of its own. */
    int pool_size;
    /* How long a handle waits for a shared connection before the call fails UNAVAILABLE with
     * reason DB_POOL_EXHAUSTED. */
    int64_t pool_wait_ms;
} db_options_t;

/** The connections of one process (none is opened here). The options' strings are copied.
 *  Destroy after every handle opened on it. */
db_pool_t *db_pool_create(const db_options_t *opts);
void db_pool_destroy(db_pool_t *pool);

/** A handle for one thread on `pool`. Never fails; connects on first use. */
db_t *db_open(db_pool_t *pool);

/** A handle with a pool of its own: a direct connection of its own to `dsn`, whose search_path
 *  is `schema` (lowercase letters and '_'). Connects on first use; never fails here. */
db_t *db_create(const char *dsn, const char *schema, const char *application_name,
                int64_t statement_timeout_ms);
/** Like db_create with every option (pool_size is ignored: the handle keeps its connection). */
db_t *db_create_with(const db_options_t *opts);
void db_destroy(db_t *db);

/** The reason of the UNAVAILABLE status when no pooled connection came free in time. */
#define DB_POOL_EXHAUSTED "DB_POOL_EXHAUSTED"

/** True when PostgreSQL answers (connecting now if needed). With a pool whose connections are
 *  all busy past the wait, true: they are busy talking to PostgreSQL. */
bool db_ping(db_t *db);

#define DB_PARAMS_MAX 64
#define DB_NUM_MAX 24

/** Query parameters. Text values are borrowed: they must live until the query has run. */
typedef struct db_params {
    int n;
    const char *values[DB_PARAMS_MAX];
    int lengths[DB_PARAMS_MAX];
    int formats[DB_PARAMS_MAX];
    char numbers[DB_PARAMS_MAX][DB_NUM_MAX];
} db_params_t;

void db_params_init(db_params_t *p);
/** Appends a text parameter; NULL is SQL NULL. */
void db_param_text(db_params_t *p, const char *s);
void db_param_int(db_params_t *p, int64_t v);
void db_param_bool(db_params_t *p, bool v);
/** Appends a binary (bytea) parameter; the bytes are borrowed. */
void db_param_bytes(db_params_t *p, const void *data, size_t len);
void db_param_null(db_params_t *p);
/** db_params_init, then the two text parameters most statements begin with: $1 the merchant,
 *  $2 the row's id (or whatever second key the statement takes). */
void db_params_key(db_params_t *p, const char *merchant_id, const char *id);
/** Appends n text parameters (NULL items are SQL NULL). */
void db_param_texts(db_params_t *p, const char *const *values, size_t n);
/** Appends each argument (const char *) as a text parameter: DB_PARAM_TEXTS(&p, a, b, c). */
#define DB_PARAM_TEXTS(p, ...)                                                                     \
    db_param_texts((p), (const char *const[]){__VA_ARGS__},                                        \
                   sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

/** Runs one parameterized statement (params may be NULL). On success and when `out` is not
 *  NULL, *out receives the result, which the caller PQclears. Statements are prepared once per
 *  connection and reused, keyed by their text (unnamed through a transaction pooler). Errors:
 * ALREADY_EXISTS (unique violation; see db_last_constraint), FAILED_PRECONDITION (check/foreign-key
 * violation), ABORTED with reason CONCURRENCY_CONFLICT (serialization failure, deadlock, lock
 * timeout), DEADLINE_EXCEEDED (statement timeout), UNAVAILABLE (connection lost; or
 * DB_POOL_EXHAUSTED), INTERNAL (anything else, logged). */
status_t db_exec(db_t *db, const char *sql, const db_params_t *params, PGresult **out);

/** Like db_exec, but the statement is not prepared: PostgreSQL plans it for the actual
 *  parameter values on every call (one planning each time). For queries whose best plan
 *  depends on the values, such as a list filter that may match 0.01% or 50% of a merchant's
 *  rows, where a cached generic plan would be chosen for an average value. */
status_t db_exec_custom_plan(db_t *db, const char *sql, const db_params_t *params, PGresult **out);

/** Runs a statement that must give exactly one row (a get by key, an UPDATE ... RETURNING):
 *  on OK *out holds that row and the caller PQclears it; with no row (or several) the result
 *  is cleared and the status is (missing_code, missing_reason, missing_message). */
status_t db_exec_row(db_t *db, const char *sql, const db_params_t *params, PGresult **out,
                     status_code_t missing_code, reason_id_t missing_reason,
                     const char *missing_message);

/** One statement of db_exec_all: its text and parameters in, its result out. */
typedef struct db_exec_item {
    const char *sql;
    const db_params_t *params; /* may be NULL */
    PGresult *out;             /* on OK, the statement's result, for the caller to PQclear */
} db_exec_item_t;

#define DB_EXEC_ALL_MAX 8

/** Runs n (1..DB_EXEC_ALL_MAX) statements that do not depend on each other's results in one
 *  round trip (libpq pipeline mode), in order: a handler's reads that would each cost a wait
 *  (settings, a row to lock, a replay check). Inside db_tx they join the transaction (after its
 *  pending BEGIN and deferred writes); outside one they run in one implicit transaction. On OK
 *  every items[i].out holds its result; on an error none does, and the status is the first
 *  failing statement's, mapped as by db_exec. Prepared like db_exec's statements. */
status_t db_exec_all(db_t *db, db_exec_item_t *items, int n);

/** Whether PostgreSQL knows the IANA time zone `tz`, read from pg_timezone_names, which never
 *  raises (AT TIME ZONE with an unknown name aborts its transaction, and numeric offsets such as
 *  '+08' would pass with POSIX sign rules). */
status_t db_time_zone_known(db_t *db, const char *tz, bool *known);

/** Runs a script of several statements without parameters (migrations only). */
status_t db_exec_script(db_t *db, const char *sql);

/** Name of the constraint behind the last ALREADY_EXISTS / FAILED_PRECONDITION, or "". */
const char *db_last_constraint(const db_t *db);

/** Accessors for result cells: NULL reads as "" / 0 / false. */
const char *db_get_str(const PGresult *r, int row, int col);
/** A copy of the cell's text in arena memory ("" for NULL). */
char *db_dup_str(arena_t *a, const PGresult *r, int row, int col);
int64_t db_get_int(const PGresult *r, int row, int col);
bool db_get_bool(const PGresult *r, int row, int col);
bool db_is_null(const PGresult *r, int row, int col);

/** A nullable text cell in arena memory: NULL for SQL NULL (db_dup_str reads it as ""). */
char *db_dup_str_or_null(arena_t *a, const PGresult *r, int row, int col);
/** A nullable integer cell: `none` for SQL NULL (db_get_int reads it as 0). */
int64_t db_get_int_or(const PGresult *r, int row, int col, int64_t none);
/** A text[] cell as arena strings (*n of them). SQL NULL, a malformed literal and an array with
 *  a NULL element read as no items: NULL and *n = 0. */
char **db_get_text_array(arena_t *a, const PGresult *r, int row, int col, size_t *n);
/** A bigint[] cell into *v (arena memory, *n numbers). False, with *v NULL and *n 0, for SQL
 *  NULL, a malformed literal or a NULL element. */
bool db_get_int_array(arena_t *a, const PGresult *r, int row, int col, int64_t **v, size_t *n);

/** A bytea cell (hex text, "\\x0a1b...") as *len bytes in arena memory (SQL NULL: none); NULL,
 *  with *len 0, only when libpq cannot allocate its copy. */
unsigned char *db_get_bytea(arena_t *a, const PGresult *r, int row, int col, size_t *len);
/** A message of type `d` packed in a bytea cell, unpacked into arena memory; NULL when its bytes
 *  are not such a message. */
ProtobufCMessage *db_get_message(arena_t *a, const ProtobufCMessageDescriptor *d, const PGresult *r,
                                 int row, int col);

/** Appends an array parameter, its literal (pgarray.h) in arena memory: for $n::text[],
 *  $n::bigint[] and $n::boolean[] (unnest($n::bigint[]) ...). */
void db_param_text_array(db_params_t *p, arena_t *a, char *const *items, size_t n);
void db_param_int_array(db_params_t *p, arena_t *a, const int64_t *v, size_t n);
void db_param_bool_array(db_params_t *p, arena_t *a, const bool *v, size_t n);

/* ---- many rows (lib/db_rows.c) ---- */

/** Reads row `row` of `r` into ctx, or into `item` (the row's zeroed slot of the array that
 *  db_rows_t asked for; NULL when it asked for none; ctx itself for db_row_find/db_row_get). A
 * status that is not OK stops the reading and is returned by the caller (db_rows, db_result_rows,
 * db_row_find). */
typedef status_t (*db_row_fn)(void *ctx, arena_t *a, const PGresult *r, int row, void *item);

/** What db_rows reads and gives back. Zero-initialised: every row, no array. */
typedef struct db_rows {
    size_t item_size; /* in: bytes of one item of an array to build (sizeof *array); 0: none */
    int limit;        /* in: rows read at the most, the others only set `more`; 0: every row */
    void *items;      /* out: arena array of n items and a zeroed one after (with item_size) */
    size_t n;         /* out: rows read */
    bool more;        /* out: the result had more than `limit` rows */
} db_rows_t;

/** Runs one statement (as db_exec) and calls fn for each of its rows in order, up to
 *  rows->limit; with rows->item_size, into an arena array of items that rows->items returns.
 *  `rows` may be NULL (every row, no array). The result is cleared here. Errors: db_exec's, or
 *  the first one fn returns. */
status_t db_rows(db_t *db, arena_t *a, const char *sql, const db_params_t *params, db_row_fn fn,
                 void *ctx, db_rows_t *rows);

/** Runs a statement that must give exactly one row (a get by key, an UPDATE ... RETURNING) and
 *  reads it with fn, ctx being its item too (as db_row_find); with no row (or several) the
 *  status is (missing_code, missing_reason, missing_message), as db_exec_row's. The result is
 *  cleared here. */
status_t db_row_get(db_t *db, arena_t *a, const char *sql, const db_params_t *params, db_row_fn fn,
                    void *ctx, status_code_t missing_code, reason_id_t missing_reason,
                    const char *missing_message);

/** db_rows over a result already at hand (one of db_exec_all's); `r` is not cleared. */
status_t db_result_rows(arena_t *a, const PGresult *r, db_row_fn fn, void *ctx, db_rows_t *rows);

/** Runs a statement that gives at most one row of interest (a get by key, an INSERT ... ON
 *  CONFLICT DO NOTHING RETURNING): *found is whether it gave exactly one, and then fn reads it,
 *  with ctx as its item too (so a row function written for db_rows' arrays reads into *ctx).
 *  fn may be NULL: only whether the row came (a claim, a conditional update ... RETURNING 1).
 *  The result is cleared here. Errors: db_exec's, or fn's. */
status_t db_row_find(db_t *db, arena_t *a, const char *sql, const db_params_t *params, db_row_fn fn,
                     void *ctx, bool *found);

/* ---- rows read by a table of columns (lib/db_cols.c) ---- */

/** What a column holds and how it lands in its destination. NULL cells read as noted. */
typedef enum db_col_kind {
    DB_COL_SKIP,         /* a column read elsewhere (or not at all) */
    DB_COL_TEXT,         /* char *, an arena copy; NULL: "" */
    DB_COL_TEXT_OR_NULL, /* char *, an arena copy; NULL: NULL */
    DB_COL_TEXT_IN,      /* a char array member, cut to fit (as snprintf); NULL: "" */
    DB_COL_INT,          /* an integer or enum of 1, 2, 4 or 8 bytes; NULL: 0 */
    DB_COL_INT_OR,       /* the same; NULL: the column's `none` */
    DB_COL_BOOL,         /* bool, or protobuf_c_boolean; NULL: false */
    DB_COL_BYTEA,        /* ProtobufCBinaryData in arena memory; NULL: none */
    DB_COL_TEXT_ARRAY,   /* text[]: char ** and its size_t count; NULL: none */
    DB_COL_INT_ARRAY,    /* bigint[]: int64_t * and its size_t count; NULL: none */
    DB_COL_MESSAGE, /* bytea: a packed message of type `message`, unpacked (arena); NULL: NULL */
} db_col_kind_t;

/** One column of a row: what it holds and where it goes. Written with the DB_COL_* macros
 *  below, one per column in the order of the statement's column list, next to that list. */
typedef struct db_col {
    db_col_kind_t kind;
    const char *field;   /* the item is a message (db_cols_t.message): its field of that name */
    size_t offset;       /* or: the destination's offset in the item ... */
    size_t size;         /* ... and its size (checked against the kind when read) */
    size_t count_offset; /* arrays with an offset: where their size_t count goes */
    int64_t none;        /* DB_COL_INT_OR: the value of a NULL cell */
    const ProtobufCMessageDescriptor *message; /* DB_COL_MESSAGE with an offset: its type */
} db_col_t;

/** A row type: its columns, in order, from the result's column `first` (a row read in parts, a
 *  table of another table's columns after a few of its own). With `message`, an item is a
 *  pointer that receives a new message of that type, and columns may name its fields; with
 *  `packed` too, the message is the one packed in column `first` (a stored definition), and the
 *  table's columns, from the next one on, override its fields. */
typedef struct db_cols {
    const db_col_t *cols;
    int n;
    int first;
    const ProtobufCMessageDescriptor *message;
    bool packed;
} db_cols_t;

#define DB_COLS_N(table) ((int)(sizeof(table) / sizeof((table)[0])))
/** A db_cols_t of a struct's columns (table: a db_col_t array). */
#define DB_COLS(table)                                                                             \
    { .cols = (table), .n = DB_COLS_N(table) }
/** A db_cols_t of new messages of type `desc` (items: pointers to them). */
#define DB_COLS_MESSAGE(table, desc)                                                               \
    { .cols = (table), .n = DB_COLS_N(table), .message = (desc) }
/** A db_cols_t of messages of type `desc` packed in column 0, `table` the columns after it. */
#define DB_COLS_PACKED(table, desc)                                                                \
    { .cols = (table), .n = DB_COLS_N(table), .message = (desc), .packed = true }

#define DB_COL_SIZE_OF(type, member) sizeof(((type *)0)->member)
/** A column into member `member` of struct `type` (TEXT, TEXT_OR_NULL, INT, BOOL, BYTEA). */
#define DB_COL(kind_, type, member)                                                                \
    { .kind = (kind_), .offset = offsetof(type, member), .size = DB_COL_SIZE_OF(type, member) }
/** An integer column that reads as `none_` when NULL. */
#define DB_COL_OR(type, member, none_)                                                             \
    {                                                                                              \
        .kind = DB_COL_INT_OR, .offset = offsetof(type, member),                                   \
        .size = DB_COL_SIZE_OF(type, member), .none = (none_)                                      \
    }
/** An array column (TEXT_ARRAY, INT_ARRAY) into `member`, its count into `count`. */
#define DB_COL_ARRAY(kind_, type, member, count)                                                   \
    {                                                                                              \
        .kind = (kind_), .offset = offsetof(type, member), .size = DB_COL_SIZE_OF(type, member),   \
        .count_offset = offsetof(type, count)                                                      \
    }
/** A packed message column into `member` (a pointer to a message of type `desc`). */
#define DB_COL_MSG(type, member, desc)                                                             \
    {                                                                                              \
        .kind = DB_COL_MESSAGE, .offset = offsetof(type, member),                                  \
        .size = DB_COL_SIZE_OF(type, member), .message = (desc)                                    \
    }
/** A column into the message field named `name` (db_cols_t.message): its type in the
 *  descriptor says its width; a repeated field gets an array column, a message field a packed
 *  message of the field's type; a oneof member (proto3 `optional` too) becomes the one set
 *  unless the cell is NULL (then it is left alone). */
#define DB_FIELD(kind_, name)                                                                      \
    { .kind = (kind_), .field = (name) }
#define DB_FIELD_OR(name, none_)                                                                   \
    { .kind = DB_COL_INT_OR, .field = (name), .none = (none_) }
/** A column read elsewhere. */
#define DB_COL_SKIPPED                                                                             \
    { .kind = DB_COL_SKIP }

/** Reads row `row` of `r` by the table `cols` into `item` (a struct; with cols->message, a
 *  pointer that receives a new message). INTERNAL DATABASE_ERROR for a cell that is not what its
 *  column says (a malformed array or packed message), a result with fewer columns than the
 *  table, or a table that does not fit its destination (a size or field that does not match). */
status_t db_cols_read(arena_t *a, const db_cols_t *cols, const PGresult *r, int row, void *item);

/** db_cols_read as a db_row_fn for db_rows and db_result_rows: ctx is the const db_cols_t. */
status_t db_row_read(void *ctx, arena_t *a, const PGresult *r, int row, void *item);

/** db_rows reading every row by `cols` (rows->item_size: the struct's size, or a pointer's
 *  for messages). */
status_t db_rows_cols(db_t *db, arena_t *a, const char *sql, const db_params_t *params,
                      const db_cols_t *cols, db_rows_t *rows);

/** db_row_get reading its row by `cols` into `item`. */
status_t db_row_get_cols(db_t *db, arena_t *a, const char *sql, const db_params_t *params,
                         const db_cols_t *cols, void *item, status_code_t missing_code,
                         reason_id_t missing_reason, const char *missing_message);

/** db_row_find reading its row (when found) by `cols` into `item`. */
status_t db_row_find_cols(db_t *db, arena_t *a, const char *sql, const db_params_t *params,
                          const db_cols_t *cols, void *item, bool *found);

typedef status_t (*db_tx_fn)(db_t *db, void *arg);

#define DB_TX_ATTEMPTS_MAX 8

/** Runs fn inside BEGIN .. COMMIT (READ COMMITTED). Rolls back when fn fails. Retries the whole
 *  transaction, up to DB_TX_ATTEMPTS_MAX times with jittered backoff, when it fails with
 *  CONCURRENCY_CONFLICT, or once when the connection was lost, so fn must be re-runnable and
 *  must not act outside the database. Nested calls join the outer transaction. */
status_t db_tx(db_t *db, db_tx_fn fn, void *arg);

bool db_in_tx(const db_t *db);
/* Inside a transaction whose connection was lost: everything it sends fails with
 * DATABASE_UNAVAILABLE until db_tx ends it (and runs it again). */
bool db_tx_lost(const db_t *db);

/** Inside db_tx: runs fn as a part of the transaction that may fail alone (a savepoint, queued
 *  into fn's first round trip and released with its last, so it costs no round trip of its
 *  own). When fn fails, or its db_tx_on_commit statement or a deferred write does when the part
 *  ends, everything fn did is undone (ROLLBACK TO SAVEPOINT: one round trip, only then), fn's
 *  error is returned and the transaction goes on; fn is run again after a CONCURRENCY_CONFLICT,
 *  as db_tx would. fn's db_tx_on_commit statement goes with the part's end, not the COMMIT.
 *  Parts do not nest. For batches of independent calls in one transaction (rpc batch). */
status_t db_tx_part(db_t *db, db_tx_fn fn, void *arg);

/** Transactions db_tx begins on this handle (and its lone statements) while `on` commit without
 *  waiting for their WAL to reach the disk: the connection's session setting synchronous_commit
 *  follows the handle's wish, changed only when it differs (SET LOCAL in each transaction
 *  through a transaction pooler). Only for a change that a later commit of the
 *  same PostgreSQL cluster makes durable before anyone relies on it: WAL is one sequence per
 *  cluster, so a commit that waits for the disk also makes every earlier commit durable, and a
 *  crash can only lose a suffix of history (docs/architecture.md "Durability of saga steps"). */
void db_set_commit_async(db_t *db, bool on);
/** Whether this process ever began such a transaction. */
bool db_async_commits_seen(void);

/** The PostgreSQL cluster's system identifier (pg_control_system(); equal on a physical
 *  replica, so a failover keeps it), read once per process: "" when it could not be read. */
const char *db_cluster_id(db_t *db);

/** Outside a transaction: returns once every transaction committed so far in the cluster is
 *  durable: waits until the WAL is on disk up to its insert position now (a synchronous commit
 *  of anyone's, or the WAL writer within wal_writer_delay); UNAVAILABLE after 5 s. */
status_t db_wait_durable(db_t *db);

/** Returns once the cluster's WAL is on disk up to `lsn` (text, e.g. from
 *  pg_current_wal_insert_lsn()), polling; UNAVAILABLE WAL_NOT_FLUSHED after wait_ms_max. The
 *  WAL writer flushes within wal_writer_delay (200 ms by default) when nobody else does. */
status_t db_wait_flushed(db_t *db, const char *lsn, int64_t wait_ms_max);

/** Inside db_tx: `sql` (a write that must be the transaction's last, such as the record of an
 *  idempotency key) is sent together with the COMMIT, in one round trip. When it fails the
 *  transaction rolls back and db_tx returns its error (ALREADY_EXISTS with db_last_constraint
 *  for a unique violation), without retrying unless the error is a conflict. At most one per
 *  transaction; `sql` and the params' borrowed values must live until db_tx returns. */
status_t db_tx_on_commit(db_t *db, const char *sql, const db_params_t *params);

/** db_tx_on_commit whose statement's result the caller needs: when db_tx returns OK, *out holds
 *  it (the caller PQclears it); otherwise *out is NULL. `out` must live until db_tx returns.
 *  A statement that must refuse the commit calls refuse() (below) rather than touching no row. */
status_t db_tx_on_commit_result(db_t *db, const char *sql, const db_params_t *params,
                                PGresult **out);

/** The SQLSTATE of refuse(reason), the runtime's SQL function (lib/migrations/003_refuse.sql)
 *  by which a statement refuses its own change, e.g. `WITH w AS (UPDATE ... RETURNING 1) SELECT
 *  refuse('LEDGER_MISMATCH') WHERE (SELECT count(*) FROM w) <> $5`. db_exec answers it as
 *  FAILED_PRECONDITION with the reason; a deferred write answers its expect.refusal. */
#define DB_REFUSE_SQLSTATE "LY001"

/** What a deferred write's result must be (db_exec_deferred). */
typedef struct db_expect {
    /* The rows it must touch (its command tag); -1: any number. Checked here, not by PostgreSQL:
     * the COMMIT then needs a round trip of its own; prefer refuse() in the statement. */
    int rows;
    const char *constraint; /* a unique violation of this constraint answers `refusal`; or NULL */
    status_t refusal; /* the answer when refuse() is called, or `rows` or `constraint` say no */
} db_expect_t;

#define DB_DEFERRED_MAX 8

/** Inside db_tx: a write whose result the caller does not need before going on (a history row,
 *  an update whose row count is its only check). It is not sent now but in the round trip of
 *  the transaction's next statement, before it (so that statement, and everything after, sees
 *  its effect), or with the COMMIT. When it fails or breaks `expect` (NULL: any success), that
 *  later call returns its error and the transaction rolls back; a COMMIT is never sent in the
 *  same round trip as a write whose row count is checked here. The params' values are copied;
 *  `sql` must live until the transaction ends (a literal). Errors now: only from preparing the
 *  statement, or from sending earlier ones when DB_DEFERRED_MAX are waiting. */
status_t db_exec_deferred(db_t *db, const char *sql, const db_params_t *params,
                          const db_expect_t *expect);

/** Rows a transaction writes to one table without reading them back (history entries, outbox
 *  events, the saves of rows it holds locked): collected as they come (db_rowset_append) and
 *  written by one statement, `sql`, when the transaction commits, when its db_tx_part ends, or
 *  when db_rowset_flush asks. `sql` takes one parameter per column, $1..$n_cols, each the text
 *  literal of an array of that column's values in row order (the statement casts and unnests
 *  them: `INSERT INTO t (merchant_id, a, b) SELECT * FROM unnest($1::text[], $2::text[],
 *  $3::bigint[])`). A definition is a static of its store: the rows of one transaction are told
 *  apart by its address. */
typedef struct db_rowset_def {
    const char *sql;
    int n_cols;
} db_rowset_def_t;

#define DB_ROWSET_COLS_MAX 20
#define DB_ROWSETS_MAX 8

/** Inside db_tx: adds a row (def->n_cols text parameters, NULL for SQL NULL; db_param_int for
 *  numbers) to the transaction's rows of `def`. The row is written later, before whatever the
 *  transaction sends after db_rowset_flush, and at the latest with the COMMIT (sets in the order
 *  of their first row in the transaction, so a set whose rows refer to another's comes after it
 *  when its first row does); a failure then fails that later call and the transaction. A store
 *  that reads the table in a transaction that may have written it flushes first. Rolled back
 *  with the transaction or db_tx_part. Errors now: only from sending earlier writes. */
status_t db_rowset_append(db_t *db, const db_rowset_def_t *def, const db_params_t *row);

/** The rows of `def` (NULL: of every set) waiting so far go with the transaction's next
 *  statement, before it. Nothing is sent now; outside a transaction nothing is waiting. */
status_t db_rowset_flush(db_t *db, const db_rowset_def_t *def);

/** Inside db_tx: waits for and holds, until the transaction ends, a lock named `what` and
 *  `merchant_id` (pg_advisory_xact_lock on their hash; it works through a transaction pooler).
 *  For read-modify-write of a row that may not exist yet, such as a masked settings update:
 *  every writer of it takes the same lock first. One statement. */
status_t db_lock_named(db_t *db, const char *what, const char *merchant_id);

/** Applies the embedded migrations not yet recorded in <schema>.schema_migrations, in table
 *  order (runtime's first, then the service's), each in its own transaction under a
 *  transaction-level advisory lock (pg_advisory_xact_lock: it works through a transaction
 *  pooler too) so that replicas never race. Either table may be NULL. */
status_t db_migrate(db_t *db, const embed_file_t *runtime_migrations,
                    const embed_file_t *service_migrations);

#endif
