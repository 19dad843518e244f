/* rpc_server.c -- the shared gRPC server on the core C API.
 *
 * Threads: W workers spread over K completion queues; each worker owns a PostgreSQL and a Redis
 * connection and serves whole calls (decode, handler, encode). Every registered method keeps
 * one pending request per worker of each queue, re-armed as soon as a call arrives, plus one
 * unregistered request per queue that answers UNIMPLEMENTED. Streaming methods (RPC_STREAM) keep
 * exactly one batch in flight per call (receive, then each send, then the next receive), so a
 * stream holds a worker only while its handler runs and never needs a lock. A monitor thread
 * applies the migrations and probes PostgreSQL; job threads run the timers (one per service
 * job). The main thread waits for SIGTERM/SIGINT and runs the shutdown sequence: NOT_SERVING,
 * drain delay, stop listening, grace period for in-flight calls, cancel the rest, wait until
 * every call context is freed, then tear down in reverse order. */
#include "rpc_server.h"

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

#define SRV_METHODS_MAX 128
#define SRV_WORKERS_MAX 512
#define SRV_CQS_MAX 64
#define SRV_PATH_MAX 160
#define IDEMPOTENCY_RETENTION_DAYS 30
#define IDEMPOTENCY_PURGE_BATCH 1000
#define MONITOR_PROBE_MS 2000
#define SRV_MMAP_THRESHOLD_BYTES (128 * 1024)
/* A request at least this large makes its call give freed heap memory back when it ends. */
#define SRV_TRIM_AFTER_REQUEST_BYTES (256 * 1024)

typedef struct srv_method {
    const rpc_method_t *m;
    const ProtobufCMethodDescriptor *md;
    char path[SRV_PATH_MAX];
    void *handle;
    bool is_health;
    bool has_merchant;    /* the request has a top-level merchant_id */
    bool streaming;       /* RPC_STREAM: registered without payload, read with RECV_MESSAGE */
    cred_access_t access; /* who may call it with a credential file */
    bool audited;         /* a configuration change: recorded in audit_log (audit.h) */
} srv_method_t;

typedef struct srv_cq {
    grpc_completion_queue *cq;
    int workers;
} srv_cq_t;

typedef struct worker {
    pthread_t thread;
    srv_cq_t *q;
    db_t *db;
    cache_t *cache;
} worker_t;

typedef enum call_phase {
    CALL_NEW,
    CALL_UNKNOWN_NEW,
    CALL_STREAM_NEW,  /* a pending request of a streaming method */
    CALL_STREAM_RECV, /* a stream waits for its next request message */
    CALL_STREAM_SEND, /* a stream sends one queued response */
    CALL_FINISH,
} call_phase_t;

/* The outgoing side of one stream: what the handler queued for the last request message, and
 * how the stream ends once that is sent. */
struct rpc_stream {
    const ProtobufCMessageDescriptor *output;
    grpc_byte_buffer *out[RPC_STREAM_SENDS_MAX];
    int out_count;
    int out_next; /* the one in flight, or the next to send */
    bool ending;  /* finish with `end` once the queue is sent */
    status_t end;
    long messages; /* request messages received */
    int64_t start_us;
    char merchant_id[MERCHANT_ID_MAX + 1]; /* the first one seen, for the log line */
    /* A watch (rpc_stream_watch): open after the half-close, parked between changes. */
    bool watching;
    bool half_closed;
    int watch_state; /* the last state sent */
    rpc_watch_state_fn watch_state_of;
    rpc_watch_fill_fn watch_fill;
    char watch_key[RPC_WATCH_KEY_MAX + 1];
};

/* One accepted (or pending) call. Freed by call_free as the last step of its life. */
typedef struct call {
    call_phase_t phase;
    const srv_method_t *method; /* NULL for the unregistered-method request */
    srv_cq_t *q;
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array req_md;
    grpc_call_details details; /* unregistered requests only */
    grpc_byte_buffer *req_bb;
    grpc_byte_buffer *resp_bb;
    int cancelled;
    bool initial_md_sent; /* streams send it with their first receive */
    rpc_stream_t *stream; /* RPC_STREAM calls once accepted, else NULL */
    grpc_metadata initial_md[1];
    grpc_metadata trailing_md[1];
    char request_id[REQUEST_ID_MAX + 1];
    char reason[STATUS_REASON_MAX];
    trace_ctx_t trace;                           /* read with the metadata */
    uint8_t cred_digest[CRED_DIGEST_BYTES];      /* the bearer token's, with a credential file */
    char credential_id[CRED_ID_MAX + 1];         /* who called: "" without auth */
    char durable_with[RPC_DURABLE_WITH_MAX + 1]; /* RPC_DURABLE_WITH_HEADER's value, or "" */
    arena_t arena;
} call_t;

static struct {
    const rpc_server_options_t *opts;
    config_t config;
    grpc_server *server;
    srv_cq_t cqs[SRV_CQS_MAX];
    int cq_count;
    worker_t *workers;
    int worker_count;
    srv_method_t methods[SRV_METHODS_MAX];
    int method_count;
    void *service_state;
    atomic_bool shutting_down;
    atomic_long live_calls;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool shutdown_tag_seen;
    bool stop_background;
    int shutdown_tag;
    pthread_t monitor_thread;
    bool job_thread_started;
    pthread_t outbox_thread;
    db_pool_t *db_pool; /* every thread's handle borrows from it (or keeps its own connection) */
} g_srv = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

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

static int64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- call lifecycle ---- */

/* Watches (rpc_stream_watch) parked between changes: no batch is in flight on them, so
 * whoever takes one out of the list under the lock owns it until its next batch starts. */
static struct {
    pthread_mutex_t mu;
    struct call *parked[RPC_WATCHES_MAX];
    int parked_count;
    int open_count; /* watches alive, parked or not */
    bool closed;    /* the server stopped listening: watches end instead of parking */
} g_watch = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void watch_release(void) {
    pthread_mutex_lock(&g_watch.mu);
    g_watch.open_count--;
    pthread_mutex_unlock(&g_watch.mu);
}

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

static void call_free(call_t *c) {
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
            watch_release();
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

static void call_request(const srv_method_t *m, srv_cq_t *q) {
    call_t *c = call_new(m->streaming ? CALL_STREAM_NEW : CALL_NEW, m, q);
    grpc_call_error err = grpc_server_request_registered_call(
        g_srv.server, m->handle, &c->call, &c->deadline, &c->req_md,
        m->streaming ? NULL : &c->req_bb, q->cq, q->cq, c);
    if (err != GRPC_CALL_OK) {
        log_msg(LOG_ERROR, "cannot request a call for %s: %d", m->path, (int)err);
        call_free(c);
    }
}

static void call_request_unknown(srv_cq_t *q) {
    call_t *c = call_new(CALL_UNKNOWN_NEW, NULL, q);
    grpc_call_details_init(&c->details);
    grpc_call_error err =
        grpc_server_request_call(g_srv.server, &c->call, &c->details, &c->req_md, q->cq, q->cq, c);
    if (err != GRPC_CALL_OK) {
        log_msg(LOG_ERROR, "cannot request an unregistered call: %d", (int)err);
        call_free(c);
    }
}

/* Sends status (and the response when OK) and moves the call to CALL_FINISH; the completion of
 * that batch frees it. */
static void call_finish(call_t *c, const status_t *st) {
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
        call_free(c);
    }
}

