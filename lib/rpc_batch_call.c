/* rpc_batch_call.c -- batchers: one per channel, method and metadata, each with the calls that
 * wait for a slot and the threads that send them as BatchService/Run (rpc_batch_call.h). */
#include "rpc_batch_call.h"

#include "log.h"
#include "loyalty/v1/batch.pb-c.h"
#include "pb.h"

#include <grpc/support/time.h>

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCHERS_MAX 64
#define BATCHER_THREADS_MAX 16
#define BATCH_METHOD_MAX 160
#define BATCH_MD_KEY_MAX 64
#define BATCH_MD_VALUE_MAX 128

struct rpc_batcher {
    rpc_channel_t *ch;
    const ProtobufCServiceDescriptor *service;
    char method[BATCH_METHOD_MAX]; /* "Hold" */
    char path[BATCH_METHOD_MAX];   /* "/loyalty.v1.PointsService/Hold" */
    size_t extra_count;            /* the calls' own metadata, sent with each batch */
    char extra_keys[RPC_EXTRA_METADATA_MAX][BATCH_MD_KEY_MAX];
    char extra_values[RPC_EXTRA_METADATA_MAX][BATCH_MD_VALUE_MAX];
    pthread_mutex_t mu;
    pthread_cond_t wake; /* a slot freed or an item came: for the senders */
    pthread_cond_t done; /* items answered: for their callers */
    rpc_batch_item_t *head, *tail;
    int in_flight;
    atomic_bool unsupported;
    bool stop;
    int threads;
    pthread_t thread[BATCHER_THREADS_MAX];
};

static struct {
    pthread_mutex_t mu;
    rpc_batcher_t *batchers[BATCHERS_MAX];
    int count;
    int in_flight; /* RPC_CLIENT_BATCH_IN_FLIGHT */
} g_batch = {.mu = PTHREAD_MUTEX_INITIALIZER, .in_flight = 0};

void rpc_batch_set_in_flight(int in_flight) {
    g_batch.in_flight = in_flight;
}

/* What a batch cannot carry: a call's own credential, request id or trace context, or a wait
 * for the peer (each batch has one of each). */
static bool batchable_opts(const rpc_call_opts_t *opts) {
    if (opts == NULL) {
        return true;
    }
    if (opts->auth_token != NULL || opts->request_id != NULL || opts->wait_for_ready ||
        opts->extra_count > RPC_EXTRA_METADATA_MAX) {
        return false;
    }
    for (size_t i = 0; i < opts->extra_count; i++) {
        if (strcmp(opts->extra_keys[i], "traceparent") == 0 ||
            strlen(opts->extra_keys[i]) >= BATCH_MD_KEY_MAX ||
            strlen(opts->extra_values[i]) >= BATCH_MD_VALUE_MAX) {
            return false;
        }
    }
    return true;
}

static bool batcher_matches(const rpc_batcher_t *b, rpc_channel_t *ch,
                            const ProtobufCServiceDescriptor *service, const char *method,
                            const rpc_call_opts_t *opts) {
    size_t extra = opts ? opts->extra_count : 0;
    if (b->ch != ch || b->service != service || strcmp(b->method, method) != 0 ||
        b->extra_count != extra) {
        return false;
    }
    for (size_t i = 0; i < extra; i++) {
        if (strcmp(b->extra_keys[i], opts->extra_keys[i]) != 0 ||
            strcmp(b->extra_values[i], opts->extra_values[i]) != 0) {
            return false;
        }
    }
    return true;
}

