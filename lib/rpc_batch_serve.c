/* rpc_batch_serve.c -- BatchService/Run (batch.proto), served by the runtime of every service:
 * the calls of one mutating method in one transaction, each in a part of its own (db_tx_part)
 * with its own idempotency record, answer, metrics and access-log line. What a batch saves is
 * what every call pays once: the RPC, the transaction's BEGIN and COMMIT, a thread's turn.
 * First, though, the calls of each merchant run merged, in one part: by the method's merger
 * (rpc_merger_t), which shares statements between them, or one after another without a part
 * each; their keys are recorded in one statement. The calls a merger leaves out, or all of them
 * when the merged run fails (a refusal, a key used before), then run one by one as above. */
#include "rpc_server_internal.h"

#include "cache.h"
#include "credentials.h"
#include "idem.h"
#include "log.h"
#include "loyalty/v1/batch.pb-c.h"
#include "outbox.h"
#include "pb.h"
#include "request.h"
#include "rpc_metrics.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One call of the batch, from decoding to its answer. */
typedef struct batch_item {
    size_t index; /* in the request, and so in the response */
    const char *lock_key;
    rpc_ctx_t *ctx; /* arena memory: an rpc_ctx_t is large */
    trace_ctx_t trace;
    char request_id[REQUEST_ID_MAX + 1];
    const ProtobufCMessage *req;
    ProtobufCMessage *resp;
    const char *idempotency_key;
    status_t status;
    bool merged; /* answered by the method's merger: not run by itself */
} batch_item_t;

typedef struct batch_run {
    const srv_method_t *m;
    batch_item_t *items;
    batch_item_t **order; /* the admitted items, by lock_key */
    size_t n_order;
} batch_run_t;

static const srv_method_t *batch_method(const char *path) {
    for (int i = 0; i < g_srv.method_count; i++) {
        if (strcmp(g_srv.methods[i].path, path) == 0) {
            return &g_srv.methods[i];
        }
    }
    return NULL;
}

/* By merchant, so that each merchant's calls are next to each other for the merger, then by
 * lock key. */
