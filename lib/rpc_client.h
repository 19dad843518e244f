/* rpc_client.h -- calls to other services (and the tests' calls to services) over the core C
 * API. One channel per target, created once and shared by all threads; a deadline on every
 * call, never later than the deadline of the call being served; the request id and the bearer
 * token travel as metadata; the returned status maps back into status_t with its reason. */
#ifndef LOYALTY_RPC_CLIENT_H
#define LOYALTY_RPC_CLIENT_H

#include "arena.h"
#include "config.h"
#include "status.h"

#include <protobuf-c/protobuf-c.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rpc_channel rpc_channel_t;

/** Sets defaults for every call from this process: timeout (RPC_CLIENT_TIMEOUT_MS), bearer
 *  token (LOYALTY_AUTH_TOKEN), TLS roots (LOYALTY_TLS_CA) and message limit. Call after
 *  grpc_init and before the first call; cfg may be NULL for built-in defaults. */
void rpc_client_init(const config_t *cfg);

/** Sets RPC_CLIENT_BATCH_IN_FLIGHT for this process (rpc_client_init reads it from the
 *  configuration): batchable calls in flight per channel and method before the next ones wait
 *  and go together as one BatchService/Run; 0 = never batch. Call before the first call. */
void rpc_client_set_batch_in_flight(int in_flight);

/** Destroys every channel; no call may be in flight. */
void rpc_client_shutdown(void);

/** Releases per-thread client resources; call before a thread that made calls exits. */
void rpc_client_thread_cleanup(void);

/** The shared channel to `target` ("host:port"), created on first use. Thread-safe; the
 *  channel lives until rpc_client_shutdown. */
rpc_channel_t *rpc_channel_get(const char *target);

#define RPC_EXTRA_METADATA_MAX 4

typedef struct rpc_call_opts {
    int64_t timeout_ms;     /* 0 = the default */
    const char *request_id; /* NULL = the served call's, or a new one */
    const char *auth_token; /* NULL = the default; "" = send none */
    /* By default a call fails UNAVAILABLE at once when its peer cannot be reached (a dead
     * dependency is reported, not waited for). In a server process the workers' polling keeps
     * reconnecting channels in the background, so a restarted peer is reached again within
     * the reconnect back-off (at most 2 s). wait_for_ready waits for the peer until the
     * deadline instead. */
    bool wait_for_ready;
    size_t extra_count; /* further metadata (lowercase keys) */
    const char *extra_keys[RPC_EXTRA_METADATA_MAX];
    const char *extra_values[RPC_EXTRA_METADATA_MAX];
} rpc_call_opts_t;

/** One call to make: filled by the caller (channel, service, method, request), completed by
 *  rpc_call_many (status, response, reason and request id as received). */
typedef struct rpc_call_spec {
    rpc_channel_t *channel;
    const ProtobufCServiceDescriptor *service;
    const char *method; /* "GetMember" */
    const ProtobufCMessage *request;
    /* A mutating call that may go together with other threads' calls of the same method to the
     * same channel in one BatchService/Run (batch.proto) when RPC_CLIENT_BATCH_IN_FLIGHT such
     * calls are in flight already; its answer is the one it would have had alone. lock_key (a
     * member id, or NULL) orders the calls of a batch. */
    bool batch;
    const char *lock_key;
    ProtobufCMessage *response; /* out: in the arena, NULL unless OK */
    status_t status;            /* out */
} rpc_call_spec_t;

/** Makes `n` calls concurrently and waits for all of them. Responses are decoded into `arena`.
 *  opts may be NULL. */
void rpc_call_many(rpc_call_spec_t *calls, size_t n, arena_t *arena, const rpc_call_opts_t *opts);

/** One call: *response receives the decoded reply in `arena` when OK. */
status_t rpc_call(rpc_channel_t *ch, const ProtobufCServiceDescriptor *service, const char *method,
                  const ProtobufCMessage *request, arena_t *arena, ProtobufCMessage **response,
                  const rpc_call_opts_t *opts);

#endif
