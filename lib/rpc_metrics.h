/* rpc_metrics.h -- the runtime's own metrics (names agreed in docs/architecture.md#metrics,
 * after go-grpc-prometheus for the gRPC ones) and the side HTTP port that serves them. The
 * server, the client, db.c, cache.c, near_cache.c and outbox.c call the hooks below; every
 * hook is cheap (a series lookup without a lock and a few stores) and does nothing while
 * metrics are off (METRICS_ADDR empty). */
#ifndef LOYALTY_RPC_METRICS_H
#define LOYALTY_RPC_METRICS_H

#include "config.h"

#include <stdbool.h>
#include <stdint.h>

/** Turns metrics on when cfg->metrics_addr is set (off otherwise), registers the runtime's
 *  families and collectors and starts the HTTP port. A port that cannot be opened is logged at
 *  ERROR and the service runs on without it (metrics are never worth an outage). */
void rpc_metrics_start(const config_t *cfg);
/** Stops the HTTP port. */
void rpc_metrics_stop(void);

/** go-grpc-prometheus' spelling of a status code: "OK", "InvalidArgument", ... */
const char *rpc_metrics_code_name(int code);

/** A served call ended: `path` is "/pkg.Service/Method", a string that lives as long as the
 *  process (its pointer keys a per-thread cache of series); `reason` is the
 *  loyalty-error-reason trailer ("" for none). */
void rpc_metrics_server_handled(const char *path, bool streaming, int code, const char *reason,
                                int64_t latency_us);
/** A call to another service ended (`service` its full name, `method` the short one). */
void rpc_metrics_client_handled(const char *service, const char *method, int code,
                                int64_t latency_us);

/** PostgreSQL: one round trip that took `seconds`, for the method being served. */
void rpc_metrics_db_round_trip(double seconds);
/** PostgreSQL: a transaction attempt began (retries count again). */
void rpc_metrics_db_transaction(void);
/** PostgreSQL: a transaction is retried after a serialization failure or deadlock. */
void rpc_metrics_db_serialization_retry(void);
/** A call of a BatchService/Run batch, run merged by its method's merger or alone. */
void rpc_metrics_batch_call(const char *method, bool merged);
/** PostgreSQL: connections opened (+1) or closed (-1). */
void rpc_metrics_db_connections_open(int64_t delta);
/** PostgreSQL: a connection starts (+1) or stops (-1) running a transaction or statement. */
void rpc_metrics_db_connections_in_use(int64_t delta);
/** PostgreSQL: a handle waited `seconds` for a pooled connection (DB_POOL_SIZE); `got` false
 *  when none came free in time. */
void rpc_metrics_db_pool_wait(double seconds, bool got);
/** PostgreSQL answered (or not) the readiness probe. */
void rpc_metrics_db_up(bool up);

/** Redis: one command (or pipeline) sent; `ok` false when it failed. */
void rpc_metrics_redis_call(bool ok);
/** A cache lookup: `cache` "near" or "redis". */
void rpc_metrics_cache_request(const char *cache, bool hit);

/** The outbox publisher's last look at its table. */
void rpc_metrics_outbox(int64_t pending_rows, double oldest_pending_age_s);

#endif
