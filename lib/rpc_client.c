/* rpc_client.c -- shared channels and batched unary calls on one completion queue per batch. */
#include "rpc_client.h"

#include "ids.h"
#include "log.h"
#include "pb.h"
#include "rpc.h"
#include "rpc_batch_call.h"
#include "rpc_metrics.h"
#include "trace.h"

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CLIENT_CHANNELS_MAX 32
#define CLIENT_METHODS_MAX 256
#define CLIENT_PATH_MAX 160
#define CLIENT_BATCH_MAX 16

typedef struct client_method {
    char path[CLIENT_PATH_MAX];
    void *handle;
} client_method_t;

struct rpc_channel {
    char target[CONFIG_ADDR_MAX];
    grpc_channel *channel;
    pthread_mutex_t mu; /* guards registration; lookups read published entries lock-free */
    client_method_t methods[CLIENT_METHODS_MAX];
    atomic_int method_count;
};

static struct {
    pthread_mutex_t mu;
    rpc_channel_t *channels[CLIENT_CHANNELS_MAX];
    atomic_int channel_count;
    int64_t timeout_ms;
    int64_t max_message_bytes;
    char auth_header[CONFIG_STR_MAX + 8];
    char *tls_roots;
    bool tls;
} g_cli = {.mu = PTHREAD_MUTEX_INITIALIZER, .timeout_ms = 5000, .max_message_bytes = 4194304};

void rpc_client_init(const config_t *cfg) {
    if (cfg == NULL) {
        return;
    }
    g_cli.timeout_ms = cfg->client_timeout_ms;
    rpc_batch_set_in_flight((int)cfg->client_batch_in_flight);
    g_cli.max_message_bytes = cfg->max_message_bytes;
    g_cli.auth_header[0] = '\0';
    if (cfg->auth_token[0]) {
        snprintf(g_cli.auth_header, sizeof g_cli.auth_header, "Bearer %s", cfg->auth_token);
    }
    if (cfg->tls_ca_path[0]) {
        FILE *f = fopen(cfg->tls_ca_path, "rb");
        if (f != NULL) {
            fseek(f, 0, SEEK_END);
            long n = ftell(f);
            fseek(f, 0, SEEK_SET);
            g_cli.tls_roots = calloc(1, (size_t)(n > 0 ? n : 0) + 1);
            if (g_cli.tls_roots && n > 0 && fread(g_cli.tls_roots, 1, (size_t)n, f) != (size_t)n) {
                free(g_cli.tls_roots);
                g_cli.tls_roots = NULL;
            }
            fclose(f);
        }
        if (g_cli.tls_roots == NULL) {
            log_msg(LOG_ERROR, "cannot read LOYALTY_TLS_CA; calls to other services will fail");
        }
        g_cli.tls = true;
    }
}

void rpc_client_set_batch_in_flight(int in_flight) {
    rpc_batch_set_in_flight(in_flight);
}

void rpc_client_thread_cleanup(void) {
    /* Completion queues are per batch, so a thread holds nothing between calls. */
}

void rpc_client_shutdown(void) {
    rpc_batchers_shutdown();
    pthread_mutex_lock(&g_cli.mu);
    int n = atomic_load(&g_cli.channel_count);
    for (int i = 0; i < n; i++) {
        rpc_channel_t *ch = g_cli.channels[i];
        grpc_channel_destroy(ch->channel);
        pthread_mutex_destroy(&ch->mu);
        free(ch);
        g_cli.channels[i] = NULL;
    }
    atomic_store(&g_cli.channel_count, 0);
    free(g_cli.tls_roots);
    g_cli.tls_roots = NULL;
    pthread_mutex_unlock(&g_cli.mu);
}

static rpc_channel_t *channel_find(const char *target) {
    int n = atomic_load(&g_cli.channel_count);
    for (int i = 0; i < n; i++) {
        if (strcmp(g_cli.channels[i]->target, target) == 0) {
            return g_cli.channels[i];
        }
    }
    return NULL;
}

