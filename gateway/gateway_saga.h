/* gateway_saga.h -- the saga engine: the executor state of one saga, logged participant calls
 * (steps), the lease, and the driver that moves a saga through its states with the flows of its
 * kind. A flow is a deterministic function of the saga's request and its steps' responses:
 * resuming a saga is running its flow again, and steps already DONE answer from the log. */
#ifndef GATEWAY_SAGA_H
#define GATEWAY_SAGA_H

#include "gateway_rules.h"
#include "ids.h"
#include "loyalty/v1/gateway.pb-c.h"
#include "rpc.h"
#include "rpc_client.h"
#include "validate.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Saga kinds, states and step enums are the proto's numbers (also stored in the log). */
#define GW_KIND_REGISTRATION LOYALTY__V1__GATEWAY_SAGA_KIND__GATEWAY_SAGA_KIND_REGISTRATION
#define GW_KIND_CHECKOUT LOYALTY__V1__GATEWAY_SAGA_KIND__GATEWAY_SAGA_KIND_CHECKOUT
#define GW_KIND_REFUND LOYALTY__V1__GATEWAY_SAGA_KIND__GATEWAY_SAGA_KIND_REFUND
#define GW_KIND_TOP_UP LOYALTY__V1__GATEWAY_SAGA_KIND__GATEWAY_SAGA_KIND_TOP_UP
#define GW_KIND_REDEEM LOYALTY__V1__GATEWAY_SAGA_KIND__GATEWAY_SAGA_KIND_REDEEM_REWARD
#define GW_KIND_CHECK_IN LOYALTY__V1__GATEWAY_SAGA_KIND__GATEWAY_SAGA_KIND_CHECK_IN
#define GW_KIND_REFERRAL_RELEASE LOYALTY__V1__GATEWAY_SAGA_KIND__GATEWAY_SAGA_KIND_REFERRAL_RELEASE
#define GW_KIND_MAX 7

#define GW_BEGINNING LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_BEGINNING
#define GW_RESERVED LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_RESERVED
#define GW_COMPLETING LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_COMPLETING
#define GW_COMPLETED LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_COMPLETED
#define GW_CANCELLING LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_CANCELLING
#define GW_CANCELLED LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_CANCELLED
#define GW_NEEDS_ATTENTION LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_NEEDS_ATTENTION

#define GW_FORWARD LOYALTY__V1__GATEWAY_STEP_DIRECTION__GATEWAY_STEP_DIRECTION_FORWARD
#define GW_COMPENSATE LOYALTY__V1__GATEWAY_STEP_DIRECTION__GATEWAY_STEP_DIRECTION_COMPENSATE
#define GW_READ LOYALTY__V1__GATEWAY_STEP_DIRECTION__GATEWAY_STEP_DIRECTION_READ

#define GW_STARTED LOYALTY__V1__GATEWAY_STEP_STATE__GATEWAY_STEP_STATE_STARTED
#define GW_DONE LOYALTY__V1__GATEWAY_STEP_STATE__GATEWAY_STEP_STATE_DONE
#define GW_FAILED LOYALTY__V1__GATEWAY_STEP_STATE__GATEWAY_STEP_STATE_FAILED

#define GW_STEPS_MAX 64 /* steps of one saga (a checkout has at most ~30) */
#define GW_GROUP_MAX 16 /* calls of one parallel group (rpc_call_many's batch) */
#define GW_STEP_NAME_MAX 96
_Static_assert(GW_GROUP_MAX <= GW_STEPS_MAX, "a group's steps fit in one saga");
_Static_assert(sizeof(((gw_failpoint_t *)0)->step) == GW_STEP_NAME_MAX,
               "a failpoint names any step");

/** Configuration and clients shared by every call (the runtime's service_state). */
typedef struct gw_svc {
    const config_t *cfg;
    rpc_channel_t *member, *points, *wallet, *referral, *promo;
    int64_t checkout_ttl_s;      /* CHECKOUT_TTL_S: RESERVED checkouts expire after it */
    int64_t hold_ttl_s;          /* PARTICIPANT_HOLD_TTL_S: TTL of participants' holds */
    int64_t lease_s;             /* GATEWAY_LEASE_S: an executor's lease on a saga */
    int64_t recovery_interval_s; /* GATEWAY_RECOVERY_INTERVAL_S */
    int64_t begin_grace_s;       /* GATEWAY_BEGIN_GRACE_S: a Begin left for a client retry */
    gw_failpoint_t failpoint;    /* GATEWAY_FAILPOINT (tests only) */
    /* SAGA_STEPS_COMMIT_ASYNC: participants' steps commit without waiting for the disk, made
     * durable by the saga's next write (docs/architecture.md "Durability of saga steps"). */
    bool steps_commit_async;
    char instance[24]; /* this process, in lease owners */
    atomic_uint_fast64_t lease_seq;
    int64_t next_recovery_at; /* job thread only */
} gw_svc_t;

