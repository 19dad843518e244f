/* gateway_retention.c -- the job that drops the step logs of sagas finished (COMPLETED or
 * CANCELLED) more than GATEWAY_SAGA_RETENTION_DAYS ago (default 90): the saga's steps array, and
 * the saga_steps rows of a saga written before it had one. The saga rows stay: they
 * answer GetCheckout and client retries with their final state, and back refunds through the
 * orders table; only the per-step request/response log, which is what grows, goes. */
#include "gateway_rpc.h"

#include "log.h"

#include <stdlib.h>

#define RETENTION_BATCH 1000

status_t gw_job_purge_steps(rpc_ctx_t *ctx) {
    int64_t days = 90;
    const char *env = getenv("GATEWAY_SAGA_RETENTION_DAYS");
    if (env && !config_parse_int(env, 1, 36500, &days)) {
        days = 90;
    }
    db_params_t p;
    db_params_init(&p);
    db_param_int(&p, days);
    db_param_int(&p, RETENTION_BATCH);
    PGresult *r = NULL;
    /* Oldest first by creation (a saga finishes after it is created, so every saga finished
     * before the cutoff was created before it); each saga is done once (steps_dropped), so a
     * batch never meets the same sagas again. */
    status_t st = db_exec(ctx->db,
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
    if (status_is_ok(&st)) {
        long n = (long)db_get_int(r, 0, 0);
        if (n > 0) {
            log_msg(LOG_INFO, "dropped the step logs of %ld sagas finished over %lld days ago", n,
                    (long long)days);
        }
        PQclear(r);
    }
    return st;
}
