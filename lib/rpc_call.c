/* rpc_call.c -- a call's life in the shared server (accepted, served, finished, freed) and
 * serving a unary call: metadata, authentication and authorization, decoding, the handler in its
 * transaction with the idempotency record, the access log. */
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

int64_t srv_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- call lifecycle ---- */

static call_t *call_new(call_phase_t phase, const srv_method_t *m, srv_cq_t *q) {
    call_t *c = calloc(1, sizeof *c);
    if (c == NULL) {
        abort();
    }
    atomic_fetch_add(&g_srv.live_calls, 1);
    c->phase = phase;
    c->method = m;
    c->q = q;
    grpc_metadata_array_init(&c->req_md);
    arena_init(&c->arena);
    return c;
}

void srv_call_free(call_t *c) {
    grpc_metadata_array_destroy(&c->req_md);
    if (c->phase == CALL_UNKNOWN_NEW || (c->phase == CALL_FINISH && c->method == NULL)) {
        grpc_call_details_destroy(&c->details);
    }
    size_t req_bytes = 0;
    if (c->req_bb) {
        req_bytes = grpc_byte_buffer_length(c->req_bb);
        grpc_byte_buffer_destroy(c->req_bb);
    }
    if (c->resp_bb) {
        grpc_byte_buffer_destroy(c->resp_bb);
    }
    if (c->call) {
        grpc_call_unref(c->call);
    }
    if (c->stream) {
        if (c->stream->watching) {
            srv_watch_release();
        }
        for (int i = c->stream->out_next; i < c->stream->out_count; i++) {
            grpc_byte_buffer_destroy(c->stream->out[i]);
        }
        free(c->stream);
    }
    arena_free(&c->arena);
    free(c);
    atomic_fetch_sub(&g_srv.live_calls, 1);
    if (req_bytes >= SRV_TRIM_AFTER_REQUEST_BYTES) {
        /* The pieces of a large request were spread over malloc's per-thread arenas, which
         * keep freed memory: give it back, so that a burst of large requests does not leave
         * the process at its peak (measured: 104 MB after 16 concurrent 1 MB requests, 60 MB
         * with this). Rare (large requests are), and cheap next to receiving 256 KiB. */
        malloc_trim(0);
    }
}

void srv_call_request(const srv_method_t *m, srv_cq_t *q) {
    call_t *c = call_new(m->streaming ? CALL_STREAM_NEW : CALL_NEW, m, q);
    grpc_call_error err = grpc_server_request_registered_call(
        g_srv.server, m->handle, &c->call, &c->deadline, &c->req_md,
        m->streaming ? NULL : &c->req_bb, q->cq, q->cq, c);
    if (err != GRPC_CALL_OK) {
        log_msg(LOG_ERROR, "cannot request a call for %s: %d", m->path, (int)err);
        srv_call_free(c);
    }
}

void srv_call_request_unknown(srv_cq_t *q) {
    call_t *c = call_new(CALL_UNKNOWN_NEW, NULL, q);
    grpc_call_details_init(&c->details);
    grpc_call_error err =
        grpc_server_request_call(g_srv.server, &c->call, &c->details, &c->req_md, q->cq, q->cq, c);
    if (err != GRPC_CALL_OK) {
        log_msg(LOG_ERROR, "cannot request an unregistered call: %d", (int)err);
        srv_call_free(c);
    }
}

/* Sends status (and the response when OK) and moves the call to CALL_FINISH; the completion of
 * that batch frees it. */
void srv_call_finish(call_t *c, const status_t *st) {
    grpc_op ops[4];
    memset(ops, 0, sizeof ops);
    size_t n = 0;
    if (!c->initial_md_sent) {
        c->initial_md[0].key = grpc_slice_from_static_string("x-request-id");
        c->initial_md[0].value = grpc_slice_from_static_string(c->request_id);
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[n].data.send_initial_metadata.count = c->request_id[0] ? 1 : 0;
        ops[n].data.send_initial_metadata.metadata = c->initial_md;
        n++;
    }
    if (st->code == STATUS_OK && c->resp_bb != NULL) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].data.send_message.send_message = c->resp_bb;
        n++;
    }
    size_t trailing = 0;
    if (st->reason[0]) {
        snprintf(c->reason, sizeof c->reason, "%s", st->reason);
        c->trailing_md[0].key = grpc_slice_from_static_string("loyalty-error-reason");
        c->trailing_md[0].value = grpc_slice_from_static_string(c->reason);
        trailing = 1;
    }
    grpc_slice details = grpc_slice_from_copied_string(st->message);
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = (grpc_status_code)st->code;
    ops[n].data.send_status_from_server.status_details = st->message[0] ? &details : NULL;
    ops[n].data.send_status_from_server.trailing_metadata_count = trailing;
    ops[n].data.send_status_from_server.trailing_metadata = c->trailing_md;
    n++;
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n].data.recv_close_on_server.cancelled = &c->cancelled;
    n++;
    c->phase = CALL_FINISH;
    grpc_call_error err = grpc_call_start_batch(c->call, ops, n, c, NULL);
    grpc_slice_unref(details);
    if (err != GRPC_CALL_OK) {
        log_msg(LOG_ERROR, "cannot finish call: %d", (int)err);
        srv_call_free(c);
    }
}

