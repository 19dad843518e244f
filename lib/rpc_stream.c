/* rpc_stream.c -- streaming calls (RPC_STREAM) of the shared server: one batch in flight per
 * call (receive, then each send, then the next receive), and watches, parked between changes. */
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

/* Watches (rpc_stream_watch) parked between changes: no batch is in flight on them, so
 * whoever takes one out of the list under the lock owns it until its next batch starts. */
static struct {
    pthread_mutex_t mu;
    struct call *parked[RPC_WATCHES_MAX];
    int parked_count;
    int open_count; /* watches alive, parked or not */
    bool closed;    /* the server stopped listening: watches end instead of parking */
} g_watch = {.mu = PTHREAD_MUTEX_INITIALIZER};

void srv_watch_release(void) {
    pthread_mutex_lock(&g_watch.mu);
    g_watch.open_count--;
    pthread_mutex_unlock(&g_watch.mu);
}

/* ---- serving a stream (RPC_STREAM): one batch in flight per call ---- */

status_t rpc_stream_send(rpc_ctx_t *ctx, const ProtobufCMessage *msg) {
    rpc_stream_t *s = ctx->stream;
    if (s == NULL) {
        return status_make(STATUS_INTERNAL, REASON_NOT_A_STREAM,
                           "rpc_stream_send outside a stream");
    }
    assert(msg->descriptor == s->output);
    if (s->out_count == RPC_STREAM_SENDS_MAX) {
        return status_make(STATUS_RESOURCE_EXHAUSTED, REASON_STREAM_BACKLOG,
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
        srv_call_free(c);
    }
}

static void call_stream_end(call_t *c, const status_t *st) {
    rpc_stream_t *s = c->stream;
    int64_t latency_us = srv_now_us() - s->start_us;
    rpc_metrics_server_handled(c->method->path, true, st->code, st->reason, latency_us);
    srv_call_bind_log(c);
    log_rpc(c->method->path, c->request_id, s->merchant_id, c->credential_id, st->code, st->reason,
            st->message, latency_us);
    srv_call_bind_log(NULL);
    srv_call_finish(c, st);
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
        s->end = status_make(STATUS_UNAVAILABLE, REASON_SHUTTING_DOWN, "server shutting down");
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
void srv_watch_notify(void) {
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
void srv_watch_close_all(void) {
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
        s->end = status_make(STATUS_UNAVAILABLE, REASON_SHUTTING_DOWN, "server shutting down");
        call_stream_pump(parked[i]);
    }
}

status_t rpc_stream_watch(rpc_ctx_t *ctx, const char *key, int sent_state, rpc_watch_state_fn state,
                          rpc_watch_fill_fn fill) {
    rpc_stream_t *s = ctx->stream;
    if (s == NULL) {
        return status_make(STATUS_INTERNAL, REASON_NOT_A_STREAM,
                           "rpc_stream_watch outside a stream");
    }
    if (strlen(key) > RPC_WATCH_KEY_MAX) {
        return status_make(STATUS_INVALID_ARGUMENT, REASON_WATCH_KEY_TOO_LONG, "at most %d bytes",
                           RPC_WATCH_KEY_MAX);
    }
    if (!s->watching) {
        pthread_mutex_lock(&g_watch.mu);
        bool room = g_watch.open_count < RPC_WATCHES_MAX;
        g_watch.open_count += room;
        pthread_mutex_unlock(&g_watch.mu);
        if (!room) {
            return status_make(STATUS_RESOURCE_EXHAUSTED, REASON_TOO_MANY_WATCHES,
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
    status_t st = srv_call_decode(c, &req);
    if (!status_is_ok(&st)) {
        return st;
    }
    const char *no_key;
    st = request_check_ids(req, m->has_merchant, false, &ctx.merchant_id, &no_key);
    if (!status_is_ok(&st)) {
        return st;
    }
    st = srv_call_authorize(c, req, &ctx); /* every message: each names its merchant */
    if (!status_is_ok(&st)) {
        return st;
    }
    if (m->has_merchant) {
        if (s->merchant_id[0] == '\0') {
            snprintf(s->merchant_id, sizeof s->merchant_id, "%s", ctx.merchant_id);
        }
    }
    srv_ctx_set_current(&ctx);
    srv_call_bind_log(c);
    st = m->m->handler(&ctx, req, pb_new(&c->arena, m->md->output));
    for (int i = 0; i < ctx.invalidation_count; i++) {
        cache_del(w->cache, ctx.invalidations[i]);
    }
    srv_call_bind_log(NULL);
    srv_ctx_set_current(NULL);
    return st;
}

/* A request message arrived (`bb` set), the client half-closed (success, no message) or the
 * call broke (no success: cancelled, deadline, shutdown). */
void srv_call_stream_received(worker_t *w, call_t *c, bool success) {
    rpc_stream_t *s = c->stream;
    if (success && c->req_bb == NULL && s->watching) {
        s->half_closed = true; /* a watch goes on after the request */
        call_stream_pump(c);
        return;
    }
    if (!success || c->req_bb == NULL) {
        s->ending = true;
        s->end = success ? status_ok()
                         : status_make(STATUS_CANCELLED, REASON_CANCELLED, "stream cancelled");
        call_stream_pump(c);
        return;
    }
    status_t st = ++s->messages > RPC_STREAM_MESSAGES_MAX
                      ? status_make(STATUS_RESOURCE_EXHAUSTED, REASON_STREAM_TOO_LONG,
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

void srv_call_stream_sent(call_t *c, bool success) {
    rpc_stream_t *s = c->stream;
    grpc_byte_buffer_destroy(s->out[s->out_next]);
    s->out[s->out_next++] = NULL;
    if (!success) { /* the client is gone: drop the rest */
        for (int i = s->out_next; i < s->out_count; i++) {
            grpc_byte_buffer_destroy(s->out[i]);
        }
        s->out_next = s->out_count;
        s->ending = true;
        s->end = status_make(STATUS_CANCELLED, REASON_CANCELLED, "stream cancelled");
    }
    call_stream_pump(c);
}

/* A streaming call was accepted: admit it as a unary call would be, then read. */
void srv_call_stream_start(call_t *c) {
    const char *auth;
    size_t auth_len;
    int64_t start = srv_now_us();
    srv_call_read_metadata(c, &auth, &auth_len);
    status_t st = srv_call_admit(c, auth, auth_len);
    if (!status_is_ok(&st)) {
        int64_t latency_us = srv_now_us() - start;
        rpc_metrics_server_handled(c->method->path, true, st.code, st.reason, latency_us);
        srv_call_bind_log(c);
        log_rpc(c->method->path, c->request_id, "", c->credential_id, st.code, st.reason,
                st.message, latency_us);
        srv_call_bind_log(NULL);
        srv_call_finish(c, &st);
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
