/* rpc_server_internal.h -- what the parts of the shared server (rpc_server.c: threads and
 * setup; rpc_call.c: a call's life and serving a unary call; rpc_stream.c: streams and watches;
 * rpc_jobs.c: the monitor, the outbox publisher and the jobs; rpc_ctx.c: the per-call context)
 * share: the server's state, a call, and the functions one part calls in another. Not for
 * services: they use rpc_server.h. */
#ifndef LOYALTY_RPC_SERVER_INTERNAL_H
#define LOYALTY_RPC_SERVER_INTERNAL_H

#include "credentials.h"
#include "rpc_server.h"
#include "trace.h"
#include "validate.h"

#include <grpc/grpc.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

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
    bool is_batch;        /* BatchService/Run: served by srv_batch_serve */
    bool has_merchant;    /* the request has a top-level merchant_id */
    bool streaming;       /* RPC_STREAM: registered without payload, read with RECV_MESSAGE */
    cred_access_t access; /* who may call it with a credential file */
    bool audited;         /* a configuration change: recorded in audit_log (audit.h) */
    rpc_merger_t *merge;  /* the service's merger for its batches, or NULL */
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
    char on_behalf_of[CRED_ID_MAX + 1];          /* RPC_ON_BEHALF_OF_HEADER's value, or "" */
    bool on_behalf_of_invalid;                   /* the header was there but not an id */
    char durable_with[RPC_DURABLE_WITH_MAX + 1]; /* RPC_DURABLE_WITH_HEADER's value, or "" */
    arena_t arena;
} call_t;

typedef struct srv_state {
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
} srv_state_t;

extern srv_state_t g_srv;

/* rpc_ctx.c */
/** Makes ctx the calling thread's current call context (NULL: none). */
void srv_ctx_set_current(rpc_ctx_t *ctx);

/* rpc_call.c */
int64_t srv_now_us(void);
void srv_call_free(call_t *c);
void srv_call_request(const srv_method_t *m, srv_cq_t *q);
void srv_call_request_unknown(srv_cq_t *q);
void srv_call_finish(call_t *c, const status_t *st);
void srv_call_bind_log(const call_t *c);
void srv_call_read_metadata(call_t *c, const char **auth, size_t *auth_len);
status_t srv_call_admit(call_t *c, const char *auth, size_t auth_len);
status_t srv_call_decode(call_t *c, ProtobufCMessage **req);
status_t srv_call_authorize(call_t *c, const ProtobufCMessage *req, rpc_ctx_t *ctx);
status_t srv_call_check_on_behalf(const call_t *c, rpc_ctx_t *ctx);
void srv_call_serve(worker_t *w, call_t *c);
bool srv_request_id_valid(const char *s, size_t n);
/** Whether the call's changes may commit without waiting for the disk (RPC_DURABLE_WITH_HEADER). */
bool srv_call_commit_async(const call_t *c, db_t *db);
/** One mutating call with its idempotency record, answered as call_dispatch would (*resp may
 *  become a replayed answer): in a transaction of its own, or with `as_part` as a part of the
 *  caller's open transaction (db_tx_part). */
status_t srv_call_mutate(rpc_ctx_t *ctx, const srv_method_t *m, const ProtobufCMessage *req,
                         ProtobufCMessage **resp, const char *idempotency_key, bool as_part);

/* rpc_batch_serve.c */
extern const rpc_service_t batch_service;
/** BatchService/Run (batch.proto): the calls of one method in one transaction. */
status_t srv_batch_serve(call_t *c, rpc_ctx_t *ctx, ProtobufCMessage **resp_out);
void srv_call_serve_unknown(call_t *c);

/* rpc_stream.c */
void srv_watch_release(void);
void srv_watch_notify(void);
void srv_watch_close_all(void);
void srv_call_stream_received(worker_t *w, call_t *c, bool success);
void srv_call_stream_sent(call_t *c, bool success);
void srv_call_stream_start(call_t *c);

/* rpc_jobs.c */
void *srv_monitor_main(void *arg);
void *srv_outbox_main(void *arg);
void srv_jobs_start(void);
void srv_jobs_join(void);
/** Sleeps up to ms unless the background threads are told to stop; true when stopping. */
bool srv_background_sleep(int64_t ms);
/** Runs fn as a job does: a context of its own (arena, request id, trace; merchant_id as
 *  given), the cache invalidations it registered and the outbox kick once it returned, a log
 *  line when it failed. Returns fn's status. */
status_t srv_background_run(const char *name, db_t *db, cache_t *cache, const char *merchant_id,
                            status_t (*fn)(rpc_ctx_t *ctx, void *arg), void *arg);

/* rpc_server.c */
db_t *srv_db_create(void);
status_t srv_check_migrated(db_t *db);

#endif