/* ---- serving one call ---- */

bool srv_request_id_valid(const char *s, size_t n) {
    if (n == 0 || n > REQUEST_ID_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.' || ch == ':';
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* Binds the call's request id and trace to this thread's log lines (NULL clears). */
void srv_call_bind_log(const call_t *c) {
    if (c == NULL) {
        log_bind_request(NULL, NULL);
        log_bind_trace(NULL, NULL, NULL);
        return;
    }
    log_bind_request(c->request_id, c->method->path);
    log_bind_trace(c->trace.trace_id, c->trace.span_id, c->trace.parent_span_id);
}

/* Reads x-request-id, authorization and the W3C trace context from the request metadata. */
void srv_call_read_metadata(call_t *c, const char **auth, size_t *auth_len) {
    *auth = NULL;
    *auth_len = 0;
    c->request_id[0] = '\0';
    c->durable_with[0] = '\0';
    c->on_behalf_of[0] = '\0';
    c->on_behalf_of_invalid = false;
    const char *traceparent = NULL, *tracestate = NULL;
    size_t traceparent_len = 0, tracestate_len = 0;
    for (size_t i = 0; i < c->req_md.count; i++) {
        const grpc_metadata *md = &c->req_md.metadata[i];
        const char *v = (const char *)GRPC_SLICE_START_PTR(md->value);
        size_t vn = GRPC_SLICE_LENGTH(md->value);
        if (grpc_slice_str_cmp(md->key, "x-request-id") == 0 && srv_request_id_valid(v, vn)) {
            memcpy(c->request_id, v, vn);
            c->request_id[vn] = '\0';
        } else if (grpc_slice_str_cmp(md->key, "authorization") == 0) {
            *auth = v;
            *auth_len = vn;
        } else if (grpc_slice_str_cmp(md->key, "traceparent") == 0) {
            traceparent = v;
            traceparent_len = vn;
        } else if (grpc_slice_str_cmp(md->key, "tracestate") == 0) {
            tracestate = v;
            tracestate_len = vn;
        } else if (grpc_slice_str_cmp(md->key, RPC_DURABLE_WITH_HEADER) == 0 &&
                   vn <= RPC_DURABLE_WITH_MAX) {
            memcpy(c->durable_with, v, vn);
            c->durable_with[vn] = '\0';
        } else if (grpc_slice_str_cmp(md->key, RPC_ON_BEHALF_OF_HEADER) == 0) {
            c->on_behalf_of_invalid = vn > CRED_ID_MAX;
            if (!c->on_behalf_of_invalid) {
                memcpy(c->on_behalf_of, v, vn);
                c->on_behalf_of[vn] = '\0';
                c->on_behalf_of_invalid = !cred_id_valid(c->on_behalf_of);
            }
        }
    }
    trace_begin(&c->trace, traceparent, traceparent_len, tracestate, tracestate_len);
    if (c->request_id[0] == '\0') {
        id_random_token("0123456789abcdef", 20, c->request_id);
    }
}

typedef struct tx_call {
    rpc_ctx_t *ctx;
    const srv_method_t *m;
    const ProtobufCMessage *req;
    ProtobufCMessage *resp; /* may be replaced by a replayed response */
    const unsigned char *req_bytes;
    size_t req_len;
    const char *idempotency_key;
} tx_call_t;

static status_t call_run_in_tx(db_t *db, void *arg) {
    tx_call_t *t = arg;
    protobuf_c_message_init(t->m->md->output, t->resp); /* a retried attempt starts afresh */
    t->ctx->invalidation_count = 0;
    t->ctx->outbox_emitted = 0;
    if (t->m->audited) {
        /* A relayed call is recorded as its original caller's, through the relaying one. */
        const char *behalf = t->ctx->on_behalf_of;
        bool relayed = behalf != NULL && behalf[0] != '\0';
        status_t st = audit_begin(db, t->ctx->merchant_id, relayed ? behalf : t->ctx->credential_id,
                                  relayed ? t->ctx->credential_id : "", t->m->path,
                                  t->idempotency_key, t->ctx->request_id);
        if (!status_is_ok(&st)) {
            return st;
        }
    }
    status_t st = t->m->m->handler(t->ctx, t->req, t->resp);
    if (!status_is_ok(&st) || t->m->m->kind != RPC_MUTATE) {
        return st;
    }
    size_t len = 0;
    unsigned char *bytes = pb_pack_arena(t->ctx->arena, t->resp, &len);
    /* Sent with the COMMIT: a key used before makes the commit fail and the change roll back;
     * call_mutate then answers from the record. */
    return idem_record_on_commit(db, t->ctx->arena, t->ctx->merchant_id, t->idempotency_key,
                                 t->m->path, t->req_bytes, t->req_len, bytes, len);
}

/* RPC_MUTATE (docs/architecture.md#idempotency-keys): the change and the record of its
 * idempotency key commit together, so a key is taken exactly when its change is made. Every
 * first call runs once and records its key with the COMMIT, in the same round trip. A call whose
 * key turns out to be taken — a retry, or a concurrent duplicate that committed first, which the
 * record and the change's own row locks wait for — is rolled back and answered from the record: the
 * stored response for the same request, ALREADY_EXISTS IDEMPOTENCY_KEY_REUSED for another. A call
 * that failed is checked the same way, since a retry of a call that succeeded may fail on the state
 * the first one left (a second hold of the same points). */
static status_t call_mutate(rpc_ctx_t *ctx, tx_call_t *t, bool as_part) {
    status_t st =
        as_part ? db_tx_part(ctx->db, call_run_in_tx, t) : db_tx(ctx->db, call_run_in_tx, t);
    if (status_is_ok(&st) || st.code == STATUS_UNAVAILABLE) {
        return st;
    }
    bool key_taken = idem_key_taken(ctx->db, &st); /* before the lookup resets the constraint */
    idem_found_t found = IDEM_NONE;
    unsigned char *prev = NULL;
    size_t prev_len = 0;
    status_t look = idem_lookup(ctx->db, ctx->arena, ctx->merchant_id, t->idempotency_key,
                                t->m->path, t->req_bytes, t->req_len, &found, &prev, &prev_len);
    if (!status_is_ok(&look)) {
        return look;
    }
    if (found == IDEM_DIFFERENT) {
        return status_make(STATUS_ALREADY_EXISTS, REASON_IDEMPOTENCY_KEY_REUSED,
                           "idempotency key already used for a different request");
    }
    if (found == IDEM_SAME) {
        ctx->outbox_emitted = 0; /* nothing of the rolled-back run was kept */
        t->resp = pb_unpack_arena(ctx->arena, t->m->md->output, prev, prev_len);
        return t->resp ? status_ok()
                       : status_make(STATUS_INTERNAL, REASON_DATABASE_ERROR,
                                     "cannot decode a stored response");
    }
    if (key_taken) {
        /* Taken, then purged in between: rare; the caller may simply retry. */
        return status_make(STATUS_ABORTED, REASON_CONCURRENCY_CONFLICT,
                           "concurrent use of the idempotency key, safe to retry");
    }
    return st; /* a new key: the call's own answer */
}

status_t srv_call_mutate(rpc_ctx_t *ctx, const srv_method_t *m, const ProtobufCMessage *req,
                         ProtobufCMessage **resp, const char *idempotency_key, bool as_part) {
    assert(m->m->kind == RPC_MUTATE && idempotency_key != NULL);
    tx_call_t t = {
        .ctx = ctx, .m = m, .req = req, .resp = *resp, .idempotency_key = idempotency_key};
    t.req_bytes = pb_pack_arena(ctx->arena, req, &t.req_len);
    status_t st = call_mutate(ctx, &t, as_part);
    *resp = t.resp;
    return st;
}

/* Checks done before decoding: authentication, deadline, readiness. With a credential file
 * the token is looked up here and authorised for the request's merchant once it is decoded
 * (srv_call_authorize); without one the shared token is the only credential, as it always was. */
status_t srv_call_admit(call_t *c, const char *auth, size_t auth_len) {
    const srv_method_t *m = c->method;
    if (!m->is_health && credentials_enabled()) {
        status_t st = credentials_authenticate(auth, auth_len, c->cred_digest);
        if (!status_is_ok(&st)) {
            return st;
        }
    } else if (!m->is_health && g_srv.config.auth_token[0]) {
        if (!auth_bearer_matches(g_srv.config.auth_token, auth, auth_len)) {
            return status_make(STATUS_UNAUTHENTICATED, REASON_UNAUTHENTICATED,
                               "missing or invalid bearer token");
        }
        snprintf(c->credential_id, sizeof c->credential_id, "%s", CRED_SERVICE_ID);
    }
    if (gpr_time_cmp(c->deadline, gpr_now(c->deadline.clock_type)) < 0) {
        return status_make(STATUS_DEADLINE_EXCEEDED, REASON_DEADLINE_EXCEEDED,
                           "deadline passed before the call was served");
    }
    if (!m->is_health && !health_is_migrated()) {
        return status_make(STATUS_UNAVAILABLE, REASON_STARTING, "service is starting");
    }
    return status_ok();
}

/* Decodes the call's request message into its arena with the runtime's string check
 * (request_decode); the byte buffer stays the call's. */
status_t srv_call_decode(call_t *c, ProtobufCMessage **req) {
    grpc_byte_buffer_reader reader;
    if (!grpc_byte_buffer_reader_init(&reader, c->req_bb)) {
        return status_make(STATUS_INVALID_ARGUMENT, REASON_MALFORMED_REQUEST, "unreadable request");
    }
    grpc_slice s = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    status_t st = request_decode(&c->arena, c->method->md->input, GRPC_SLICE_START_PTR(s),
                                 GRPC_SLICE_LENGTH(s), req);
    grpc_slice_unref(s);
    return st;
}

/* With a credential file: may the caller call this method for the request's merchant? The
 * merchant is the request's top-level merchant_id, also where it may be empty
 * (RPC_READ_ANY_MERCHANT: "" is the view across merchants). */
status_t srv_call_authorize(call_t *c, const ProtobufCMessage *req, rpc_ctx_t *ctx) {
    const srv_method_t *m = c->method;
    if (m->is_health || !credentials_enabled()) {
        return status_ok();
    }
    const char *merchant_id = ctx->merchant_id;
    if (!m->has_merchant) {
        merchant_id = pb_get_string_field(req, "merchant_id");
    }
    return credentials_authorize(c->cred_digest, m->access, merchant_id ? merchant_id : "",
                                 c->credential_id);
}

/* Whether the call's RPC_ON_BEHALF_OF_HEADER is taken (after authorization, which names the
 * caller's credential): from the service credential it is, and ctx->on_behalf_of says whom the
 * call acts for; from any other credential the call is refused, since a credential must not
 * put its doings on another's account; without authentication (nobody is anybody) it is
 * ignored. */
status_t srv_call_check_on_behalf(const call_t *c, rpc_ctx_t *ctx) {
    ctx->on_behalf_of = "";
    if (c->on_behalf_of[0] == '\0' && !c->on_behalf_of_invalid) {
        return status_ok();
    }
    bool open = !credentials_enabled() && !g_srv.config.auth_token[0]; /* no auth at all */
    if (open) {
        return status_ok();
    }
    if (strcmp(c->credential_id, CRED_SERVICE_ID) != 0) {
        return status_make(STATUS_PERMISSION_DENIED, REASON_ON_BEHALF_OF_NOT_ALLOWED,
                           "only the service credential may act on behalf of another "
                           "credential (%s)",
                           RPC_ON_BEHALF_OF_HEADER);
    }
    if (c->on_behalf_of_invalid) {
        return status_make(STATUS_INVALID_ARGUMENT, REASON_ON_BEHALF_OF_MALFORMED,
                           "%s must be a credential id", RPC_ON_BEHALF_OF_HEADER);
    }
    ctx->on_behalf_of = c->on_behalf_of;
    return status_ok();
}

/* Whether this call's change may commit without waiting for the disk: its caller is a service
 * that says its own later commit on this same PostgreSQL cluster makes the change durable before
 * anyone relies on it (RPC_DURABLE_WITH_HEADER; docs/architecture.md "Durability of saga
 * steps"). Any other caller, or another cluster, gets the usual commit. */
bool srv_call_commit_async(const call_t *c, db_t *db) {
    if (c->durable_with[0] == '\0') {
        return false;
    }
    bool open = !credentials_enabled() && !g_srv.config.auth_token[0]; /* no auth at all */
    if (!open && strcmp(c->credential_id, CRED_SERVICE_ID) != 0) {
        return false;
    }
    const char *cluster = db_cluster_id(db);
    return cluster[0] != '\0' && strcmp(cluster, c->durable_with) == 0;
}

static status_t call_dispatch(call_t *c, rpc_ctx_t *ctx, ProtobufCMessage **resp_out) {
    const srv_method_t *m = c->method;
    if (c->req_bb == NULL) {
        return status_make(STATUS_INVALID_ARGUMENT, REASON_MALFORMED_REQUEST,
                           "missing request message");
    }
    if (m->is_batch) {
        return srv_batch_serve(c, ctx, resp_out);
    }
    ProtobufCMessage *req = NULL;
    status_t st = srv_call_decode(c, &req);
    if (!status_is_ok(&st)) {
        return st;
    }
    const char *idempotency_key = NULL;
    st = request_check_ids(req, m->has_merchant, m->m->kind == RPC_MUTATE, &ctx->merchant_id,
                           &idempotency_key);
    if (!status_is_ok(&st)) {
        return st;
    }
    st = srv_call_authorize(c, req, ctx);
    if (status_is_ok(&st)) {
        st = srv_call_check_on_behalf(c, ctx);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    ProtobufCMessage *resp = pb_new(&c->arena, m->md->output);
    *resp_out = resp;
    if (m->m->kind == RPC_READ || m->m->kind == RPC_READ_ANY_MERCHANT) {
        return m->m->handler(ctx, req, resp);
    }
    tx_call_t t = {.ctx = ctx, .m = m, .req = req, .resp = resp};
    if (m->m->kind == RPC_MUTATE) {
        t.idempotency_key = idempotency_key;
        assert(t.idempotency_key != NULL); /* checked at registration */
        t.req_bytes = pb_pack_arena(&c->arena, req, &t.req_len);
    }
    bool commit_async = srv_call_commit_async(c, ctx->db);
    db_set_commit_async(ctx->db, commit_async);
    st =
        m->m->kind == RPC_MUTATE ? call_mutate(ctx, &t, false) : db_tx(ctx->db, call_run_in_tx, &t);
    if (commit_async) {
        db_set_commit_async(ctx->db, false);
    }
    *resp_out = t.resp;
    return st;
}

void srv_call_serve(worker_t *w, call_t *c) {
    int64_t start = srv_now_us();
    const char *auth;
    size_t auth_len;
    srv_call_read_metadata(c, &auth, &auth_len);
    rpc_ctx_t ctx = {
        .arena = &c->arena,
        .db = w->db,
        .cache = w->cache,
        .config = &g_srv.config,
        .service_state = g_srv.service_state,
        .method = c->method->path,
        .request_id = c->request_id,
        .trace = &c->trace,
        .merchant_id = "",
        .credential_id = c->credential_id,
        .on_behalf_of = "",
        .deadline = c->deadline,
        .now_s = (int64_t)time(NULL),
    };
    srv_ctx_set_current(&ctx);
    srv_call_bind_log(c);
    ProtobufCMessage *resp = NULL;
    status_t st = srv_call_admit(c, auth, auth_len);
    if (status_is_ok(&st)) {
        st = call_dispatch(c, &ctx, &resp);
    }
    for (int i = 0; i < ctx.invalidation_count; i++) {
        cache_del(w->cache, ctx.invalidations[i]);
    }
    if (status_is_ok(&st) && ctx.outbox_emitted > 0) {
        outbox_kick();
    }
    if (status_is_ok(&st)) {
        c->resp_bb = pb_to_byte_buffer(resp);
    }
    int64_t latency_us = srv_now_us() - start;
    rpc_metrics_server_handled(c->method->path, false, st.code, st.reason, latency_us);
    if (!c->method->is_health || !status_is_ok(&st)) {
        log_rpc(c->method->path, c->request_id, ctx.merchant_id, c->credential_id, st.code,
                st.reason, st.message, latency_us);
    }
    srv_call_bind_log(NULL);
    srv_ctx_set_current(NULL);
    srv_call_finish(c, &st);
}

void srv_call_serve_unknown(call_t *c) {
    char *method = grpc_slice_to_c_string(c->details.method);
    snprintf(c->request_id, sizeof c->request_id, "%s", "");
    status_t st = status_make(STATUS_UNIMPLEMENTED, REASON_UNKNOWN_METHOD, "unknown method");
    log_rpc(method, "", "", "", st.code, st.reason, st.message, 0);
    gpr_free(method);
    srv_call_finish(c, &st);
}