rpc_channel_t *rpc_channel_get(const char *target) {
    rpc_channel_t *ch = channel_find(target);
    if (ch != NULL) {
        return ch;
    }
    pthread_mutex_lock(&g_cli.mu);
    ch = channel_find(target);
    if (ch == NULL) {
        int n = atomic_load(&g_cli.channel_count);
        assert(n < CLIENT_CHANNELS_MAX);
        ch = calloc(1, sizeof *ch);
        if (ch == NULL) {
            abort();
        }
        snprintf(ch->target, sizeof ch->target, "%s", target);
        pthread_mutex_init(&ch->mu, NULL);
        grpc_arg args[6];
        memset(args, 0, sizeof args);
        args[0].type = GRPC_ARG_INTEGER;
        args[0].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
        args[0].value.integer = (int)g_cli.max_message_bytes;
        args[1].type = GRPC_ARG_INTEGER;
        args[1].key = (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
        args[1].value.integer = (int)g_cli.max_message_bytes;
        /* A restarted service (rolling update, crash) is reachable again within a second or
         * two; gRPC's default back-off would wait up to two minutes. */
        args[2].type = GRPC_ARG_INTEGER;
        args[2].key = (char *)GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS;
        args[2].value.integer = 100;
        args[3].type = GRPC_ARG_INTEGER;
        args[3].key = (char *)GRPC_ARG_MAX_RECONNECT_BACKOFF_MS;
        args[3].value.integer = 2000;
        /* Balance calls over every address the name resolves to (all ready pods behind a
         * headless Kubernetes Service); with one address this is a plain connection. */
        args[4].type = GRPC_ARG_STRING;
        args[4].key = (char *)GRPC_ARG_SERVICE_CONFIG;
        args[4].value.string = (char *)"{\"loadBalancingConfig\": [{\"round_robin\": {}}]}";
        args[5].type = GRPC_ARG_INTEGER; /* see srv_start */
        args[5].key = (char *)GRPC_ARG_ENABLE_CHANNELZ;
        args[5].value.integer = 0;
        grpc_channel_args channel_args = {6, args};
        grpc_channel_credentials *creds =
            g_cli.tls ? grpc_ssl_credentials_create(g_cli.tls_roots, NULL, NULL, NULL)
                      : grpc_insecure_credentials_create();
        ch->channel = grpc_channel_create(target, creds, &channel_args);
        grpc_channel_credentials_release(creds);
        g_cli.channels[n] = ch;
        atomic_store(&g_cli.channel_count, n + 1); /* publish after the entry is complete */
    }
    pthread_mutex_unlock(&g_cli.mu);
    return ch;
}

static void *channel_method(rpc_channel_t *ch, const char *path) {
    int n = atomic_load(&ch->method_count);
    for (int i = 0; i < n; i++) {
        if (strcmp(ch->methods[i].path, path) == 0) {
            return ch->methods[i].handle;
        }
    }
    pthread_mutex_lock(&ch->mu);
    n = atomic_load(&ch->method_count);
    void *handle = NULL;
    for (int i = 0; i < n && handle == NULL; i++) {
        if (strcmp(ch->methods[i].path, path) == 0) {
            handle = ch->methods[i].handle;
        }
    }
    if (handle == NULL && n < CLIENT_METHODS_MAX) {
        client_method_t *m = &ch->methods[n];
        snprintf(m->path, sizeof m->path, "%s", path);
        m->handle = grpc_channel_register_call(ch->channel, m->path, NULL, NULL);
        handle = m->handle;
        atomic_store(&ch->method_count, n + 1);
    }
    pthread_mutex_unlock(&ch->mu);
    return handle;
}

/* The state of one call in a batch. */
typedef struct pending {
    rpc_call_spec_t *spec;
    grpc_call *call;
    const ProtobufCMethodDescriptor *md;
    grpc_byte_buffer *send_bb;
    grpc_byte_buffer *recv_bb;
    grpc_metadata_array initial_md;
    grpc_metadata_array trailing_md;
    grpc_status_code status;
    grpc_slice details;
    const char *error_string;
    grpc_metadata send_md[4 + RPC_EXTRA_METADATA_MAX];
    char traceparent[TRACEPARENT_LEN + 1];
    bool started;
} pending_t;

static gpr_timespec call_deadline(const rpc_call_opts_t *opts) {
    int64_t ms = opts && opts->timeout_ms > 0 ? opts->timeout_ms : g_cli.timeout_ms;
    gpr_timespec dl =
        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
    const rpc_ctx_t *served = rpc_ctx_current();
    if (served != NULL) {
        gpr_timespec outer = gpr_convert_clock_type(served->deadline, GPR_CLOCK_MONOTONIC);
        if (gpr_time_cmp(outer, dl) < 0) {
            dl = outer; /* never outlive the call we are serving */
        }
    }
    return dl;
}

/* The W3C trace context of a call made while serving one: the served call's trace, a new child
 * span id for this call, its tracestate unchanged (trace.h). Calls made outside a served call
 * (tests, tools) send none unless they pass their own, and the callee starts a trace. The
 * values live in `p` and the served call, both longer than this call. */
static size_t call_trace_metadata(pending_t *p, size_t at, bool caller_has_one) {
    const rpc_ctx_t *served = rpc_ctx_current();
    if (caller_has_one || served == NULL || served->trace == NULL) {
        return 0;
    }
    const trace_ctx_t *t = served->trace;
    char child_span_id[TRACE_SPAN_ID_HEX + 1];
    trace_child_traceparent(t, p->traceparent, child_span_id);
    p->send_md[at].key = grpc_slice_from_static_string("traceparent");
    p->send_md[at].value = grpc_slice_from_static_string(p->traceparent);
    if (log_enabled(LOG_DEBUG)) { /* the client span, for whoever stitches at debug level */
        log_msg(LOG_DEBUG, "calling %s/%s as span %s", p->spec->service->name, p->spec->method,
                child_span_id);
    }
    if (t->tracestate[0] == '\0') {
        return 1;
    }
    p->send_md[at + 1].key = grpc_slice_from_static_string("tracestate");
    p->send_md[at + 1].value = grpc_slice_from_static_string(t->tracestate);
    return 2;
}

static size_t call_metadata(pending_t *p, const rpc_call_opts_t *opts, const char *request_id) {
    size_t n = 0;
    p->send_md[n].key = grpc_slice_from_static_string("x-request-id");
    p->send_md[n].value = grpc_slice_from_static_string(request_id);
    n++;
    const char *auth = g_cli.auth_header;
    char custom[CONFIG_STR_MAX + 8];
    if (opts && opts->auth_token) {
        auth = custom;
        custom[0] = '\0';
        if (opts->auth_token[0]) {
            snprintf(custom, sizeof custom, "Bearer %s", opts->auth_token);
        }
    }
    if (auth[0]) {
        p->send_md[n].key = grpc_slice_from_static_string("authorization");
        /* copied: `custom` is on this stack frame */
        p->send_md[n].value = grpc_slice_from_copied_string(auth);
        n++;
    }
    bool own_traceparent = false;
    for (size_t i = 0; opts && i < opts->extra_count && i < RPC_EXTRA_METADATA_MAX; i++) {
        p->send_md[n].key = grpc_slice_from_static_string(opts->extra_keys[i]);
        p->send_md[n].value = grpc_slice_from_static_string(opts->extra_values[i]);
        own_traceparent = own_traceparent || strcmp(opts->extra_keys[i], "traceparent") == 0;
        n++;
    }
    n += call_trace_metadata(p, n, own_traceparent);
    return n;
}

static void call_start(pending_t *p, grpc_completion_queue *cq, gpr_timespec deadline,
                       const rpc_call_opts_t *opts, const char *request_id) {
    rpc_call_spec_t *s = p->spec;
    p->md = protobuf_c_service_descriptor_get_method_by_name(s->service, s->method);
    assert(p->md != NULL);
    char path[CLIENT_PATH_MAX];
    snprintf(path, sizeof path, "/%s/%s", s->service->name, s->method);
    void *handle = channel_method(s->channel, path);
    p->call = grpc_channel_create_registered_call(
        s->channel->channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq, handle, deadline, NULL);
    p->send_bb = pb_to_byte_buffer(s->request);
    grpc_metadata_array_init(&p->initial_md);
    grpc_metadata_array_init(&p->trailing_md);
    size_t md_count = call_metadata(p, opts, request_id);
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].flags = opts && opts->wait_for_ready ? GRPC_INITIAL_METADATA_WAIT_FOR_READY : 0;
    ops[0].data.send_initial_metadata.count = md_count;
    ops[0].data.send_initial_metadata.metadata = p->send_md;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = p->send_bb;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &p->initial_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &p->recv_bb;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &p->trailing_md;
    ops[5].data.recv_status_on_client.status = &p->status;
    ops[5].data.recv_status_on_client.status_details = &p->details;
    ops[5].data.recv_status_on_client.error_string = &p->error_string;
    grpc_call_error err = grpc_call_start_batch(p->call, ops, 6, p, NULL);
    p->started = err == GRPC_CALL_OK;
    if (!p->started) {
        s->status =
            status_make(STATUS_INTERNAL, REASON_CLIENT_ERROR, "cannot start call: %d", (int)err);
    }
}