rpc_batcher_t *rpc_batcher_for(rpc_channel_t *ch, const ProtobufCServiceDescriptor *service,
                               const char *method, const rpc_call_opts_t *opts) {
    if (g_batch.in_flight <= 0 || !batchable_opts(opts) ||
        strlen(service->name) + strlen(method) + 3 > BATCH_METHOD_MAX) {
        return NULL;
    }
    rpc_batcher_t *found = NULL;
    pthread_mutex_lock(&g_batch.mu);
    for (int i = 0; i < g_batch.count && found == NULL; i++) {
        if (batcher_matches(g_batch.batchers[i], ch, service, method, opts)) {
            found = g_batch.batchers[i];
        }
    }
    if (found == NULL && g_batch.count < BATCHERS_MAX) {
        rpc_batcher_t *b = calloc(1, sizeof *b);
        if (b == NULL) {
            abort();
        }
        b->ch = ch;
        b->service = service;
        snprintf(b->method, sizeof b->method, "%s", method);
        snprintf(b->path, sizeof b->path, "/%s/%s", service->name, method);
        b->extra_count = opts ? opts->extra_count : 0;
        for (size_t i = 0; i < b->extra_count; i++) {
            snprintf(b->extra_keys[i], sizeof b->extra_keys[i], "%s", opts->extra_keys[i]);
            snprintf(b->extra_values[i], sizeof b->extra_values[i], "%s", opts->extra_values[i]);
        }
        pthread_mutex_init(&b->mu, NULL);
        pthread_cond_init(&b->wake, NULL);
        pthread_cond_init(&b->done, NULL);
        g_batch.batchers[g_batch.count++] = b;
        found = b;
    }
    pthread_mutex_unlock(&g_batch.mu);
    if (found != NULL && atomic_load(&found->unsupported)) {
        return NULL;
    }
    return found;
}

bool rpc_batcher_enter(rpc_batcher_t *b) {
    pthread_mutex_lock(&b->mu);
    bool alone = b->head == NULL && b->in_flight < g_batch.in_flight;
    if (alone) {
        b->in_flight++;
    }
    pthread_mutex_unlock(&b->mu);
    return alone;
}

void rpc_batcher_leave(rpc_batcher_t *b) {
    pthread_mutex_lock(&b->mu);
    assert(b->in_flight > 0);
    b->in_flight--;
    if (b->head != NULL) {
        pthread_cond_signal(&b->wake);
    }
    pthread_mutex_unlock(&b->mu);
}

/* The answers of one batch, into its items (not yet marked done). */
static void batch_answer(rpc_batcher_t *b, rpc_batch_item_t **items, size_t n, status_t st,
                         const Loyalty__V1__BatchRunResponse *resp) {
    bool unsupported =
        st.code == STATUS_UNIMPLEMENTED ||
        (st.code == STATUS_INVALID_ARGUMENT && strcmp(st.reason, "BATCH_NOT_SUPPORTED") == 0);
    if (unsupported) {
        atomic_store(&b->unsupported, true);
        log_msg(LOG_WARN, "the peer does not take %s in batches: its calls go alone", b->path);
    }
    if (status_is_ok(&st) && (resp == NULL || resp->n_results != n)) {
        st = status_make(STATUS_INTERNAL, REASON_MALFORMED_RESPONSE,
                         "BatchService/Run answered %zu results for %zu calls",
                         resp ? resp->n_results : 0, n);
    }
    for (size_t i = 0; i < n; i++) {
        rpc_batch_item_t *it = items[i];
        it->fallback = unsupported;
        if (!status_is_ok(&st)) {
            it->status = st;
            continue;
        }
        const Loyalty__V1__BatchCallResult *r = resp->results[i];
        status_code_t code = status_code_from_int(r->code);
        const char *reason = r->reason;
        if (code != STATUS_OK) {
            it->status = status_make_relayed(code, reason[0] ? reason : NULL, "%s", r->message);
            continue;
        }
        it->status = status_ok();
        it->response = malloc(r->response.len ? r->response.len : 1);
        if (it->response == NULL) {
            abort();
        }
        if (r->response.len > 0) {
            memcpy(it->response, r->response.data, r->response.len);
        }
        it->response_len = r->response.len;
    }
}