/** One step as logged (and as changed in memory until the next flush). */
typedef struct gw_step {
    char name[GW_STEP_NAME_MAX];
    int32_t seq;
    int direction;
    int state;
    int32_t attempts;
    unsigned char *response; /* packed, arena memory; DONE only */
    size_t response_len;
    status_t error; /* FAILED, or the last failed attempt */
    int64_t started_at, finished_at;
} gw_step_t;

/** The executor of one saga during one request or one recovery pass. */
typedef struct gw_saga {
    rpc_ctx_t *ctx;
    arena_t *a;
    gw_svc_t *svc;
    char merchant_id[MERCHANT_ID_MAX + 1];
    char id[ID_MAX];
    int kind;
    int state;
    char *idempotency_key;
    char *order_id;  /* "" when none */
    char *member_id; /* "" when none */
    /* The request, as stored: GatewayCheckoutRequest for checkouts (Begin is stored as one),
     * the RPC's own request for the other kinds, GatewayRefundOrderRequest for refunds. */
    ProtobufCMessage *request;
    unsigned char *request_bytes;
    size_t request_len;
    unsigned char *hash_input; /* method name, NUL, packed request: sha256'd for idempotency */
    size_t hash_len;
    Loyalty__V1__GatewaySagaContext *context;
    gw_step_t steps[GW_STEPS_MAX];
    int n_steps;
    char reason[STATUS_REASON_MAX];
    status_t error; /* what a CANCELLED / NEEDS_ATTENTION saga answers */
    int32_t attempts;
    int64_t created_at, updated_at, next_attempt_at;
    char lease_token[64];
    bool persisted; /* the sagas row exists */
    bool leased;    /* we hold the lease (or claim it with our first write) */
    /* Opened by gw_saga_open_claimed with the lease free: the saga's first write takes the lease,
     * on condition that the row is still the version read (xmin claim_xmin) and the lease still
     * free; nothing is called before that write. */
    bool claim_pending;
    char claim_xmin[16];
    bool in_request;      /* driven for a client (else by the recovery job) */
    bool created_here;    /* created by this request: every step it started is in `steps` */
    bool resolve;         /* resolve mode: re-call STARTED steps, start no new ones */
    bool auto_complete;   /* Checkout(): Begin goes straight on to Complete */
    int64_t next_delay_s; /* when the lease is given back unfinished: next attempt after */
    bool failed_step;     /* a step ended FAILED (a refusal, or retries exhausted) */
    /* Steps ran that commit without waiting for the disk, and no durable write of ours has
     * followed them yet: gw_drive waits for their WAL before it returns. */
    bool durable_pending;
} gw_saga_t;

/** A participant call to run as a logged step. */
typedef struct gw_call {
    char name[GW_STEP_NAME_MAX];
    const struct gw_step_def *def; /* its declaration (gateway_calls.h) */
    int direction;                 /* GW_FORWARD or GW_COMPENSATE (reads use gw_read) */
    rpc_channel_t *ch;
    const ProtobufCServiceDescriptor *service;
    const char *method;
    ProtobufCMessage *request; /* its idempotency_key is set by gw_call_init's caller */
    /* Refusals the flow handles itself (logged FAILED, not turned into NEEDS_ATTENTION). */
    bool tolerate_refusal;
    /* A forward step that recovery finishes by calling it again with the same key, whatever
     * happened before (the saga is already durable in a state that only goes forward): no
     * STARTED record is written before it; its outcome goes with the saga's next write. */
    bool rerun_safe;
    /* A forward step whose effect the flow's compensation can find without its answer (by a
     * reference of the saga's): not written ahead either; a saga interrupted before its next
     * write is compensated by reference (see checkout_compensate). */
    bool undone_by_reference;
    /* What the builder wants to know of the call when it reads the answer (a product call's
     * cart line + 1); 0 when nothing. */
    int32_t tag;
    ProtobufCMessage *response; /* out */
    status_t status;            /* out */
} gw_call_t;

/** Calls that run together (gw_group_run). Each builder takes its call from gw_group_add and
 *  keeps the pointer to read the answer through: a flow never finds a call again by its name
 *  or by its position in the group. A group holds GW_GROUP_MAX calls unless `max` says more
 *  (up to GW_GROUP_CALLS_MAX; they then run GW_GROUP_MAX at a time). */
