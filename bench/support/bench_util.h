/* bench_util.h -- what every benchmark program needs: a clock, a free port, starting a service
 * binary and waiting until it is SERVING (or using one at $<NAME>_ADDR), stopping it on every
 * exit path, failing loudly, PostgreSQL at $LOYALTY_PG_DSN and SQL that must succeed, and
 * latency percentiles. */
#ifndef LOYALTY_BENCH_UTIL_H
#define LOYALTY_BENCH_UTIL_H

#include "status.h"

#include <libpq-fe.h>

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/** Microseconds on the monotonic clock. */
int64_t bench_now_us(void);

/** Prints "<program>: <message>" to stderr, stops the services this program started, exit(1). */
void bench_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/** bench_fail with the status when it is not OK. */
void bench_must(status_t st, const char *what);

/** A free TCP port on 127.0.0.1. */
int bench_free_port(void);

/** Starts $<NAME>_BIN (e.g. POINTS_SVC_BIN) or build/<name>/<name> on a free loopback port,
 *  with `env` ("KEY=VALUE", NULL-terminated, may be NULL) added and output to /dev/null, waits
 *  up to 30 s for Health SERVING and writes "127.0.0.1:<port>" into addr[cap]. At most 8.
 *  The service gets SIGTERM when the calling thread ends (PR_SET_PDEATHSIG), so call it from
 *  the main thread: then a program ended by a signal leaves no service behind. */
pid_t bench_start_service(const char *name, const char *const *env, char *addr, size_t cap);

/** The address of service `name`: $<NAME>_ADDR (e.g. POINTS_SVC_ADDR) when set, else one
 *  started with bench_start_service(name, env, ...). *pid (may be NULL) gets the started
 *  service's pid, or 0 when the address came from the environment. Valid until exit. */
const char *bench_service_addr(const char *name, const char *const *env, pid_t *pid);

/** SIGTERM to every service started here, and waits for them. */
void bench_stop_services(void);

/** A connection to $LOYALTY_PG_DSN; bench_fail when it is not set or does not connect. */
PGconn *bench_pg_connect(void);

/** Runs `text` with n text parameters and returns its result (the caller PQclears it);
 *  bench_fail with the statement and PostgreSQL's message unless it succeeds (a command or
 *  rows). */
PGresult *bench_query(PGconn *pg, const char *text, int n, const char *const *params);

/** bench_query for a statement whose rows, if any, are not needed. */
void bench_sql(PGconn *pg, const char *text, int n, const char *const *params);

/** Sorts v[0..n) and returns its p-quantile (0..1) in milliseconds. */
double bench_percentile_ms(int64_t *v, int n, double p);

#endif