/* Sends one batch and answers its items. The items' memory is their callers', who wait. */
static void batch_send(rpc_batcher_t *b, rpc_batch_item_t **items, size_t n) {
    arena_t a;
    arena_init(&a);
    Loyalty__V1__BatchRunRequest req = LOYALTY__V1__BATCH_RUN_REQUEST__INIT;
    req.method = b->path;
    req.n_calls = n;
    req.calls = arena_alloc(&a, n * sizeof *req.calls);
    gpr_timespec deadline = items[0]->deadline;
    for (size_t i = 0; i < n; i++) {
        Loyalty__V1__BatchCall *c = pb_new(&a, &loyalty__v1__batch_call__descriptor);
        c->request.data = items[i]->request;
        c->request.len = items[i]->request_len;
        c->request_id = items[i]->request_id;
        c->traceparent = items[i]->traceparent;
        c->lock_key = (char *)(items[i]->lock_key ? items[i]->lock_key : "");
        req.calls[i] = c;
        if (gpr_time_cmp(items[i]->deadline, deadline) < 0) {
            deadline = items[i]->deadline; /* the batch ends when its first caller gives up */
        }
    }
    gpr_timespec left = gpr_time_sub(deadline, gpr_now(GPR_CLOCK_MONOTONIC));
    int64_t left_ms = (int64_t)left.tv_sec * 1000 + left.tv_nsec / 1000000;
    rpc_call_opts_t opts = {.timeout_ms = left_ms > 1 ? left_ms : 1,
                            .request_id = items[0]->request_id,
                            .extra_count = b->extra_count};
    for (size_t i = 0; i < b->extra_count; i++) {
        opts.extra_keys[i] = b->extra_keys[i];
        opts.extra_values[i] = b->extra_values[i];
    }
    ProtobufCMessage *resp = NULL;
    status_t st = rpc_call(b->ch, &loyalty__v1__batch_service__descriptor, "Run", &req.base, &a,
                           &resp, &opts);
    batch_answer(b, items, n, st, (const void *)resp);
    arena_free(&a);
}

static void *batcher_main(void *arg) {
    rpc_batcher_t *b = arg;
    rpc_batch_item_t *items[RPC_BATCH_CALLS_MAX];
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (!b->stop && (b->head == NULL || b->in_flight >= g_batch.in_flight)) {
            pthread_cond_wait(&b->wake, &b->mu);
        }
        if (b->head == NULL) { /* stopping, and nothing waits */
            break;
        }
        size_t n = 0;
        while (b->head != NULL && n < RPC_BATCH_CALLS_MAX) {
            items[n++] = b->head;
            b->head = b->head->next;
        }
        if (b->head == NULL) {
            b->tail = NULL;
        }
        b->in_flight++;
        pthread_mutex_unlock(&b->mu);
        batch_send(b, items, n);
        pthread_mutex_lock(&b->mu);
        b->in_flight--;
        for (size_t i = 0; i < n; i++) {
            items[i]->done = true;
        }
        pthread_cond_broadcast(&b->done);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

void rpc_batcher_submit(rpc_batcher_t *b, rpc_batch_item_t *item) {
    item->next = NULL;
    item->done = false;
    item->fallback = false;
    item->response = NULL;
    item->response_len = 0;
    pthread_mutex_lock(&b->mu);
    if (b->tail != NULL) {
        b->tail->next = item;
    } else {
        b->head = item;
    }
    b->tail = item;
    /* One sender per slot, started with the first call that waits. */
    while (b->threads < g_batch.in_flight && b->threads < BATCHER_THREADS_MAX) {
        if (pthread_create(&b->thread[b->threads], NULL, batcher_main, b) != 0) {
            abort();
        }
        b->threads++;
    }
    if (b->in_flight < g_batch.in_flight) {
        pthread_cond_signal(&b->wake);
    }
    pthread_mutex_unlock(&b->mu);
}

void rpc_batcher_wait(rpc_batcher_t *b, rpc_batch_item_t *item) {
    pthread_mutex_lock(&b->mu);
    while (!item->done) {
        pthread_cond_wait(&b->done, &b->mu);
    }
    pthread_mutex_unlock(&b->mu);
}

void rpc_batchers_shutdown(void) {
    pthread_mutex_lock(&g_batch.mu);
    for (int i = 0; i < g_batch.count; i++) {
        rpc_batcher_t *b = g_batch.batchers[i];
        pthread_mutex_lock(&b->mu);
        b->stop = true;
        pthread_cond_broadcast(&b->wake);
        pthread_mutex_unlock(&b->mu);
        for (int t = 0; t < b->threads; t++) {
            pthread_join(b->thread[t], NULL);
        }
        pthread_mutex_destroy(&b->mu);
        pthread_cond_destroy(&b->wake);
        pthread_cond_destroy(&b->done);
        free(b);
    }
    g_batch.count = 0;
    pthread_mutex_unlock(&g_batch.mu);
}
