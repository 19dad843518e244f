/* rpc.h -- what a service supplies to the shared server and what its handlers receive: a table
 * of plain C handler functions per protobuf-c service descriptor, and the per-call context
 * (arena, this worker's database and cache connections, request id, merchant). */
#ifndef LOYALTY_RPC_H
#define LOYALTY_RPC_H

#include "arena.h"
#include "cache.h"
#include "config.h"
#include "db.h"
#include "embed.h"
#include "status.h"

#include <grpc/support/time.h>
#include <protobuf-c/protobuf-c.h>

#include <stdint.h>

/* Cache keys one call may invalidate: a batch RPC (an import of opening balances, an expiry run)
 * touches one entry per member it changes. */
#define RPC_INVALIDATIONS_MAX 1024
#define REQUEST_ID_MAX 64
/* Calls one BatchService/Run may carry (batch.proto); more than this many subtransactions in
 * one transaction would overflow PostgreSQL's per-backend cache of them. */
#define RPC_BATCH_CALLS_MAX 64
#define RPC_STREAM_SENDS_MAX 64       /* responses one handler run may queue on a stream */
#define RPC_STREAM_MESSAGES_MAX 10000 /* request messages one stream may carry */

/* Request metadata by which a service calling a mutating RPC says that its own later commit, on
 * the PostgreSQL cluster whose system identifier is the value (db_cluster_id), makes the call's
 * change durable: a callee on that same cluster then commits without waiting for the disk
 * (docs/architecture.md "Durability of saga steps"). Honoured for the service credential only. */
#define RPC_DURABLE_WITH_HEADER "loyalty-durable-with"
#define RPC_DURABLE_WITH_MAX 24 /* a uint64 in decimal */

/* Request metadata by which the gateway, relaying an admin's call to a service (Gateway.Relay),
 * names the credential it acts for, so that the service's audit trail records the original
 * caller (and the gateway's credential as the one it came through). Trusted only from the
 * service credential; any other credential that sends it is refused (PERMISSION_DENIED
 * ON_BEHALF_OF_NOT_ALLOWED), and without authentication it is ignored, as it is on a
 * BatchService/Run (whose calls are the service's own). */
#define RPC_ON_BEHALF_OF_HEADER "loyalty-on-behalf-of"

typedef struct rpc_stream rpc_stream_t;

/** Everything a handler may use while serving one call. All memory from `arena` lives until
 *  the call completes; handlers never free request or response memory. */
typedef struct rpc_ctx {
    arena_t *arena;
    db_t *db;       /* this thread's database handle, bound to the service's schema */
    cache_t *cache; /* this worker's Redis connection (may be down: then every get misses) */
    const config_t *config;
    void *service_state;           /* rpc_server_options.service_state */
    const char *method;            /* "/loyalty.v1.MemberService/GetMember" */
    const char *request_id;        /* from x-request-id or generated */
    const struct trace_ctx *trace; /* from traceparent/tracestate or a new trace (trace.h) */
    const char *merchant_id;       /* the request's merchant_id, validated; "" when it has none */
    const char *credential_id;     /* the caller's credential id (credentials.h); "" without auth */
    /* The credential the caller acts for (RPC_ON_BEHALF_OF_HEADER, from the service credential
     * only); NULL or "" when it acts for itself. */
    const char *on_behalf_of;
    gpr_timespec deadline; /* the caller's deadline (monotonic clock) */
    int64_t now_s;         /* unix seconds when the call started */
    const char *invalidations[RPC_INVALIDATIONS_MAX];
    int invalidation_count;
    rpc_stream_t *stream; /* the call's outgoing messages (RPC_STREAM only), else NULL */
    int outbox_emitted;   /* entries recorded by outbox_emit during this call */
} rpc_ctx_t;

/** Handlers: decode nothing, the runtime did; validate, call rules and store, fill `resp` (an
 *  initialised message of the method's output type). A non-OK status discards `resp`. */
typedef status_t rpc_handler_t(rpc_ctx_t *ctx, const ProtobufCMessage *req, ProtobufCMessage *resp);
typedef rpc_handler_t *rpc_handler_fn;

/* Every service declares its handlers the same way, one per line so a reader finds an RPC's
 * code by its name: `rpc_handler_t points_rpc_hold;` */

typedef enum rpc_kind {
    RPC_READ,   /* no transaction opened by the runtime */
    RPC_TX,     /* runs inside one transaction, retried on conflicts */
    RPC_MUTATE, /* RPC_TX + the request's idempotency_key (required): the same key and request
                   replay the stored response; the same key with another request fails
                   ALREADY_EXISTS (docs/architecture.md#idempotency-keys) */
    RPC_STREAM, /* server-streaming or bidi (the .proto must say `stream`): the handler runs
                   once per request message, in order, with no transaction, and answers with
                   rpc_stream_send (any number of messages; `resp` is a fresh message it may
                   fill and send). The stream ends OK when the client half-closes, or with the
                   first non-OK status a handler returns, after what it queued is sent. The
                   arena is emptied after each request message. */
    /* RPC_READ whose merchant_id may be empty: an operator's view across merchants. The
     * runtime leaves it alone (ctx->merchant_id is ""); the handler validates a non-empty one. */
    RPC_READ_ANY_MERCHANT,
} rpc_kind_t;