static void call_complete(pending_t *p, arena_t *arena) {
    rpc_call_spec_t *s = p->spec;
    status_code_t code = status_code_from_int((int)p->status);
    const char *reason = "";
    char reason_buf[STATUS_REASON_MAX];
    for (size_t i = 0; i < p->trailing_md.count; i++) {
        if (grpc_slice_str_cmp(p->trailing_md.metadata[i].key, "loyalty-error-reason") == 0) {
            grpc_slice v = p->trailing_md.metadata[i].value;
            size_t n = GRPC_SLICE_LENGTH(v) < sizeof reason_buf - 1 ? GRPC_SLICE_LENGTH(v)
                                                                    : sizeof reason_buf - 1;
            memcpy(reason_buf, GRPC_SLICE_START_PTR(v), n);
            reason_buf[n] = '\0';
            reason = reason_buf;
        }
    }
    if (code == STATUS_OK) {
        s->response = p->recv_bb ? pb_from_byte_buffer(arena, p->md->output, p->recv_bb) : NULL;
        s->status = s->response ? status_ok()
                                : status_make(STATUS_INTERNAL, REASON_MALFORMED_RESPONSE,
                                              "%s returned no valid response", s->method);
    } else {
        char *details = grpc_slice_to_c_string(p->details);
        s->status = status_make_relayed(code, reason[0] ? reason : NULL, "%s", details);
        gpr_free(details);
    }
}

