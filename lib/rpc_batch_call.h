/* rpc_batch_call.h -- the client's side of BatchService (batch.proto), for rpc_client.c only: a
 * batchable call (rpc_call_spec_t.batch) goes out alone while fewer than
 * RPC_CLIENT_BATCH_IN_FLIGHT calls of its channel and method are in flight; otherwise it waits,
 * and the calls that waited go together in one BatchService/Run as soon as a slot frees. No call
 * waits when nothing is in flight, and under load a batch holds what arrived during the one
 * before it. */
#ifndef LOYALTY_RPC_BATCH_CALL_H
#define LOYALTY_RPC_BATCH_CALL_H

#include "rpc.h"
#include "rpc_client.h"
#include "trace.h"

#include <grpc/support/time.h>

#include <stdbool.h>
#include <stddef.h>

typedef struct rpc_batcher rpc_batcher_t;

/** A call waiting for a batch: filled by the caller, answered by the batcher. */
typedef struct rpc_batch_item {
    struct rpc_batch_item *next;
    unsigned char *request; /* packed, malloc'd by the caller */
    size_t request_len;
    char request_id[REQUEST_ID_MAX + 1];
    char traceparent[TRACEPARENT_LEN + 1];
    const char *lock_key;
    gpr_timespec deadline; /* monotonic */
    /* Answer: done under the batcher's lock. fallback: the peer cannot batch this method (an
     * older build, or not a mutating method): the caller makes the call alone. */
    bool done, fallback;
    status_t status;
    unsigned char *response; /* malloc'd when OK; the caller frees it */
    size_t response_len;
} rpc_batch_item_t;

/** Sets how many calls of one channel and method may be in flight before calls wait to be
 *  batched; 0 turns batching off. Call before the first call. */
void rpc_batch_set_in_flight(int in_flight);

/** The batcher for calls of `method` to `ch` with these options, or NULL when such calls are not
 *  batched (batching off, the peer known not to batch, options that a batch cannot carry). */
rpc_batcher_t *rpc_batcher_for(rpc_channel_t *ch, const ProtobufCServiceDescriptor *service,
                               const char *method, const rpc_call_opts_t *opts);

/** Takes an in-flight slot for a call made alone (true), or says that the call must wait for a
 *  batch (false: submit it). */
bool rpc_batcher_enter(rpc_batcher_t *b);

/** Gives back the slot of a call made alone, once it has completed. */
void rpc_batcher_leave(rpc_batcher_t *b);

/** Queues an item for the next batch. */
void rpc_batcher_submit(rpc_batcher_t *b, rpc_batch_item_t *item);

/** Waits until the item is answered. */
void rpc_batcher_wait(rpc_batcher_t *b, rpc_batch_item_t *item);

/** Stops the batchers' threads; no call may be in flight. */
void rpc_batchers_shutdown(void);

#endif