static int batch_order_cmp(const void *a, const void *b) {
    const batch_item_t *x = *(batch_item_t *const *)a, *y = *(batch_item_t *const *)b;
    int c = strcmp(x->ctx->merchant_id, y->ctx->merchant_id);
    if (c == 0) {
        c = strcmp(x->lock_key, y->lock_key);
    }
    if (c != 0) {
        return c;
    }
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Decodes and checks one call as call_dispatch would, with the batch's credential. */
static status_t batch_admit(call_t *c, const rpc_ctx_t *outer, const srv_method_t *m,
                            const Loyalty__V1__BatchCall *in, batch_item_t *it) {
    rpc_ctx_t *ctx = it->ctx;
    size_t rn = strlen(in->request_id);
    if (rn > 0 && srv_request_id_valid(in->request_id, rn)) {
        memcpy(it->request_id, in->request_id, rn + 1);
    } else {
        snprintf(it->request_id, sizeof it->request_id, "%s", outer->request_id);
    }
    trace_begin(&it->trace, in->traceparent, strlen(in->traceparent), NULL, 0);
    *ctx = (rpc_ctx_t){
        .arena = outer->arena,
        .db = outer->db,
        .cache = outer->cache,
        .config = outer->config,
        .service_state = outer->service_state,
        .method = m->path,
        .request_id = it->request_id,
        .trace = &it->trace,
        .merchant_id = "",
        .credential_id = outer->credential_id,
        .on_behalf_of = outer->on_behalf_of,
        .deadline = outer->deadline,
        .now_s = outer->now_s,
    };
    ProtobufCMessage *req = NULL;
    status_t st =
        request_decode(outer->arena, m->md->input, in->request.data, in->request.len, &req);
    if (!status_is_ok(&st)) {
        return st;
    }
    st = request_check_ids(req, m->has_merchant, true, &ctx->merchant_id, &it->idempotency_key);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (credentials_enabled()) {
        char credential_id[CRED_ID_MAX + 1];
        st = credentials_authorize(c->cred_digest, m->access, ctx->merchant_id, credential_id);
        if (!status_is_ok(&st)) {
            return st;
        }
    }
    it->req = req;
    return status_ok();
}

/* One call, answered as if alone: in the batch's transaction as a part of it (`as_part`), or in
 * a transaction of its own. */
static void batch_item_run(const srv_method_t *m, batch_item_t *it, bool as_part) {
    srv_ctx_set_current(it->ctx);
    log_bind_request(it->request_id, m->path);
    it->resp = pb_new(it->ctx->arena, m->md->output);
    it->status = srv_call_mutate(it->ctx, m, it->req, &it->resp, it->idempotency_key, as_part);
}

/* The calls of one merchant, [from, to) of the batch's order, given to the method's merger. */
typedef struct batch_group {
    batch_run_t *b;
    size_t from, to;
    rpc_merge_call_t *calls;
} batch_group_t;

/* The batch's transaction is gone: its connection was lost. The state of the handle decides,
 * not only the status, which a handler or merger may have answered as something else. */
static bool batch_lost_db(const db_t *db, const status_t *st) {
    return db_tx_lost(db) ||
           (st->code == STATUS_UNAVAILABLE && strcmp(st->reason, "DATABASE_UNAVAILABLE") == 0);
}

/* The merger of a method without one of its own: the calls' handlers one after another, as
 * they would run alone but without a part each, so that each sees the ones before it. The
 * first refusal abandons the merged run (every call then runs by itself, where the refusal is
 * answered with the idempotency check a lone call has). */
status_t rpc_merge_in_sequence(rpc_merge_call_t *calls, size_t n) {
    for (size_t i = 0; i < n; i++) {
        srv_ctx_set_current(calls[i].ctx);
        log_bind_request(calls[i].ctx->request_id, calls[i].ctx->method);
        status_t st = calls[i].handler(calls[i].ctx, calls[i].req, calls[i].resp);
        if (!status_is_ok(&st)) {
            return st;
        }
    }
    return status_ok();
}

/* The merged run, as one part: the merger, then one statement recording the keys of the calls
 * it answered (sent with the part's end; a key taken already fails the part). */
static status_t batch_merge_part(db_t *db, void *arg) {
    batch_group_t *g = arg;
    const srv_method_t *m = g->b->m;
    size_t n = g->to - g->from;
    for (size_t i = 0; i < n; i++) { /* a retried part starts afresh */
        batch_item_t *it = g->b->order[g->from + i];
        it->ctx->invalidation_count = 0;
        it->ctx->outbox_emitted = 0;
        it->resp = pb_new(it->ctx->arena, m->md->output);
        g->calls[i] = (rpc_merge_call_t){
            .ctx = it->ctx, .req = it->req, .resp = it->resp, .handler = m->m->handler};
    }
    rpc_ctx_t *ctx = g->calls[0].ctx;
    srv_ctx_set_current(ctx);
    status_t st = m->merge ? m->merge(ctx, g->calls, n) : rpc_merge_in_sequence(g->calls, n);
    if (!status_is_ok(&st)) {
        return st;
    }
    idem_record_t *records = arena_alloc(ctx->arena, n * sizeof *records);
    size_t n_records = 0;
    for (size_t i = 0; i < n; i++) {
        if (g->calls[i].alone) {
            continue;
        }
        batch_item_t *it = g->b->order[g->from + i];
        idem_record_t *r = &records[n_records++];
        r->key = it->idempotency_key;
        r->request = pb_pack_arena(ctx->arena, it->req, &r->request_len);
        r->response = pb_pack_arena(ctx->arena, g->calls[i].resp, &r->response_len);
    }
    if (n_records == 0) {
        return status_ok();
    }
    return idem_record_many_on_commit(db, ctx->arena, ctx->merchant_id, m->path, records,
                                      n_records);
}

/* Runs one merchant's calls through the merger; marks those it answered. A failed merged run
 * (a refusal it could not leave out, a key used before) leaves every call to run by itself. */
static status_t batch_merge(batch_run_t *b, size_t from, size_t to) {
    batch_group_t g = {.b = b, .from = from, .to = to};
    g.calls = arena_alloc(b->order[from]->ctx->arena, (to - from) * sizeof *g.calls);
    status_t st = db_tx_part(b->order[from]->ctx->db, batch_merge_part, &g);
    if (batch_lost_db(b->order[from]->ctx->db, &st)) {
        return status_make(STATUS_UNAVAILABLE, REASON_DATABASE_UNAVAILABLE, "database unavailable");
    }
    for (size_t i = from; i < to && status_is_ok(&st); i++) {
        if (!g.calls[i - from].alone) {
            b->order[i]->merged = true;
            b->order[i]->resp = g.calls[i - from].resp;
            b->order[i]->status = status_ok();
        }
    }
    if (!status_is_ok(&st)) {
        log_msg(LOG_DEBUG, "merged run of %zu calls not kept (%s): each runs by itself", to - from,
                st.reason);
    }
    return status_ok();
}

/* The batch's transaction: each merchant's calls, merged first (by the method's merger, or in
 * sequence; not when audited: the audit trail records calls one by one), then those left in
 * lock_key order, each a part of its own. Only a failure of the transaction itself (a lost
 * connection) fails it; db_tx then runs it again from the start, so every call starts afresh
 * here. */
static status_t batch_run_in_tx(db_t *db, void *arg) {
    batch_run_t *b = arg;
    bool merge = !b->m->audited;
    for (size_t from = 0; from < b->n_order;) {
        size_t to = from + 1;
        while (to < b->n_order &&
               strcmp(b->order[to]->ctx->merchant_id, b->order[from]->ctx->merchant_id) == 0) {
            to++;
        }
        for (size_t k = from; k < to; k++) {
            b->order[k]->merged = false;
        }
        if (merge && to - from >= 2) {
            status_t st = batch_merge(b, from, to);
            if (!status_is_ok(&st)) {
                return st; /* the transaction is gone with its connection */
            }
        }
        for (size_t k = from; k < to; k++) {
            batch_item_t *it = b->order[k];
            if (it->merged) {
                continue;
            }
            batch_item_run(b->m, it, true);
            if (batch_lost_db(db, &it->status)) {
                return status_make(STATUS_UNAVAILABLE, REASON_DATABASE_UNAVAILABLE,
                                   "database unavailable"); /* db_tx runs it all again */
            }
        }
        from = to;
    }
    return status_ok();
}

/* Each call's line in the access log and its metrics, as if it had been called alone. */
static void batch_report(const srv_method_t *m, const batch_item_t *it, int64_t latency_us,
                         const char *credential_id) {
    rpc_metrics_server_handled(m->path, false, it->status.code, it->status.reason, latency_us);
    log_bind_request(it->request_id, m->path);
    log_bind_trace(it->trace.trace_id, it->trace.span_id, it->trace.parent_span_id);
    log_rpc(m->path, it->request_id, it->ctx->merchant_id, credential_id, it->status.code,
            it->status.reason, it->status.message, latency_us);
}

status_t srv_batch_serve(call_t *c, rpc_ctx_t *ctx, ProtobufCMessage **resp_out) {
    int64_t start = srv_now_us();
    ProtobufCMessage *msg = NULL;
    status_t st = srv_call_decode(c, &msg);
    if (!status_is_ok(&st)) {
        return st;
    }
    const Loyalty__V1__BatchRunRequest *req = (const void *)msg;
    const srv_method_t *m = batch_method(req->method);
    if (m == NULL || m->m->kind != RPC_MUTATE || m->streaming || m->is_batch) {
        return status_make(STATUS_INVALID_ARGUMENT, REASON_BATCH_NOT_SUPPORTED,
                           "%s cannot be batched: only a mutating method of this service can",
                           req->method);
    }
    if (req->n_calls == 0 || req->n_calls > RPC_BATCH_CALLS_MAX) {
        return status_invalid_field("calls", "1..%d calls", RPC_BATCH_CALLS_MAX);
    }
    arena_t *a = ctx->arena;
    batch_run_t b = {.m = m};
    b.items = arena_alloc(a, req->n_calls * sizeof *b.items);
    b.order = arena_alloc(a, req->n_calls * sizeof *b.order);
    for (size_t i = 0; i < req->n_calls; i++) {
        batch_item_t *it = &b.items[i];
        memset(it, 0, sizeof *it);
        it->index = i;
        it->lock_key = req->calls[i]->lock_key;
        it->ctx = arena_alloc(a, sizeof *it->ctx);
        it->status = batch_admit(c, ctx, m, req->calls[i], it);
        if (status_is_ok(&it->status)) { /* decoded and authorised: it runs */
            b.order[b.n_order++] = it;
        }
    }
    qsort(b.order, b.n_order, sizeof *b.order, batch_order_cmp);
    if (b.n_order > 0) {
        bool commit_async = srv_call_commit_async(c, ctx->db);
        db_set_commit_async(ctx->db, commit_async);
        if (b.n_order == 1) { /* alone: its own transaction, without a savepoint */
            batch_item_run(m, b.order[0], false);
            st = status_ok();
        } else {
            st = db_tx(ctx->db, batch_run_in_tx, &b);
        }
        if (commit_async) {
            db_set_commit_async(ctx->db, false);
        }
        srv_ctx_set_current(ctx);
        srv_call_bind_log(c);
        for (size_t k = 0; k < b.n_order; k++) {
            rpc_metrics_batch_call(m->path, b.order[k]->merged);
            if (!status_is_ok(&st)) {
                b.order[k]->status = st; /* nothing of the batch committed */
                b.order[k]->merged = false;
            }
        }
    }
    Loyalty__V1__BatchRunResponse *resp = pb_new(a, &loyalty__v1__batch_run_response__descriptor);
    resp->n_results = req->n_calls;
    resp->results = arena_alloc(a, req->n_calls * sizeof *resp->results);
    int64_t latency_us = srv_now_us() - start;
    for (size_t i = 0; i < req->n_calls; i++) {
        batch_item_t *it = &b.items[i];
        Loyalty__V1__BatchCallResult *r = pb_new(a, &loyalty__v1__batch_call_result__descriptor);
        r->code = (int32_t)it->status.code;
        r->reason = arena_strdup(a, it->status.reason);
        r->message = arena_strdup(a, it->status.message);
        if (status_is_ok(&it->status)) {
            r->response.data = pb_pack_arena(a, it->resp, &r->response.len);
            for (int k = 0; k < it->ctx->invalidation_count; k++) {
                rpc_ctx_invalidate(ctx, it->ctx->invalidations[k]);
            }
            ctx->outbox_emitted += it->ctx->outbox_emitted;
        }
        resp->results[i] = r;
        batch_report(m, it, latency_us, c->credential_id);
    }
    srv_call_bind_log(c);
    *resp_out = &resp->base;
    return status_ok();
}

/* Never called: call_dispatch hands BatchService/Run to srv_batch_serve, which needs the call
 * (its credential and metadata) and not only a context. */
static status_t batch_run_handler(rpc_ctx_t *ctx, const ProtobufCMessage *req,
                                  ProtobufCMessage *resp) {
    (void)ctx;
    (void)req;
    (void)resp;
    assert(!"BatchService/Run is served by srv_batch_serve");
    return status_make(STATUS_INTERNAL, REASON_BAD_SERVICE_TABLE,
                       "BatchService/Run not dispatched");
}

static const rpc_method_t batch_methods_served[] = {
    {"Run", batch_run_handler, RPC_READ_ANY_MERCHANT},
    {NULL, NULL, RPC_READ},
};

const rpc_service_t batch_service = {&loyalty__v1__batch_service__descriptor, batch_methods_served,
                                     NULL};