static int64_t client_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void call_release(pending_t *p) {
    if (p->call == NULL) {
        return;
    }
    grpc_slice_unref(p->details);
    if (p->error_string) {
        gpr_free((void *)p->error_string);
    }
    for (size_t i = 0; i < sizeof p->send_md / sizeof p->send_md[0]; i++) {
        grpc_slice_unref(p->send_md[i].value);
    }
    grpc_metadata_array_destroy(&p->initial_md);
    grpc_metadata_array_destroy(&p->trailing_md);
    grpc_byte_buffer_destroy(p->send_bb);
    if (p->recv_bb) {
        grpc_byte_buffer_destroy(p->recv_bb);
    }
    grpc_call_unref(p->call);
}

/* A call that waits for a batch (rpc_batch_call.h): its request packed, its request id and
 * trace context those a call of its own would send. */
static void batch_item_fill(rpc_batch_item_t *it, const rpc_call_spec_t *s, const char *request_id,
                            gpr_timespec deadline) {
    memset(it, 0, sizeof *it);
    size_t len = protobuf_c_message_get_packed_size(s->request);
    it->request = malloc(len ? len : 1);
    if (it->request == NULL) {
        abort();
    }
    it->request_len = protobuf_c_message_pack(s->request, it->request);
    snprintf(it->request_id, sizeof it->request_id, "%s", request_id);
    const rpc_ctx_t *served = rpc_ctx_current();
    if (served != NULL && served->trace != NULL) {
        char child_span_id[TRACE_SPAN_ID_HEX + 1];
        trace_child_traceparent(served->trace, it->traceparent, child_span_id);
    }
    it->lock_key = s->lock_key;
    it->deadline = deadline;
}

/* A batched call's answer into its spec: the response decoded into the caller's arena. */
static void batch_item_take(rpc_batch_item_t *it, rpc_call_spec_t *s, arena_t *arena) {
    const ProtobufCMethodDescriptor *md =
        protobuf_c_service_descriptor_get_method_by_name(s->service, s->method);
    s->status = it->status;
    if (status_is_ok(&it->status)) {
        s->response = pb_unpack_arena(arena, md->output, it->response, it->response_len);
        if (s->response == NULL) {
            s->status = status_make(STATUS_INTERNAL, REASON_MALFORMED_RESPONSE,
                                    "%s returned no valid response", s->method);
        }
    }
    free(it->response);
    free(it->request);
    it->response = it->request = NULL;
}

