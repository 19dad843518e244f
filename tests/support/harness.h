/* harness.h -- integration-test support: start and stop the real service binaries (and private
 * Redis servers) as child processes on free loopback ports, wait for their health checks, make
 * unique merchant ids, and check call outcomes. PostgreSQL and Redis come from the environment
 * scripts/test sets up (LOYALTY_PG_DSN, LOYALTY_REDIS_URL). */
#ifndef LOYALTY_TEST_HARNESS_H
#define LOYALTY_TEST_HARNESS_H

#include "arena.h"
#include "db.h"
#include "google/protobuf/field_mask.pb-c.h"
#include "rpc_client.h"
#include "status.h"

#include <stdbool.h>
#include <sys/types.h>

#define HARNESS_ENV_MAX 16

typedef struct svc_proc {
    char name[32];
    pid_t pid;
    int port;
    char addr[64];
    int metrics_port; /* METRICS_ADDR=127.0.0.1:<it>, unless env sets METRICS_ADDR */
    char log_path[512];
    const char *env[HARNESS_ENV_MAX + 1]; /* extra "KEY=VALUE" for restarts */
} svc_proc_t;

/** An update mask naming the given field paths, for an Update* request's update_mask
 *  (a compound literal: it lives as long as the enclosing block). */
#define HARNESS_MASK(...)                                                                          \
    (&(Google__Protobuf__FieldMask){                                                               \
        PROTOBUF_C_MESSAGE_INIT(&google__protobuf__field_mask__descriptor),                        \
        sizeof((char *[]){__VA_ARGS__}) / sizeof(char *), (char *[]){__VA_ARGS__}})
/** The same for the first `n` names of an array of `char *`. */
#define HARNESS_MASK_OF(names, n)                                                                  \
    (&(Google__Protobuf__FieldMask){                                                               \
        PROTOBUF_C_MESSAGE_INIT(&google__protobuf__field_mask__descriptor), (n), (names)})

/** A call's outcome must be `want_code` with `want_reason` (criterion assertions: include
 *  <criterion/criterion.h> first). */
#define assert_status(st, want_code, want_reason)                                                  \
    do {                                                                                           \
        status_t st_ = (st);                                                                       \
        cr_assert_eq(st_.code, want_code, "got %s (%s: %s), want %s", status_code_name(st_.code),  \
                     st_.reason, st_.message, status_code_name(want_code));                        \
        cr_assert_str_eq(st_.reason, want_reason, "message: %s", st_.message);                     \
    } while (0)

#define assert_ok(st) assert_status(st, STATUS_OK, "")

/** Called from each suite's init: grpc_init and client defaults. */
void harness_init(void);
/** Called from each suite's fini: closes channels, grpc_shutdown. */
void harness_fini(void);

/** Starts build/<name>/<name> on a free port with `env` ("KEY=VALUE", NULL-terminated, may be
 *  NULL) added to the environment, and waits up to 60 s for Health SERVING. When the service
 *  exits at start because it cannot listen (another process took the port meanwhile), starts
 *  it again on new ports, up to 5 times. Aborts the test on failure. Its output goes to a log
 *  file under the build tree (one per port tried). */
void harness_start(svc_proc_t *p, const char *name, const char *const *env);
/** Makes harness_fini kill the process if the test ends (or fails) with it still running;
 *  harness_start does this itself. */
void harness_track(svc_proc_t *p);
/** Starts again with the same port and environment (after a stop or kill). */
void harness_restart(svc_proc_t *p);
/** harness_restart of a process that may die while starting (a failpoint its recovery reaches):
 *  false when it did, with *status its wait status and p->pid 0. */
bool harness_restart_may_die(svc_proc_t *p, int *status);
/** SIGTERM and wait; returns the exit status (0 after a graceful shutdown), or -signal. */
int harness_stop(svc_proc_t *p);
/** SIGKILL and wait. */
void harness_kill(svc_proc_t *p);
/** Sends SIGTERM without waiting. */
void harness_signal_term(svc_proc_t *p);
/** Waits for a child to exit; returns its status as harness_stop does. */
int harness_wait(svc_proc_t *p);

/** GET http://127.0.0.1:<port><path> (HTTP/1.0); returns the status code (0 when nothing
 *  answered) and, when body is not NULL, the body in *body (malloc'd, the caller frees). */
int harness_http_get(int port, const char *path, char **body);

/** The value of the sample `series` (its exact text up to the value, e.g.
 *  `grpc_server_handled_total{grpc_type="unary",...,grpc_code="OK"}`) in a Prometheus text
 *  exposition; 0 when absent. */
double harness_metric(const char *exposition, const char *series);

/** Health/Check of a running service; true when SERVING. */
bool harness_is_serving(const char *addr);

/** A private Redis server on a free port (for tests that stop Redis). */
typedef struct redis_proc {
    pid_t pid;
    int port;
    char url[64];
} redis_proc_t;
void harness_redis_start(redis_proc_t *r);
void harness_redis_restart(redis_proc_t *r);
void harness_redis_stop(redis_proc_t *r);

/** A merchant id no other test uses: "<prefix>-<random>"; valid until harness_fini.
 *  Not thread-safe: call from the test's main thread. */
const char *harness_merchant(const char *prefix);
/** A fresh idempotency key. */
const char *harness_key(void);

/** A free TCP port on 127.0.0.1. */
int harness_free_port(void);

/** True when the file contains the text. */
bool harness_file_contains(const char *path, const char *text);

/** The LOYALTY_PG_DSN the tests run against. */
const char *harness_pg_dsn(void);
/** A database handle of its own on harness_pg_dsn() for `schema`, through a transaction pooler
 *  when LOYALTY_PG_POOLER=transaction (tests/pooler), with a 10 s statement timeout. */
db_t *harness_db_create(const char *schema, const char *application_name);
/** harness_db_create with another statement timeout (milliseconds; 0: none). */
db_t *harness_db_create_timeout(const char *schema, const char *application_name,
                                int64_t statement_timeout_ms);

/** A schema name no other test uses: "<prefix>_<8 random letters>" into out (32 bytes). */
void harness_schema_name(const char *prefix, char out[32]);
/** Drops `schema` and everything in it through `db`: a test's teardown. */
void harness_schema_drop(db_t *db, const char *schema);
/** A libpq session of its own on harness_pg_dsn(), asserted connected: a test's observer of
 *  committed rows and locks. */
PGconn *harness_observer(void);

/** Creates an empty database for this test alone and returns its DSN (dropped again by
 *  harness_fini). For tests whose services must not share tables with other tests running in
 *  parallel, e.g. an outbox that another test's service would publish to another Redis. */
const char *harness_private_database(void);

#endif