/* ---- serving one call ---- */

static bool request_id_valid(const char *s, size_t n) {
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
static void call_bind_log(const call_t *c) {
    if (c == NULL) {
        log_bind_request(NULL, NULL);
        log_bind_trace(NULL, NULL, NULL);
        return;
    }
    log_bind_request(c->request_id, c->method->path);
    log_bind_trace(c->trace.trace_id, c->trace.span_id, c->trace.parent_span_id);
}

/* Reads x-request-id, authorization and the W3C trace context from the request metadata. */
static void call_read_metadata(call_t *c, const char **auth, size_t *auth_len) {
    *auth = NULL;
    *auth_len = 0;
    c->request_id[0] = '\0';
    c->durable_with[0] = '\0';
    const char *traceparent = NULL, *tracestate = NULL;
    size_t traceparent_len = 0, tracestate_len = 0;
    for (size_t i = 0; i < c->req_md.count; i++) {
        const grpc_metadata *md = &c->req_md.metadata[i];
        const char *v = (const char *)GRPC_SLICE_START_PTR(md->value);
        size_t vn = GRPC_SLICE_LENGTH(md->value);
        if (grpc_slice_str_cmp(md->key, "x-request-id") == 0 && request_id_valid(v, vn)) {
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
        status_t st = audit_begin(db, t->ctx->merchant_id, t->ctx->credential_id, t->m->path,
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
static status_t call_mutate(rpc_ctx_t *ctx, tx_call_t *t) {
    status_t st = db_tx(ctx->db, call_run_in_tx, t);
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
        return status_make(STATUS_ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED",
                           "idempotency key already used for a different request");
    }
    if (found == IDEM_SAME) {
        ctx->outbox_emitted = 0; /* nothing of the rolled-back run was kept */
        t->resp = pb_unpack_arena(ctx->arena, t->m->md->output, prev, prev_len);
        return t->resp ? status_ok()
                       : status_make(STATUS_INTERNAL, "DATABASE_ERROR",
                                     "cannot decode a stored response");
    }
    if (key_taken) {
        /* Taken, then purged in between: rare; the caller may simply retry. */
        return status_make(STATUS_ABORTED, "CONCURRENCY_CONFLICT",
                           "concurrent use of the idempotency key, safe to retry");
    }
    return st; /* a new key: the call's own answer */
}

/* Checks done before decoding: authentication, deadline, readiness. With a credential file
 * the token is looked up here and authorised for the request's merchant once it is decoded
 * (call_authorize); without one the shared token is the only credential, as it always was. */
static status_t call_admit(call_t *c, const char *auth, size_t auth_len) {
    const srv_method_t *m = c->method;
    if (!m->is_health && credentials_enabled()) {
        status_t st = credentials_authenticate(auth, auth_len, c->cred_digest);
        if (!status_is_ok(&st)) {
            return st;
        }
    } else if (!m->is_health && g_srv.config.auth_token[0]) {
        if (!auth_bearer_matches(g_srv.config.auth_token, auth, auth_len)) {
            return status_make(STATUS_UNAUTHENTICATED, "UNAUTHENTICATED",
                               "missing or invalid bearer token");
        }
        snprintf(c->credential_id, sizeof c->credential_id, "%s", CRED_SERVICE_ID);
    }
    if (gpr_time_cmp(c->deadline, gpr_now(c->deadline.clock_type)) < 0) {
        return status_make(STATUS_DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED",
                           "deadline passed before the call was served");
    }
    if (!m->is_health && !health_is_migrated()) {
        return status_make(STATUS_UNAVAILABLE, "STARTING", "service is starting");
    }
    return status_ok();
}

/* Decodes the call's request message into its arena with the runtime's string check
 * (request_decode); the byte buffer stays the call's. */
static status_t call_decode(call_t *c, ProtobufCMessage **req) {
    grpc_byte_buffer_reader reader;
    if (!grpc_byte_buffer_reader_init(&reader, c->req_bb)) {
        return status_make(STATUS_INVALID_ARGUMENT, "MALFORMED_REQUEST", "unreadable request");
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
static status_t call_authorize(call_t *c, const ProtobufCMessage *req, rpc_ctx_t *ctx) {
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

/* Whether this call's change may commit without waiting for the disk: its caller is a service
 * that says its own later commit on this same PostgreSQL cluster makes the change durable before
 * anyone relies on it (RPC_DURABLE_WITH_HEADER; docs/architecture.md "Durability of saga
 * steps"). Any other caller, or another cluster, gets the usual commit. */
static bool call_commit_async(const call_t *c, db_t *db) {
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
        return status_make(STATUS_INVALID_ARGUMENT, "MALFORMED_REQUEST", "missing request message");
    }
    ProtobufCMessage *req = NULL;
    status_t st = call_decode(c, &req);
    if (!status_is_ok(&st)) {
        return st;
    }
    const char *idempotency_key = NULL;
    st = request_check_ids(req, m->has_merchant, m->m->kind == RPC_MUTATE, &ctx->merchant_id,
                           &idempotency_key);
    if (!status_is_ok(&st)) {
        return st;
    }
    st = call_authorize(c, req, ctx);
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
    bool commit_async = call_commit_async(c, ctx->db);
    db_set_commit_async(ctx->db, commit_async);
    st = m->m->kind == RPC_MUTATE ? call_mutate(ctx, &t) : db_tx(ctx->db, call_run_in_tx, &t);
    if (commit_async) {
        db_set_commit_async(ctx->db, false);
    }
    *resp_out = t.resp;
    return st;
}

static void call_serve(worker_t *w, call_t *c) {
    int64_t start = now_us();
    const char *auth;
    size_t auth_len;
    call_read_metadata(c, &auth, &auth_len);
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
        .deadline = c->deadline,
        .now_s = (int64_t)time(NULL),
    };
    t_current_ctx = &ctx;
    call_bind_log(c);
    ProtobufCMessage *resp = NULL;
    status_t st = call_admit(c, auth, auth_len);
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
    int64_t latency_us = now_us() - start;
    rpc_metrics_server_handled(c->method->path, false, st.code, st.reason, latency_us);
    if (!c->method->is_health || !status_is_ok(&st)) {
        log_rpc(c->method->path, c->request_id, ctx.merchant_id, c->credential_id, st.code,
                st.reason, st.message, latency_us);
    }
    call_bind_log(NULL);
    t_current_ctx = NULL;
    call_finish(c, &st);
}

static void call_serve_unknown(call_t *c) {
    char *method = grpc_slice_to_c_string(c->details.method);
    snprintf(c->request_id, sizeof c->request_id, "%s", "");
    status_t st = status_make(STATUS_UNIMPLEMENTED, "UNKNOWN_METHOD", "unknown method");
    log_rpc(method, "", "", "", st.code, st.reason, st.message, 0);
    gpr_free(method);
    call_finish(c, &st);
}

/* ---- serving a stream (RPC_STREAM): one batch in flight per call ---- */

status_t rpc_stream_send(rpc_ctx_t *ctx, const ProtobufCMessage *msg) {
    rpc_stream_t *s = ctx->stream;
    if (s == NULL) {
        return status_make(STATUS_INTERNAL, "NOT_A_STREAM", "rpc_stream_send outside a stream");
    }
    assert(msg->descriptor == s->output);
    if (s->out_count == RPC_STREAM_SENDS_MAX) {
        return status_make(STATUS_RESOURCE_EXHAUSTED, "STREAM_BACKLOG",
                           "more than %d responses to one message", RPC_STREAM_SENDS_MAX);
    }
    s->out[s->out_count++] = pb_to_byte_buffer(msg);
    return status_ok();
}

/* Starts `n` ops as the call's only batch in flight, in `phase`; frees the call when core
 * refuses the batch (then no completion will come). */
static void call_stream_batch(call_t *c, call_phase_t phase, const grpc_op *ops, size_t n) {
    c->phase = phase;
    grpc_call_error err = grpc_call_start_batch(c->call, ops, n, c, NULL);
    if (err != GRPC_CALL_OK) {
        log_msg(LOG_ERROR, "cannot continue stream %s: %d", c->method->path, (int)err);
        call_free(c);
    }
}

static void call_stream_end(call_t *c, const status_t *st) {
    rpc_stream_t *s = c->stream;
    int64_t latency_us = now_us() - s->start_us;
    rpc_metrics_server_handled(c->method->path, true, st->code, st->reason, latency_us);
    call_bind_log(c);
    log_rpc(c->method->path, c->request_id, s->merchant_id, c->credential_id, st->code, st->reason,
            st->message, latency_us);
    call_bind_log(NULL);
    call_finish(c, st);
}

/* Asks for the next request message; the first receive also sends the initial metadata. */
static void call_stream_recv(call_t *c) {
    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    size_t n = 0;
    if (!c->initial_md_sent) {
        c->initial_md[0].key = grpc_slice_from_static_string("x-request-id");
        c->initial_md[0].value = grpc_slice_from_static_string(c->request_id);
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[n].data.send_initial_metadata.count = 1;
        ops[n].data.send_initial_metadata.metadata = c->initial_md;
        n++;
        c->initial_md_sent = true;
    }
    ops[n].op = GRPC_OP_RECV_MESSAGE;
    ops[n].data.recv_message.recv_message = &c->req_bb;
    n++;
    call_stream_batch(c, CALL_STREAM_RECV, ops, n);
}

static void watch_park(call_t *c);

/* Sends the next queued response, or, once the queue is empty, reads on, parks (a watch) or
 * ends the stream. */
static void call_stream_pump(call_t *c) {
    rpc_stream_t *s = c->stream;
    if (s->out_next < s->out_count) {
        grpc_op op;
        memset(&op, 0, sizeof op);
        op.op = GRPC_OP_SEND_MESSAGE;
        op.data.send_message.send_message = s->out[s->out_next];
        call_stream_batch(c, CALL_STREAM_SEND, &op, 1);
        return;
    }
    s->out_count = 0;
    s->out_next = 0;
    if (s->ending) {
        call_stream_end(c, &s->end);
    } else if (s->half_closed) {
        watch_park(c);
    } else {
        call_stream_recv(c);
    }
}

/* Queues the watch's new state and sends it; the caller owns the parked call. */
static void watch_send(call_t *c, int state) {
    rpc_stream_t *s = c->stream;
    arena_t a;
    arena_init(&a);
    ProtobufCMessage *msg = pb_new(&a, s->output);
    s->watch_fill(state, msg);
    s->out[s->out_count++] = pb_to_byte_buffer(msg);
    s->watch_state = state;
    arena_free(&a);
    call_stream_pump(c);
}

/* A watch whose client half-closed and whose queue is sent: parks it until the next change,
 * sends a change that came meanwhile (checked under the lock, so that no notification is
 * missed), or ends it once the server stopped listening. */
static void watch_park(call_t *c) {
    rpc_stream_t *s = c->stream;
    pthread_mutex_lock(&g_watch.mu);
    if (g_watch.closed) {
        pthread_mutex_unlock(&g_watch.mu);
        s->ending = true;
        s->end = status_make(STATUS_UNAVAILABLE, "SHUTTING_DOWN", "server shutting down");
        call_stream_pump(c);
        return;
    }
    int now = s->watch_state_of(s->watch_key);
    if (now == s->watch_state) {
        assert(g_watch.parked_count < RPC_WATCHES_MAX); /* at most one per open watch */
        g_watch.parked[g_watch.parked_count++] = c;
        pthread_mutex_unlock(&g_watch.mu);
        return;
    }
    pthread_mutex_unlock(&g_watch.mu);
    watch_send(c, now);
}

/* Sends every parked watch whose state changed (after the runtime changed the health state). */
static void watch_notify(void) {
    call_t *changed[RPC_WATCHES_MAX];
    int states[RPC_WATCHES_MAX];
    int n = 0;
    pthread_mutex_lock(&g_watch.mu);
    for (int i = 0; i < g_watch.parked_count;) {
        call_t *c = g_watch.parked[i];
        int now = c->stream->watch_state_of(c->stream->watch_key);
        if (now != c->stream->watch_state) {
            changed[n] = c;
            states[n++] = now;
            g_watch.parked[i] = g_watch.parked[--g_watch.parked_count];
        } else {
            i++;
        }
    }
    pthread_mutex_unlock(&g_watch.mu);
    for (int i = 0; i < n; i++) {
        watch_send(changed[i], states[i]);
    }
}

/* Ends every watch UNAVAILABLE (the parked ones now, the others when they would park): the
 * server stops listening, and a watch must not keep the shutdown waiting. */
static void watch_close_all(void) {
    call_t *parked[RPC_WATCHES_MAX];
    pthread_mutex_lock(&g_watch.mu);
    g_watch.closed = true;
    int n = g_watch.parked_count;
    memcpy(parked, g_watch.parked, (size_t)n * sizeof parked[0]);
    g_watch.parked_count = 0;
    pthread_mutex_unlock(&g_watch.mu);
    for (int i = 0; i < n; i++) {
        rpc_stream_t *s = parked[i]->stream;
        s->ending = true;
        s->end = status_make(STATUS_UNAVAILABLE, "SHUTTING_DOWN", "server shutting down");
        call_stream_pump(parked[i]);
    }
}

status_t rpc_stream_watch(rpc_ctx_t *ctx, const char *key, int sent_state, rpc_watch_state_fn state,
                          rpc_watch_fill_fn fill) {
    rpc_stream_t *s = ctx->stream;
    if (s == NULL) {
        return status_make(STATUS_INTERNAL, "NOT_A_STREAM", "rpc_stream_watch outside a stream");
    }
    if (strlen(key) > RPC_WATCH_KEY_MAX) {
        return status_make(STATUS_INVALID_ARGUMENT, "WATCH_KEY_TOO_LONG", "at most %d bytes",
                           RPC_WATCH_KEY_MAX);
    }
    if (!s->watching) {
        pthread_mutex_lock(&g_watch.mu);
        bool room = g_watch.open_count < RPC_WATCHES_MAX;
        g_watch.open_count += room;
        pthread_mutex_unlock(&g_watch.mu);
        if (!room) {
            return status_make(STATUS_RESOURCE_EXHAUSTED, "TOO_MANY_WATCHES",
                               "more than %d watches open", RPC_WATCHES_MAX);
        }
        s->watching = true;
    }
    snprintf(s->watch_key, sizeof s->watch_key, "%s", key);
    s->watch_state = sent_state;
    s->watch_state_of = state;
    s->watch_fill = fill;
    return status_ok();
}

/* Runs the handler on the request message just received, on this worker's connections. */
static status_t call_stream_handle(worker_t *w, call_t *c) {
    const srv_method_t *m = c->method;
    rpc_stream_t *s = c->stream;
    rpc_ctx_t ctx = {
        .arena = &c->arena,
        .db = w->db,
        .cache = w->cache,
        .config = &g_srv.config,
        .service_state = g_srv.service_state,
        .method = m->path,
        .request_id = c->request_id,
        .trace = &c->trace,
        .merchant_id = "",
        .credential_id = c->credential_id,
        .deadline = c->deadline,
        .now_s = (int64_t)time(NULL),
        .stream = s,
    };
    ProtobufCMessage *req = NULL;
    status_t st = call_decode(c, &req);
    if (!status_is_ok(&st)) {
        return st;
    }
    const char *no_key;
    st = request_check_ids(req, m->has_merchant, false, &ctx.merchant_id, &no_key);
    if (!status_is_ok(&st)) {
        return st;
    }
    st = call_authorize(c, req, &ctx); /* every message: each names its merchant */
    if (!status_is_ok(&st)) {
        return st;
    }
    if (m->has_merchant) {
        if (s->merchant_id[0] == '\0') {
            snprintf(s->merchant_id, sizeof s->merchant_id, "%s", ctx.merchant_id);
        }
    }
    t_current_ctx = &ctx;
    call_bind_log(c);
    st = m->m->handler(&ctx, req, pb_new(&c->arena, m->md->output));
    for (int i = 0; i < ctx.invalidation_count; i++) {
        cache_del(w->cache, ctx.invalidations[i]);
    }
    call_bind_log(NULL);
    t_current_ctx = NULL;
    return st;
}

/* A request message arrived (`bb` set), the client half-closed (success, no message) or the
 * call broke (no success: cancelled, deadline, shutdown). */
static void call_stream_received(worker_t *w, call_t *c, bool success) {
    rpc_stream_t *s = c->stream;
    if (success && c->req_bb == NULL && s->watching) {
        s->half_closed = true; /* a watch goes on after the request */
        call_stream_pump(c);
        return;
    }
    if (!success || c->req_bb == NULL) {
        s->ending = true;
        s->end =
            success ? status_ok() : status_make(STATUS_CANCELLED, "CANCELLED", "stream cancelled");
        call_stream_pump(c);
        return;
    }
    status_t st = ++s->messages > RPC_STREAM_MESSAGES_MAX
                      ? status_make(STATUS_RESOURCE_EXHAUSTED, "STREAM_TOO_LONG",
                                    "more than %d messages on one stream", RPC_STREAM_MESSAGES_MAX)
                      : call_stream_handle(w, c);
    grpc_byte_buffer_destroy(c->req_bb);
    c->req_bb = NULL;
    /* The responses are encoded: what the handler allocated can go before the next message. */
    arena_reset(&c->arena);
    if (!status_is_ok(&st)) {
        s->ending = true;
        s->end = st;
    }
    call_stream_pump(c);
}

static void call_stream_sent(call_t *c, bool success) {
    rpc_stream_t *s = c->stream;
    grpc_byte_buffer_destroy(s->out[s->out_next]);
    s->out[s->out_next++] = NULL;
    if (!success) { /* the client is gone: drop the rest */
        for (int i = s->out_next; i < s->out_count; i++) {
            grpc_byte_buffer_destroy(s->out[i]);
        }
        s->out_next = s->out_count;
        s->ending = true;
        s->end = status_make(STATUS_CANCELLED, "CANCELLED", "stream cancelled");
    }
    call_stream_pump(c);
}

/* A streaming call was accepted: admit it as a unary call would be, then read. */
static void call_stream_start(call_t *c) {
    const char *auth;
    size_t auth_len;
    int64_t start = now_us();
    call_read_metadata(c, &auth, &auth_len);
    status_t st = call_admit(c, auth, auth_len);
    if (!status_is_ok(&st)) {
        int64_t latency_us = now_us() - start;
        rpc_metrics_server_handled(c->method->path, true, st.code, st.reason, latency_us);
        call_bind_log(c);
        log_rpc(c->method->path, c->request_id, "", c->credential_id, st.code, st.reason,
                st.message, latency_us);
        call_bind_log(NULL);
        call_finish(c, &st);
        return;
    }
    c->stream = calloc(1, sizeof *c->stream);
    if (c->stream == NULL) {
        abort();
    }
    c->stream->output = c->method->md->output;
    c->stream->start_us = start;
    call_stream_recv(c);
}

/* ---- threads ---- */

static void *worker_main(void *arg) {
    worker_t *w = arg;
    for (;;) {
        grpc_event ev =
            grpc_completion_queue_next(w->q->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN) {
            break;
        }
        if (ev.type != GRPC_OP_COMPLETE) {
            continue;
        }
        if (ev.tag == &g_srv.shutdown_tag) {
            pthread_mutex_lock(&g_srv.mu);
            g_srv.shutdown_tag_seen = true;
            pthread_cond_broadcast(&g_srv.cond);
            pthread_mutex_unlock(&g_srv.mu);
            continue;
        }
        call_t *c = ev.tag;
        bool stopping = atomic_load(&g_srv.shutting_down);
        switch (c->phase) {
        case CALL_NEW:
            if (!ev.success) {
                call_free(c);
                break;
            }
            if (!stopping) {
                call_request(c->method, c->q); /* re-arm before serving */
            }
            call_serve(w, c);
            break;
        case CALL_UNKNOWN_NEW:
            if (!ev.success) {
                call_free(c);
                break;
            }
            if (!stopping) {
                call_request_unknown(c->q);
            }
            call_serve_unknown(c);
            break;
        case CALL_STREAM_NEW:
            if (!ev.success) {
                call_free(c);
                break;
            }
            if (!stopping) {
                call_request(c->method, c->q);
            }
            call_stream_start(c);
            break;
        case CALL_STREAM_RECV:
            call_stream_received(w, c, ev.success);
            break;
        case CALL_STREAM_SEND:
            call_stream_sent(c, ev.success);
            break;
        case CALL_FINISH:
            call_free(c);
            break;
        }
    }
    rpc_client_thread_cleanup();
    return NULL;
}

/* Sleeps up to ms unless the background threads are told to stop; true when stopping. */
static bool background_sleep(int64_t ms) {
    struct timespec until = clock_realtime_after_ms(ms);
    pthread_mutex_lock(&g_srv.mu);
    while (!g_srv.stop_background) {
        if (pthread_cond_timedwait(&g_srv.cond, &g_srv.mu, &until) == ETIMEDOUT) {
            break;
        }
    }
    bool stop = g_srv.stop_background;
    pthread_mutex_unlock(&g_srv.mu);
    return stop;
}

static void srv_db_pool_create(void) {
    const config_t *cfg = &g_srv.config;
    db_options_t opts = {
        .dsn = cfg->pg_dsn,
        .schema = g_srv.opts->db_schema,
        .application_name = g_srv.opts->service_name,
        .statement_timeout_ms = cfg->db_statement_timeout_ms,
        .transaction_pooler = strcmp(cfg->pg_pooler, "transaction") == 0,
        .pool_size = (int)cfg->db_pool_size,
        .pool_wait_ms = cfg->db_pool_wait_ms,
    };
    g_srv.db_pool = db_pool_create(&opts);
    if (opts.pool_size > 0 || opts.transaction_pooler) {
        log_msg(LOG_INFO, "database: %s, %s",
                opts.transaction_pooler ? "through a transaction pooler" : "direct",
                opts.pool_size > 0 ? "a pool of DB_POOL_SIZE connections"
                                   : "a connection per thread");
    }
}

/* A handle for one thread: it borrows from the process's pool (or keeps its own connection). */
static db_t *srv_db_create(void) {
    return db_open(g_srv.db_pool);
}

/* DB_MIGRATE_ON_START=0: the service's own database role may not change its schema (README
 * "Database roles"); the owner role applies the migrations (`--migrate`) and the service waits
 * until every one it carries is recorded. */
static status_t srv_check_migrated(db_t *db) {
    PGresult *r = NULL;
    status_t st = db_exec(db, "SELECT to_regclass('schema_migrations') IS NOT NULL", NULL, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    bool exists = db_get_bool(r, 0, 0);
    PQclear(r);
    if (!exists) {
        return status_make(STATUS_UNAVAILABLE, "NOT_MIGRATED",
                           "no migration is applied (run --migrate as the owner)");
    }
    const embed_file_t *tables[2] = {runtime_migrations, g_srv.opts->migrations};
    const char *origins[2] = {"runtime", g_srv.opts->db_schema};
    for (int t = 0; t < 2; t++) {
        for (const embed_file_t *m = tables[t]; m && m->name; m++) {
            char id[256];
            snprintf(id, sizeof id, "%s/%s", origins[t], m->name);
            db_params_t p;
            db_params_init(&p);
            db_param_text(&p, id);
            st = db_exec(db, "SELECT 1 FROM schema_migrations WHERE id = $1", &p, &r);
            if (!status_is_ok(&st)) {
                return st;
            }
            bool applied = PQntuples(r) > 0;
            PQclear(r);
            if (!applied) {
                return status_make(STATUS_UNAVAILABLE, "NOT_MIGRATED",
                                   "migration %s is not applied (run --migrate as the owner)", id);
            }
        }
    }
    return status_ok();
}

/* Applies migrations until they succeed, then probes PostgreSQL for the health state. */
static void *monitor_main(void *arg) {
    (void)arg;
    db_t *db = srv_db_create();
    do {
        if (!health_is_migrated()) {
            status_t st = g_srv.config.db_migrate_on_start
                              ? db_migrate(db, runtime_migrations, g_srv.opts->migrations)
                              : srv_check_migrated(db);
            if (status_is_ok(&st)) {
                health_set_migrated(true);
                health_set_db_reachable(true);
                watch_notify();
                rpc_metrics_db_up(true);
                log_msg(LOG_INFO, "migrations applied; serving");
            } else {
                log_msg(LOG_WARN, "migrations not applied yet: %s", st.message);
            }
        } else {
            health_set_db_reachable(db_ping(db));
            watch_notify();
        }
    } while (!background_sleep(health_is_migrated() ? MONITOR_PROBE_MS : 1000));
    db_destroy(db);
    rpc_client_thread_cleanup();
    return NULL;
}

static status_t job_purge_idempotency(rpc_ctx_t *ctx) {
    int64_t deleted = 0;
    status_t st =
        idem_purge(ctx->db, IDEMPOTENCY_RETENTION_DAYS, IDEMPOTENCY_PURGE_BATCH, &deleted);
    if (status_is_ok(&st) && deleted > 0) {
        log_msg(LOG_INFO, "purged %lld idempotency keys", (long long)deleted);
    }
    return st;
}

static status_t job_purge_outbox(rpc_ctx_t *ctx) {
    int64_t deleted = 0;
    return outbox_purge(ctx->db, ctx->config->outbox_retention_days, IDEMPOTENCY_PURGE_BATCH,
                        &deleted);
}

static const rpc_job_t runtime_jobs[] = {
    {"purge-idempotency-keys", job_purge_idempotency, 3600},
    {"purge-published-outbox", job_purge_outbox, 3600},
    {NULL, NULL, 0},
};

/* After a wake-up the publisher gathers the commits of this long before it publishes: under load
 * every change kicks it, and one publishing transaction (select, XADD, mark, commit) per event
 * cost a checkout about twenty SQL round trips; gathered, a burst goes in one. */
#define OUTBOX_GATHER_MS 10
/* Under steady load a kick arrives right after every pass, and a 10 ms gather still made about
 * one pass (two statements and a Redis pipeline) per checkout and service: a pass also waits
 * until this long after the previous one began, so at any load there are at most 20 passes a
 * second and each takes what the interval gathered. Events reach the stream at most this much
 * later; an idle publisher still answers a kick after OUTBOX_GATHER_MS. */
#define OUTBOX_PASS_INTERVAL_MS 50

/* How long a woken publisher waits before its pass (see OUTBOX_PASS_INTERVAL_MS). */
static int64_t outbox_gather_ms(int64_t last_pass_ms, int64_t now_ms) {
    int64_t until_interval = last_pass_ms + OUTBOX_PASS_INTERVAL_MS - now_ms;
    return until_interval > OUTBOX_GATHER_MS ? until_interval : OUTBOX_GATHER_MS;
}

/* Publishes outbox entries soon after the transactions that wrote them commit (woken by
 * outbox_kick), and every second anyway for entries left behind by an outage or a crash. */
static void *outbox_main(void *arg) {
    (void)arg;
    db_t *db = srv_db_create();
    cache_t *cache = cache_create(g_srv.config.redis_url, g_srv.config.cache_ttl_s);
    bool backlog = true;
    int64_t last_pass_ms = 0;
    while (outbox_wait(backlog ? 0 : 1000)) {
        if (!backlog) {
            int64_t gather_ms = outbox_gather_ms(last_pass_ms, clock_monotonic_ms());
            struct timespec gather = {gather_ms / 1000, (gather_ms % 1000) * 1000000L};
            nanosleep(&gather, NULL);
        }
        last_pass_ms = clock_monotonic_ms();
        backlog = false;
        if (health_is_migrated()) {
            outbox_report_pending(db);
        }
        if (!health_is_migrated() || g_srv.config.redis_url[0] == '\0') {
            continue;
        }
        int64_t published = 0;
        status_t st = outbox_publish_batch(db, cache, g_srv.opts->service_name, 500,
                                           g_srv.config.events_stream_maxlen, &published);
        backlog = status_is_ok(&st) && published == 500;
    }
    cache_destroy(cache);
    db_destroy(db);
    return NULL;
}

static void job_run(const rpc_job_t *job, db_t *db, cache_t *cache) {
    arena_t arena;
    arena_init(&arena);
    char request_id[REQUEST_ID_MAX + 1];
    snprintf(request_id, sizeof request_id, "job-");
    id_random_token("0123456789abcdef", 16, request_id + 4);
    trace_ctx_t trace; /* every run is a trace of its own */
    trace_begin(&trace, NULL, 0, NULL, 0);
    rpc_ctx_t ctx = {
        .arena = &arena,
        .db = db,
        .cache = cache,
        .config = &g_srv.config,
        .service_state = g_srv.service_state,
        .method = job->name,
        .request_id = request_id,
        .trace = &trace,
        .merchant_id = "",
        .credential_id = "",
        .deadline = gpr_inf_future(GPR_CLOCK_MONOTONIC),
        .now_s = (int64_t)time(NULL),
    };
    t_current_ctx = &ctx;
    log_bind_request(request_id, job->name);
    log_bind_trace(trace.trace_id, trace.span_id, trace.parent_span_id);
    int64_t start = now_us();
    status_t st = job->fn(&ctx);
    for (int i = 0; i < ctx.invalidation_count; i++) {
        cache_del(cache, ctx.invalidations[i]);
    }
    if (ctx.outbox_emitted > 0) {
        outbox_kick();
    }
    if (!status_is_ok(&st)) {
        log_msg(LOG_WARN, "job %s failed after %lld us: %s", job->name,
                (long long)(now_us() - start), st.message);
    }
    log_bind_request(NULL, NULL);
    log_bind_trace(NULL, NULL, NULL);
    t_current_ctx = NULL;
    arena_free(&arena);
}

/* A thread running some jobs on their timers: the runtime's own jobs share one, and every job
 * of the service has its own, so that a long run of one (a campaign over a million members)
 * never delays another (the gateway's saga recovery). */
typedef struct job_lane {
    const rpc_job_t *jobs;
    int count;
    pthread_t thread;
} job_lane_t;

#define JOB_LANES_MAX 16

static job_lane_t g_lanes[JOB_LANES_MAX];
static int g_lane_count;

static void *job_main(void *arg) {
    const job_lane_t *lane = arg;
    db_t *db = srv_db_create();
    cache_t *cache = cache_create(g_srv.config.redis_url, g_srv.config.cache_ttl_s);
    int64_t next_due[JOB_LANES_MAX * 4];
    memset(next_due, 0, sizeof next_due);
    do {
        if (!health_is_migrated()) {
            continue;
        }
        int64_t now = (int64_t)time(NULL);
        for (int i = 0; i < lane->count; i++) {
            const rpc_job_t *job = &lane->jobs[i];
            int64_t every = job->interval_s ? job->interval_s : g_srv.config.job_interval_s;
            if (every <= 0 || now < next_due[i]) {
                continue;
            }
            next_due[i] = now + every;
            job_run(job, db, cache);
        }
    } while (!background_sleep(1000));
    cache_destroy(cache);
    db_destroy(db);
    rpc_client_thread_cleanup();
    return NULL;
}

static void jobs_start(void) {
    int runtime_count = 0;
    while (runtime_jobs[runtime_count].name) {
        runtime_count++;
    }
    assert(runtime_count <= JOB_LANES_MAX * 4);
    g_lanes[g_lane_count++] = (job_lane_t){.jobs = runtime_jobs, .count = runtime_count};
    for (int i = 0; g_srv.opts->jobs && g_srv.opts->jobs[i].name; i++) {
        if (g_lane_count == JOB_LANES_MAX) {
            log_msg(LOG_ERROR, "more than %d jobs; %s does not run", JOB_LANES_MAX - 1,
                    g_srv.opts->jobs[i].name);
            continue;
        }
        g_lanes[g_lane_count++] = (job_lane_t){.jobs = &g_srv.opts->jobs[i], .count = 1};
    }
    for (int i = 0; i < g_lane_count; i++) {
        if (pthread_create(&g_lanes[i].thread, NULL, job_main, &g_lanes[i]) != 0) {
            abort();
        }
    }
}

static void jobs_join(void) {
    for (int i = 0; i < g_lane_count; i++) {
        pthread_join(g_lanes[i].thread, NULL);
    }
    g_lane_count = 0;
}

/* ---- setup ---- */

static bool srv_is_storefront(const char *path) {
    for (const char *const *p = g_srv.opts->storefront_methods; p && *p; p++) {
        if (strcmp(*p, path) == 0) {
            return true;
        }
    }
    return false;
}

static status_t srv_add_service(const rpc_service_t *svc, bool is_health, bool is_reflection) {
    const ProtobufCServiceDescriptor *sd = svc->descriptor;
    health_register_service(sd->name);
    reflection_register_service(sd->name);
    for (const rpc_method_t *m = svc->methods; m->name; m++) {
        const ProtobufCMethodDescriptor *md =
            protobuf_c_service_descriptor_get_method_by_name(sd, m->name);
        if (md == NULL) {
            return status_make(STATUS_INTERNAL, "BAD_SERVICE_TABLE", "%s has no method %s",
                               sd->name, m->name);
        }
        if (g_srv.method_count == SRV_METHODS_MAX) {
            return status_make(STATUS_INTERNAL, "BAD_SERVICE_TABLE", "too many methods");
        }
        srv_method_t *sm = &g_srv.methods[g_srv.method_count++];
        sm->m = m;
        sm->md = md;
        sm->is_health = is_health;
        snprintf(sm->path, sizeof sm->path, "/%s/%s", sd->name, md->name);
        /* The API's shape is no merchant's data: any valid credential may read it. */
        sm->access = is_reflection                 ? CRED_ACCESS_ANY
                     : srv_is_storefront(sm->path) ? CRED_ACCESS_STOREFRONT
                                                   : CRED_ACCESS_ADMIN;
        /* Only a call the runtime runs in a transaction can carry its audit record. */
        sm->audited = audit_is_audited(sm->path) && (m->kind == RPC_TX || m->kind == RPC_MUTATE);
        const ProtobufCFieldDescriptor *mf =
            protobuf_c_message_descriptor_get_field_by_name(md->input, "merchant_id");
        sm->has_merchant =
            mf != NULL && mf->type == PROTOBUF_C_TYPE_STRING && m->kind != RPC_READ_ANY_MERCHANT;
        if (m->kind == RPC_MUTATE &&
            (!sm->has_merchant || protobuf_c_message_descriptor_get_field_by_name(
                                      md->input, "idempotency_key") == NULL)) {
            return status_make(STATUS_INTERNAL, "BAD_SERVICE_TABLE",
                               "%s is RPC_MUTATE without merchant_id and idempotency_key",
                               sm->path);
        }
        /* protobuf-c does not say which methods stream; the embedded descriptors do. */
        sm->streaming = m->kind == RPC_STREAM;
        int streams = reflection_method_streaming(sm->path);
        if (streams >= 0 && streams != sm->streaming) {
            return status_make(STATUS_INTERNAL, "BAD_SERVICE_TABLE", "%s is %s in the .proto",
                               sm->path, streams ? "streaming" : "unary");
        }
        sm->handle = grpc_server_register_method(
            g_srv.server, sm->path, NULL,
            sm->streaming ? GRPC_SRM_PAYLOAD_NONE : GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
        if (sm->handle == NULL) {
            return status_make(STATUS_INTERNAL, "BAD_SERVICE_TABLE", "cannot register %s",
                               sm->path);
        }
    }
    for (size_t i = 0; i < sd->n_methods; i++) {
        bool served = false;
        for (const rpc_method_t *m = svc->methods; m->name && !served; m++) {
            served = strcmp(m->name, sd->methods[i].name) == 0;
        }
        if (!served && !is_health) {
            log_msg(LOG_WARN, "%s/%s has no handler; it answers UNIMPLEMENTED", sd->name,
                    sd->methods[i].name);
        }
    }
    return status_ok();
}

static char *srv_read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    char *buf = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *nb = realloc(buf, cap);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, 4096, f);
        len += got;
        if (got < 4096) {
            break;
        }
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

static grpc_server_credentials *srv_credentials(status_t *st) {
    const config_t *cfg = &g_srv.config;
    if (cfg->tls_cert_path[0] == '\0') {
        return grpc_insecure_server_credentials_create();
    }
    char *cert = srv_read_file(cfg->tls_cert_path);
    char *key = srv_read_file(cfg->tls_key_path);
    if (cert == NULL || key == NULL) {
        free(cert);
        free(key);
        *st = status_make(STATUS_INVALID_ARGUMENT, "INVALID_CONFIG",
                          "cannot read LOYALTY_TLS_CERT or LOYALTY_TLS_KEY");
        return NULL;
    }
    grpc_ssl_pem_key_cert_pair pair = {key, cert};
    grpc_server_credentials *creds = grpc_ssl_server_credentials_create_ex(
        NULL, &pair, 1, GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE, NULL);
    free(cert);
    free(key);
    return creds;
}

static status_t srv_start(void) {
    const config_t *cfg = &g_srv.config;
    grpc_arg args[3];
    memset(args, 0, sizeof args);
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = (int)cfg->max_message_bytes;
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
    args[1].value.integer = (int)cfg->max_message_bytes;
    /* channelz keeps per-call counters for a debugging service we do not serve; the metrics
     * (lib/rpc_metrics.c) count what operators look at. */
    args[2].type = GRPC_ARG_INTEGER;
    args[2].key = (char *)GRPC_ARG_ENABLE_CHANNELZ;
    args[2].value.integer = 0;
    grpc_channel_args channel_args = {3, args};
    g_srv.server = grpc_server_create(&channel_args, NULL);

    g_srv.worker_count = (int)cfg->workers;
    int cqs = (int)cfg->completion_queues;
    if (cqs == 0) {
        cqs = g_srv.worker_count >= 4 ? g_srv.worker_count / 4 : 1;
    }
    if (cqs > g_srv.worker_count) {
        cqs = g_srv.worker_count;
    }
    if (cqs > SRV_CQS_MAX) {
        cqs = SRV_CQS_MAX;
    }
    g_srv.cq_count = cqs;
    for (int i = 0; i < cqs; i++) {
        g_srv.cqs[i].cq = grpc_completion_queue_create_for_next(NULL);
        grpc_server_register_completion_queue(g_srv.server, g_srv.cqs[i].cq, NULL);
    }

    const embed_file_t *set = &runtime_descriptor_set[0];
    status_t st = reflection_init(set->data, set->len);
    if (!status_is_ok(&st)) {
        return st;
    }
    st = srv_add_service(&health_service, true, false);
    if (status_is_ok(&st)) {
        st = srv_add_service(&reflection_v1_service, false, true);
    }
    if (status_is_ok(&st)) {
        st = srv_add_service(&reflection_v1alpha_service, false, true);
    }
    /* Every service lists its own audit trail: its database role reads only its schema. */
    audit_service_init(g_srv.opts->service_name);
    if (status_is_ok(&st)) {
        st = srv_add_service(&audit_service, false, false);
    }
    for (size_t i = 0; status_is_ok(&st) && i < g_srv.opts->service_count; i++) {
        st = srv_add_service(&g_srv.opts->services[i], false, false);
    }
    for (const char *const *p = g_srv.opts->storefront_methods; status_is_ok(&st) && p && *p; p++) {
        bool known = false;
        for (int i = 0; i < g_srv.method_count && !known; i++) {
            known = strcmp(g_srv.methods[i].path, *p) == 0;
        }
        if (!known) {
            st = status_make(STATUS_INTERNAL, "BAD_SERVICE_TABLE",
                             "storefront method %s is not served", *p);
        }
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    grpc_server_credentials *creds = srv_credentials(&st);
    if (creds == NULL) {
        return st;
    }
    int port = grpc_server_add_http2_port(g_srv.server, cfg->listen_addr, creds);
    grpc_server_credentials_release(creds);
    if (port == 0) {
        return status_make(STATUS_UNAVAILABLE, "LISTEN_FAILED", "cannot listen on %s",
                           cfg->listen_addr);
    }
    grpc_server_start(g_srv.server);

    char channel[128];
    snprintf(channel, sizeof channel, "loyalty:invalidate:%s", g_srv.opts->service_name);
    if (near_cache_start(cfg->redis_url, channel, cfg->near_cache_entries, cfg->near_cache_bytes,
                         cfg->near_cache_ttl_ms)) {
        log_msg(LOG_INFO, "near cache on: %lld entries, %lld bytes, %lld ms, invalidations on %s",
                (long long)cfg->near_cache_entries, (long long)cfg->near_cache_bytes,
                (long long)cfg->near_cache_ttl_ms, channel);
    }
    g_srv.workers = calloc((size_t)g_srv.worker_count, sizeof *g_srv.workers);
    if (g_srv.workers == NULL) {
        abort();
    }
    for (int i = 0; i < g_srv.worker_count; i++) {
        worker_t *w = &g_srv.workers[i];
        w->q = &g_srv.cqs[i % cqs];
        w->q->workers++;
        w->db = srv_db_create();
        w->cache = cache_create(cfg->redis_url, cfg->cache_ttl_s);
    }
    for (int q = 0; q < cqs; q++) {
        call_request_unknown(&g_srv.cqs[q]);
        for (int k = 0; k < g_srv.cqs[q].workers; k++) {
            for (int m = 0; m < g_srv.method_count; m++) {
                call_request(&g_srv.methods[m], &g_srv.cqs[q]);
            }
        }
    }
    for (int i = 0; i < g_srv.worker_count; i++) {
        if (pthread_create(&g_srv.workers[i].thread, NULL, worker_main, &g_srv.workers[i]) != 0) {
            abort();
        }
    }
    if (pthread_create(&g_srv.monitor_thread, NULL, monitor_main, NULL) != 0) {
        abort();
    }
    jobs_start();
    g_srv.job_thread_started = true;
    if (pthread_create(&g_srv.outbox_thread, NULL, outbox_main, NULL) != 0) {
        abort();
    }
    log_msg(LOG_INFO, "listening on %s (port %d), %d workers on %d completion queues",
            cfg->listen_addr, port, g_srv.worker_count, cqs);
    return status_ok();
}

static bool srv_shutdown_tag_seen(void) {
    pthread_mutex_lock(&g_srv.mu);
    bool seen = g_srv.shutdown_tag_seen;
    pthread_mutex_unlock(&g_srv.mu);
    return seen;
}

/* Lets in-flight calls finish within the grace period, then closes what is left: the shutdown
 * tag also waits for idle client connections to go away, which a client that is not polling
 * never does, so once no call of ours is in flight the remaining connections are cut. */
static void srv_drain_calls(int64_t grace_ms) {
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        if (srv_shutdown_tag_seen()) {
            return;
        }
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        int64_t elapsed_ms =
            (int64_t)(now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        long live = atomic_load(&g_srv.live_calls);
        if (live == 0 || elapsed_ms >= grace_ms) {
            if (live > 0) {
                log_msg(LOG_WARN, "grace period over; cancelling %ld calls still in flight", live);
            }
            grpc_server_cancel_all_calls(g_srv.server);
            break;
        }
        struct timespec ts = {0, 5 * 1000000};
        nanosleep(&ts, NULL);
    }
    pthread_mutex_lock(&g_srv.mu);
    while (!g_srv.shutdown_tag_seen) {
        pthread_cond_wait(&g_srv.cond, &g_srv.mu);
    }
    pthread_mutex_unlock(&g_srv.mu);
}

static void srv_stop(void) {
    const config_t *cfg = &g_srv.config;
    health_set_shutting_down(true);
    watch_notify(); /* watchers hear NOT_SERVING now, during the drain */
    log_msg(LOG_INFO, "shutting down: not serving, draining for %lld ms",
            (long long)cfg->shutdown_drain_ms);
    if (cfg->shutdown_drain_ms > 0) {
        struct timespec ts = {cfg->shutdown_drain_ms / 1000,
                              (cfg->shutdown_drain_ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
    }
    atomic_store(&g_srv.shutting_down, true);
    watch_close_all();
    grpc_server_shutdown_and_notify(g_srv.server, g_srv.cqs[0].cq, &g_srv.shutdown_tag);
    srv_drain_calls(cfg->shutdown_grace_ms);
    log_msg(LOG_DEBUG, "listeners closed and calls done");
    /* The shutdown tag does not wait for calls a worker still holds: wait for every context. */
    while (atomic_load(&g_srv.live_calls) > 0) {
        struct timespec ts = {0, 5 * 1000000};
        nanosleep(&ts, NULL);
    }
    pthread_mutex_lock(&g_srv.mu);
    g_srv.stop_background = true;
    pthread_cond_broadcast(&g_srv.cond);
    pthread_mutex_unlock(&g_srv.mu);
    for (int q = 0; q < g_srv.cq_count; q++) {
        grpc_completion_queue_shutdown(g_srv.cqs[q].cq);
    }
    for (int i = 0; i < g_srv.worker_count; i++) {
        pthread_join(g_srv.workers[i].thread, NULL);
    }
    log_msg(LOG_DEBUG, "workers joined");
    pthread_join(g_srv.monitor_thread, NULL);
    if (g_srv.job_thread_started) {
        jobs_join();
        outbox_stop();
        pthread_join(g_srv.outbox_thread, NULL);
    }
    for (int i = 0; i < g_srv.worker_count; i++) {
        db_destroy(g_srv.workers[i].db);
        cache_destroy(g_srv.workers[i].cache);
    }
    free(g_srv.workers);
    db_pool_destroy(g_srv.db_pool); /* after every handle */
    g_srv.db_pool = NULL;
    log_msg(LOG_DEBUG, "background threads joined");
    near_cache_stop();
    grpc_server_destroy(g_srv.server);
    for (int q = 0; q < g_srv.cq_count; q++) {
        grpc_completion_queue_destroy(g_srv.cqs[q].cq);
    }
    reflection_dispose();
}

static const char *env_lookup(const char *name, void *arg) {
    (void)arg;
    return getenv(name);
}

static int srv_migrate_only(void) {
    db_t *db = srv_db_create();
    status_t st = db_migrate(db, runtime_migrations, g_srv.opts->migrations);
    db_destroy(db);
    db_pool_destroy(g_srv.db_pool);
    g_srv.db_pool = NULL;
    if (!status_is_ok(&st)) {
        log_msg(LOG_ERROR, "migrations failed: %s", st.message);
        return 1;
    }
    log_msg(LOG_INFO, "migrations applied");
    return 0;
}

/* A fixed mmap threshold: glibc raises it after every large free, after which large buffers
 * (gRPC's copies of 1 MB requests) are carved from the heap and stay in RSS after the burst. */
static void srv_malloc_tune(void) {
#ifdef M_MMAP_THRESHOLD
    if (mallopt(M_MMAP_THRESHOLD, SRV_MMAP_THRESHOLD_BYTES) != 1) {
        log_msg(LOG_WARN, "cannot fix the malloc mmap threshold; RSS may stay up after bursts");
    }
#endif
}

int rpc_server_main(const rpc_server_options_t *opts, int argc, char **argv) {
    bool migrate_only = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--migrate") == 0) {
            migrate_only = true;
        } else if (strcmp(argv[i], "--help") == 0) {
            printf("usage: %s [--migrate]\n"
                   "Serves %s over gRPC; configured by environment variables (see README).\n"
                   "  --migrate  apply the database migrations and exit\n",
                   argv[0], opts->service_name);
            return 0;
        } else {
            fprintf(stderr, "%s: unknown flag %s\n", argv[0], argv[i]);
            return 2;
        }
    }
    g_srv.opts = opts;
    status_t st =
        config_load(&g_srv.config, opts->service_name, opts->default_port, env_lookup, NULL);
    log_level_t level = LOG_INFO;
    (void)log_level_parse(g_srv.config.log_level, &level);
    log_init(opts->service_name, level);
    srv_malloc_tune();
    if (!status_is_ok(&st)) {
        log_msg(LOG_ERROR, "bad configuration: %s", st.message);
        return 1;
    }
    config_log(&g_srv.config);
    srv_db_pool_create();
    if (migrate_only) {
        return srv_migrate_only();
    }

    /* Signals go to the main thread only: block them before any thread starts. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP); /* re-read the credential file */
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* After the mask: its watcher thread must not take SIGTERM or SIGHUP either. */
    st = credentials_start(g_srv.config.cred_file, g_srv.config.auth_token);
    if (!status_is_ok(&st)) {
        log_msg(LOG_ERROR, "bad LOYALTY_CREDENTIALS_FILE: %s", st.message);
        return 1;
    }

    grpc_init();
    rpc_client_init(&g_srv.config);
    rpc_metrics_start(&g_srv.config); /* before serving: /livez while PostgreSQL is awaited */
    if (opts->on_start) {
        st = opts->on_start(&g_srv.config, &g_srv.service_state);
    } else {
        g_srv.service_state = opts->service_state;
    }
    if (status_is_ok(&st)) {
        st = srv_start();
    }
    if (!status_is_ok(&st)) {
        log_msg(LOG_ERROR, "cannot start: %s", st.message);
        return 1;
    }
    int sig = 0;
    while (sigwait(&sigs, &sig) == 0 && sig == SIGHUP) {
        log_msg(LOG_INFO, "received SIGHUP: re-reading the credential file");
        (void)credentials_reload(); /* a bad file is logged and the current set stays */
    }
    log_msg(LOG_INFO, "received %s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    srv_stop();
    rpc_metrics_stop();
    if (opts->on_stop) {
        opts->on_stop(g_srv.service_state);
    }
    rpc_client_shutdown();
    credentials_stop();
    log_msg(LOG_DEBUG, "server destroyed");
    grpc_shutdown();
    log_msg(LOG_INFO, "stopped");
    return 0;
}