/** One call of a BatchService/Run batch, as a merger (below) sees it. */
typedef struct rpc_merge_call {
    rpc_ctx_t *ctx;              /* the call's own: its request id, merchant, invalidations */
    const ProtobufCMessage *req; /* decoded and checked as for a lone call */
    ProtobufCMessage *resp;      /* an initialised message of the method's output type */
    rpc_handler_fn handler;      /* the method's handler, as a lone call would run */
    /* Set by the merger for a call it leaves out: the call then runs by itself after the merged
     * ones (a refusal is found and answered there, with the idempotency check a lone call has).
     * A call left out must have written nothing. */
    bool alone;
} rpc_merge_call_t;

/** A method's handler for several of its calls at once (docs/architecture.md "Batched saga
 *  steps"): the calls of one batch for one merchant (at least two, ordered by lock key), run
 *  as one operation with statements shared between them inside the batch's transaction. It
 *  fills the response of every call it does not leave out, each exactly what the call would
 *  have answered alone, and must leave out a call that would interact with another of the
 *  batch (the same member) unless it applies them in order. Returning an error abandons the
 *  merged run: everything it wrote is rolled back and every call runs by itself. The runtime
 *  records the merged calls' idempotency keys in one statement. */
typedef status_t rpc_merger_t(rpc_ctx_t *ctx, rpc_merge_call_t *calls, size_t n);

/** What a method without a merger of its own does merged: the calls' handlers one after
 *  another, each with its own context, so that each sees the ones before it; the first refusal
 *  ends it. For a merger that only needs to share something around that (its own state set up
 *  before, written after). */
status_t rpc_merge_in_sequence(rpc_merge_call_t *calls, size_t n);

typedef struct rpc_method {
    const char *name; /* as in the .proto: "GetMember" */
    rpc_handler_fn handler;
    rpc_kind_t kind;
} rpc_method_t;

/** A method's merger (RPC_MUTATE methods only). */
typedef struct rpc_method_merger {
    const char *name; /* "EarnBatch" */
    rpc_merger_t *merge;
} rpc_method_merger_t;

typedef struct rpc_service {
    const ProtobufCServiceDescriptor *descriptor;
    const rpc_method_t *methods; /* ends with an entry whose name is NULL */
    /* The methods whose batches run merged (rpc_merger_t), ending with an entry whose name is
     * NULL; may be NULL. */
    const rpc_method_merger_t *mergers;
} rpc_service_t;

/** Background work run on a timer by a thread of its own, with its own connections; `ctx`
 *  has no merchant, method is the job's name. Jobs must be safe to run on several replicas at
 *  once (row locks with SKIP LOCKED, or idempotent updates). */
typedef status_t (*rpc_job_fn)(rpc_ctx_t *ctx);

typedef struct rpc_job {
    const char *name;
    rpc_job_fn fn;
    int64_t interval_s; /* 0 = JOB_INTERVAL_S from the configuration */
} rpc_job_t;

/** Registers `key` for deletion from the cache once the call's transaction has ended (after
 *  commit, so that no reader can refill it with the old row). The key is borrowed: allocate it
 *  in ctx->arena. A key already registered by the call is not added twice. */
void rpc_ctx_invalidate(rpc_ctx_t *ctx, const char *key);

/** Queues `msg`, a message of the method's output type, to be sent on the stream once the
 *  handler returns (it is encoded now: it may live in the arena). RESOURCE_EXHAUSTED past
 *  RPC_STREAM_SENDS_MAX messages for one request message; INTERNAL outside an RPC_STREAM call. */
status_t rpc_stream_send(rpc_ctx_t *ctx, const ProtobufCMessage *msg);

/** A watch's current state for `key` (see rpc_stream_watch), and the message that tells it. */
typedef int (*rpc_watch_state_fn)(const char *key);
typedef void (*rpc_watch_fill_fn)(int state, ProtobufCMessage *resp);
#define RPC_WATCH_KEY_MAX 200 /* bytes of a watch key */
#define RPC_WATCHES_MAX 256   /* watches open at once in one process */

/** Turns the stream into a watch (grpc.health.v1.Health/Watch): it stays open after the client
 *  half-closes, and whenever `state(key)` differs from the last state sent (`sent_state`, which
 *  the handler has just queued) the runtime sends a message filled by `fill`. The runtime
 *  re-checks after every health change it makes (migrations, PostgreSQL probe, shutdown), and
 *  ends every watch UNAVAILABLE when the server stops listening. Between changes a watch holds
 *  no thread. RESOURCE_EXHAUSTED past RPC_WATCHES_MAX; the key is copied. */
status_t rpc_stream_watch(rpc_ctx_t *ctx, const char *key, int sent_state, rpc_watch_state_fn state,
                          rpc_watch_fill_fn fill);

/** Milliseconds left before the caller's deadline (INT64_MAX when there is none). */
int64_t rpc_ctx_remaining_ms(const rpc_ctx_t *ctx);

/** The context of the call this thread is serving, or NULL; the client uses it to propagate
 *  the request id and the deadline. */
const rpc_ctx_t *rpc_ctx_current(void);

#endif