#define GW_GROUP_CALLS_MAX 48
_Static_assert(GW_GROUP_CALLS_MAX >= GW_GROUP_MAX, "a group holds at least one batch of calls");
typedef struct gw_group {
    gw_call_t calls[GW_GROUP_CALLS_MAX];
    int n;
    int max; /* 0: GW_GROUP_MAX */
} gw_group_t;

/* ---- setting up an executor ---- */

/** A fresh executor for a new saga (not yet persisted, holding its lease once inserted); the id
 *  is generated. The request is packed and hashed with `method` (so that one key used for two
 *  RPCs with the same fields is still a different request). */
void gw_saga_init(gw_saga_t *x, rpc_ctx_t *ctx, gw_svc_t *svc, const char *merchant_id, int kind,
                  const char *idempotency_key, const char *order_id, const char *member_id,
                  const char *method, ProtobufCMessage *request);

/** sha256 input of a request for the idempotency comparison (arena memory). */
unsigned char *gw_hash_input(arena_t *a, const char *method, const ProtobufCMessage *request,
                             size_t *len);

/** Loads a saga (row and steps) by id without taking its lease. NOT_FOUND SAGA_NOT_FOUND. */
status_t gw_saga_open(gw_saga_t *x, rpc_ctx_t *ctx, gw_svc_t *svc, const char *merchant_id,
                      const char *id);

/** gw_saga_open for a request that may drive the saga: x->leased tells whether the lease was
 *  free. The lease is taken by the saga's first write (x->claim_pending), which fails ABORTED
 *  SAGA_IN_PROGRESS when anyone wrote the saga since it was read: a request that only reads the
 *  saga and answers writes nothing at all. */
status_t gw_saga_open_claimed(gw_saga_t *x, rpc_ctx_t *ctx, gw_svc_t *svc, const char *merchant_id,
                              const char *id);

/** Takes the lease of an opened saga and reloads it under the lease: ABORTED SAGA_IN_PROGRESS
 *  when another live executor holds it. */
status_t gw_saga_claim(gw_saga_t *x);

/** The request decoded as its kind's message (NULL when it is unreadable). */
ProtobufCMessage *gw_saga_request(gw_saga_t *x);

/** The idempotency key of a step: "<saga_id>:<name>", arena memory. */
char *gw_step_key(gw_saga_t *x, const char *name);

/* ---- steps ---- */

/** Prepares a call; the name is printf-formatted. */
void gw_call_init(gw_call_t *c, rpc_channel_t *ch, const ProtobufCServiceDescriptor *service,
                  const char *method, ProtobufCMessage *request, const char *name_fmt, ...)
    __attribute__((format(printf, 6, 7)));

/** Runs calls as steps, in parallel (see the file comment): DONE ones answer from the log; the
 *  others are written STARTED (one commit), called, and written DONE / FAILED with the next
 *  flush. Transient errors are retried within the call (GW_TRANSIENT_ATTEMPTS_IN_REQUEST). The
 *  result is OK when every call succeeded, else the most serious failure (a refusal before a
 *  limited error before a transient one); each call's own outcome is in its status. ABORTED
 *  SAGA_IN_PROGRESS when the lease was lost (the flow must stop). */
status_t gw_steps(gw_saga_t *x, gw_call_t *calls, int n);

/** The group's next call, to be set up with gw_call_init; NULL when the group is full. */
gw_call_t *gw_group_add(gw_group_t *g);

/** How many calls may still be added. */
int gw_group_room(const gw_group_t *g);

/** Runs the group's calls as steps (gw_steps), GW_GROUP_MAX at a time; stops at the first
 *  batch that does not succeed. */
status_t gw_group_run(gw_saga_t *x, gw_group_t *g);

/** Runs the group's calls as reads in parallel (gw_reads); at most GW_GROUP_MAX of them. */
status_t gw_group_read(gw_saga_t *x, gw_group_t *g);

/** The response of a call that ran: NULL when c is NULL or its status is not OK. */
const ProtobufCMessage *gw_answer(const gw_call_t *c);

/** One step (gw_steps of one call). */
status_t gw_step(gw_saga_t *x, gw_call_t *call);

/** A read whose answer the flow depends on: logged READ with the next flush, answered from the
 *  log when the saga resumes. */
status_t gw_read(gw_saga_t *x, gw_call_t *call);

/** gw_read of a value the participant keeps in its cache under `cache_key` and invalidates on
 *  the channel this gateway follows (lib/near_cache.h): answered from this process's near copy
 *  when it has one (no call), else called and kept there. Logged the same way. */