void rpc_call_many(rpc_call_spec_t *calls, size_t n, arena_t *arena, const rpc_call_opts_t *opts) {
    assert(n <= CLIENT_BATCH_MAX);
    pending_t pend[CLIENT_BATCH_MAX];
    memset(pend, 0, sizeof pend);
    /* Per call: the batcher whose slot a call made alone holds, or the item waiting in one. */
    rpc_batcher_t *slot[CLIENT_BATCH_MAX] = {NULL}, *waits_in[CLIENT_BATCH_MAX] = {NULL};
    rpc_batch_item_t items[CLIENT_BATCH_MAX];
    char generated[REQUEST_ID_MAX + 1];
    const char *request_id = opts && opts->request_id ? opts->request_id : NULL;
    if (request_id == NULL && rpc_ctx_current() != NULL) {
        request_id = rpc_ctx_current()->request_id;
    }
    if (request_id == NULL) {
        id_random_token("0123456789abcdef", 20, generated);
        request_id = generated;
    }
    gpr_timespec deadline = call_deadline(opts);
    int64_t start_us = client_now_us();
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    size_t started = 0;
    for (size_t i = 0; i < n; i++) {
        pend[i].spec = &calls[i];
        calls[i].response = NULL;
        rpc_batcher_t *b = calls[i].batch ? rpc_batcher_for(calls[i].channel, calls[i].service,
                                                            calls[i].method, opts)
                                          : NULL;
        if (b != NULL && !rpc_batcher_enter(b)) {
            batch_item_fill(&items[i], &calls[i], request_id, deadline);
            rpc_batcher_submit(b, &items[i]);
            waits_in[i] = b;
            continue;
        }
        slot[i] = b;
        call_start(&pend[i], cq, deadline, opts, request_id);
        started += pend[i].started;
        if (!pend[i].started && slot[i] != NULL) {
            rpc_batcher_leave(slot[i]);
            slot[i] = NULL;
        }
    }
    for (size_t done = 0; done < started;) {
        grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type != GRPC_OP_COMPLETE) {
            continue; /* cannot time out: the deadline ends every call */
        }
        pending_t *p = ev.tag;
        size_t i = (size_t)(p - pend);
        if (slot[i] != NULL) { /* free the slot now: calls of that method may wait for it */
            rpc_batcher_leave(slot[i]);
            slot[i] = NULL;
        }
        call_complete(p, arena);
        rpc_metrics_client_handled(p->spec->service->name, p->spec->method, p->spec->status.code,
                                   client_now_us() - start_us);
        done++;
    }
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    for (size_t i = 0; i < n; i++) {
        call_release(&pend[i]);
    }
    grpc_completion_queue_destroy(cq);
    for (size_t i = 0; i < n; i++) {
        if (waits_in[i] == NULL) {
            continue;
        }
        rpc_batcher_wait(waits_in[i], &items[i]);
        if (items[i].fallback) { /* the peer does not batch it: alone, as before */
            free(items[i].request);
            rpc_call_spec_t alone = calls[i];
            alone.batch = false;
            rpc_call_many(&alone, 1, arena, opts);
            calls[i].response = alone.response;
            calls[i].status = alone.status;
            continue;
        }
        batch_item_take(&items[i], &calls[i], arena);
        rpc_metrics_client_handled(calls[i].service->name, calls[i].method, calls[i].status.code,
                                   client_now_us() - start_us);
    }
}

status_t rpc_call(rpc_channel_t *ch, const ProtobufCServiceDescriptor *service, const char *method,
                  const ProtobufCMessage *request, arena_t *arena, ProtobufCMessage **response,
                  const rpc_call_opts_t *opts) {
    rpc_call_spec_t spec = {
        .channel = ch, .service = service, .method = method, .request = request};
    rpc_call_many(&spec, 1, arena, opts);
    if (response) {
        *response = spec.response;
    }
    return spec.status;
}
