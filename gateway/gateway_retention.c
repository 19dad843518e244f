/* gateway_retention.c -- the job that drops the step logs of sagas finished (COMPLETED or
 * CANCELLED) more than GATEWAY_SAGA_RETENTION_DAYS ago (default 90): the saga's steps array, and
 * the saga_steps rows of a saga written before it had one. The saga rows stay: they
 * answer GetCheckout and client retries with their final state, and back refunds through the
 * orders table; only the per-step request/response log, which is what grows, goes. */
#include "gateway_rpc.h"
#include "gateway_store.h"

#include "log.h"

#include <stdlib.h>

#define RETENTION_BATCH 1000

status_t gw_job_purge_steps(rpc_ctx_t *ctx) {
    int64_t days = 90;
    const char *env = getenv("GATEWAY_SAGA_RETENTION_DAYS");
    if (env && !config_parse_int(env, 1, 36500, &days)) {
        days = 90;
    }
    int64_t n = 0;
    status_t st = gw_store_drop_old_steps(ctx->db, days, RETENTION_BATCH, &n);
    if (status_is_ok(&st) && n > 0) {
        log_msg(LOG_INFO, "dropped the step logs of %lld sagas finished over %lld days ago",
                (long long)n, (long long)days);
    }
    return st;
}
