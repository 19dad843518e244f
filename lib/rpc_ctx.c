/* rpc_ctx.c -- the per-call context of the shared server: the current call of a thread, the
 * cache keys a handler invalidates, the time left before the caller's deadline. */
#include "rpc_server_internal.h"

#include "audit.h"
#include "auth.h"
#include "clock.h"
#include "credentials.h"
#include "health.h"
#include "idem.h"
#include "ids.h"
#include "log.h"
#include "near_cache.h"
#include "outbox.h"
#include "pb.h"
#include "reflection.h"
#include "request.h"
#include "rpc_client.h"
#include "rpc_metrics.h"
#include "trace.h"
#include "validate.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>

#include <assert.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static __thread rpc_ctx_t *t_current_ctx;

const rpc_ctx_t *rpc_ctx_current(void) {
    return t_current_ctx;
}

void rpc_ctx_invalidate(rpc_ctx_t *ctx, const char *key) {
    for (int i = 0; i < ctx->invalidation_count; i++) {
        if (strcmp(ctx->invalidations[i], key) == 0) {
            return;
        }
    }
    if (ctx->invalidation_count == RPC_INVALIDATIONS_MAX) {
        /* A handler touching more cache keys than this is a design bug, not bad input. */
        assert(!"too many cache invalidations in one call");
        return;
    }
    ctx->invalidations[ctx->invalidation_count++] = key;
}

int64_t rpc_ctx_remaining_ms(const rpc_ctx_t *ctx) {
    gpr_timespec now = gpr_now(ctx->deadline.clock_type);
    if (gpr_time_cmp(ctx->deadline, gpr_inf_future(ctx->deadline.clock_type)) == 0) {
        return INT64_MAX;
    }
    gpr_timespec left = gpr_time_sub(ctx->deadline, now);
    int64_t ms = (int64_t)left.tv_sec * 1000 + left.tv_nsec / 1000000;
    return ms < 0 ? 0 : ms;
}

void srv_ctx_set_current(rpc_ctx_t *ctx) {
    t_current_ctx = ctx;
}