status_t gw_read_near(gw_saga_t *x, gw_call_t *call, const char *cache_key);

/** Reads in parallel (gw_read of each). */
status_t gw_reads(gw_saga_t *x, gw_call_t *calls, int n);

/** The logged step of that name, or NULL. */
gw_step_t *gw_find_step(gw_saga_t *x, const char *name);

/** The DONE response of a step decoded as `desc`, or NULL. */
ProtobufCMessage *gw_step_response(gw_saga_t *x, const char *name,
                                   const ProtobufCMessageDescriptor *desc);

/* ---- writing the log ---- */

/** Writes the steps, the state, the context and the outcome, renewing the lease; inserts
 *  the saga when it is new (then ALREADY_EXISTS with reason SAGA_EXISTS when its idempotency
 *  key is taken, and ORDER_ALREADY_CHECKED_OUT when the order has a live checkout). */
status_t gw_flush(gw_saga_t *x);

/** Writes everything and gives the lease back; the saga is due again next_delay_s later.
 *  COMPLETED runs the kind's on_final in the same transaction. */
status_t gw_release(gw_saga_t *x);

/** Gives the lease back when nothing was changed under it (an answer read, a refusal before any
 *  step): unlike gw_release, when the saga is next due stays as it was, so a RESERVED checkout
 *  is not made due -- and expired -- at once. */
status_t gw_saga_unclaim(gw_saga_t *x);

/** Moves the saga to `state`; asserts that its life allows it (no way out of COMPLETED or
 *  CANCELLED, no COMPLETING without a Begin, ...). */
void gw_saga_set_state(gw_saga_t *x, int state);

/** Sets the saga's outcome as a failure (state, reason, error) in memory. */
void gw_set_failure(gw_saga_t *x, int state, const status_t *error);

/* ---- driving ---- */

/** The flows of one kind. begin: the refusable part (BEGINNING), may be NULL; complete: the
 *  part driven forward (COMPLETING), may be NULL; compensate: undoes begin's steps
 *  (CANCELLING), may be NULL. */
typedef struct gw_flows {
    status_t (*begin)(gw_saga_t *x);
    status_t (*complete)(gw_saga_t *x);
    status_t (*compensate)(gw_saga_t *x);
    /* State after a successful begin when not auto-completing: RESERVED (checkouts) or
     * COMPLETING. */
    int after_begin;
    /* What the recovery job does with a BEGINNING saga: drive it forward (true) or compensate
     * it (INTERRUPTED). */
    bool recover_forward;
    /* The message the request is stored as. */
    const ProtobufCMessageDescriptor *request_desc;
    /* Extra work in the transaction that writes COMPLETED (orders row, events); may be NULL. */
    status_t (*on_final)(gw_saga_t *x, db_t *db);
    /* The steps whose responses the log keeps once the saga is COMPLETED or CANCELLED (what its
     * views still read), NULL-terminated; the others' are dropped by that write, since no flow
     * runs again. NULL: every step's is kept. */
    const struct gw_step_def *const *final_responses;
} gw_flows_t;

const gw_flows_t *gw_flows_of(int kind);

/** Drives a leased saga as far as it goes now, then gives the lease back. Returns the status of
 *  the driving itself (lease lost, database down); the saga's outcome is in x->state,
 *  x->error. */
status_t gw_drive(gw_saga_t *x);

/** The error a saga in a failed state answers with (its recorded error). */
status_t gw_saga_error(const gw_saga_t *x);

/** The steps as GatewayStep messages (arena). */
Loyalty__V1__GatewayStep **gw_steps_view(gw_saga_t *x, size_t *n);

/** Recovery: claims and drives due sagas, at most `limit`; *driven gets the count. */
status_t gw_recover_some(rpc_ctx_t *ctx, gw_svc_t *svc, int limit, int *driven);

/** Sets the saga gauges (loyalty_sagas_in_progress, loyalty_sagas_needs_attention,
 *  loyalty_sagas_oldest_in_progress_age_seconds) from the saga table; nothing when metrics are
 *  off. The recovery job calls it after every pass. */
void gw_report_sagas(rpc_ctx_t *ctx);

/* ---- flows (gateway_rpc_checkout.c, gateway_rpc_refund.c, gateway_rpc_member.c) ---- */
extern const gw_flows_t gw_checkout_flows, gw_refund_flows, gw_registration_flows, gw_top_up_flows,
    gw_redeem_flows, gw_check_in_flows, gw_referral_release_flows;

#endif
