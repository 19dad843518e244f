/* gateway_store.h -- SQL of the saga log (sagas with their steps; saga_steps of older sagas), the
 * orders refunds are counted against, the per-merchant settings, and the merchant settings
 * record with its pushes (gateway_store_merchant.c). */
#ifndef GATEWAY_STORE_H
#define GATEWAY_STORE_H

#include "gateway_saga.h"

/* The two writes below commit without waiting for the disk unless wait_for_disk (a write made
 * durable by a later one of the same cluster: docs/architecture.md "Durability of saga steps");
 * inside an enclosing transaction, its commit. */

/** Inserts a new saga with its steps, holding the lease when x->leased. ALREADY_EXISTS
 *  SAGA_EXISTS when the idempotency key is taken; ALREADY_EXISTS ORDER_ALREADY_CHECKED_OUT when
 *  a live checkout has the order. */
status_t gw_store_insert(db_t *db, gw_saga_t *x, const unsigned char *hash_input, size_t hash_len,
                         bool wait_for_disk);

/** Updates the saga and writes its steps (the whole array), only while x holds the lease; keeps the
 * lease when keep_lease (renewed for svc->lease_s), else gives it back. ABORTED SAGA_IN_PROGRESS
 *  when the lease was lost. */
status_t gw_store_update(db_t *db, gw_saga_t *x, bool keep_lease, bool wait_for_disk);
/** Inside db_tx: the saga's update that gives the lease back, sent with the transaction's COMMIT
 *  (after the transaction's other writes, in the same round trip), waiting for the disk; without
 *  the lease it refuses, and nothing of the transaction commits. `*out` must live until db_tx
 *  returns; then gw_store_update_committed(x, what db_tx returned, *out) finishes it. */
status_t gw_store_update_at_commit(db_t *db, gw_saga_t *x, PGresult **out);
/** After db_tx: the saga as written (ABORTED SAGA_IN_PROGRESS when the lease was lost). Does not
 *  clear `r`. */
status_t gw_store_update_committed(gw_saga_t *x, status_t st, PGresult *r);

/** Finds the saga id for an idempotency key; *same_request tells whether the stored request
 *  hash equals sha256(hash_input). NOT_FOUND SAGA_NOT_FOUND. */
status_t gw_store_find_by_key(db_t *db, arena_t *a, const char *merchant_id, const char *key,
                              const unsigned char *hash_input, size_t hash_len, char **id,
                              bool *same_request);

/** Gives back a lease taken by gw_store_claim_load and nothing else: when the saga is due stays as
 *  it was (a RESERVED checkout keeps its expiry). */
status_t gw_store_unclaim(db_t *db, const char *merchant_id, const char *id, const char *token);

/** Reads the row and the steps into x (merchant_id and id set). */
status_t gw_store_load(db_t *db, gw_saga_t *x);

/** Reads the saga into x as gw_store_load does, with the row version (x->claim_xmin) its first
 *  write will be conditioned on, and whether its lease is free now (*lease_free). One round trip,
 *  no write. */
status_t gw_store_load_claimable(db_t *db, gw_saga_t *x, bool *lease_free);

/** Takes the lease (token, lease_s) when it is free, expired or ours, and reads the saga into x
 *  as gw_store_load does (two round trips); *claimed says whether the lease was taken;
 *  NOT_FOUND when there is no such saga. */
status_t gw_store_claim_load(db_t *db, gw_saga_t *x, const char *token, int64_t lease_s,
                             bool *claimed);

/** Claims one due unfinished saga for the recovery job (FOR UPDATE SKIP LOCKED, lease expired,
 *  next attempt due), counting an attempt; *found false when there is none. */
status_t gw_store_claim_due(db_t *db, arena_t *a, const char *token, int64_t lease_s,
                            char **merchant_id, char **id, bool *found);

/** The unfinished and NEEDS_ATTENTION sagas of every merchant by kind and state: rows of
 *  (kind, state, count, age in seconds of the oldest) in *out, which the caller PQclears. */
status_t gw_store_saga_census(db_t *db, PGresult **out);

/** A page of sagas, newest first (no steps): of one merchant, or of every merchant when
 *  merchant_id is ""; state, kind 0 = any; older_than_s > 0 keeps those not updated for that
 *  long. */
status_t gw_store_list(db_t *db, arena_t *a, const char *merchant_id, int state, int kind,
                       int64_t older_than_s, const char *after_id, int32_t limit,
                       Loyalty__V1__GatewaySaga ***out, size_t *n);

/** The member's checkouts and refunds, newest first, at most `limit`, without steps. */
status_t gw_store_list_member_orders(db_t *db, arena_t *a, const char *merchant_id,
                                     const char *member_id, int32_t limit,
                                     Loyalty__V1__GatewaySaga ***out, size_t *n);

/** The id of the order's checkout that is not cancelled, else its latest one. */
status_t gw_store_checkout_of_order(db_t *db, arena_t *a, const char *merchant_id,
                                    const char *order_id, char **checkout_id);

/** RetrySaga: puts a NEEDS_ATTENTION saga back to `state` (COMPLETING or CANCELLING), due now,
 *  its steps FAILED with the saga's error back to STARTED (so they are called again with the
 *  same key; *steps_retried says how many). FAILED_PRECONDITION SAGA_NOT_RETRYABLE when the
 *  saga does not need attention. */
status_t gw_store_retry(db_t *db, const char *merchant_id, const char *id, int state, int direction,
                        int64_t *steps_retried);

/* ---- orders (refunds) ---- */

typedef struct gw_order_line_row {
    char *line_id;
    int kind;
    int64_t quantity, final_amount_cents, refunded_quantity, refunded_cents;
} gw_order_line_row_t;

typedef struct gw_order_row {
    char *order_id, *checkout_id, *member_id;
    gw_order_figures_t f;
    gw_order_line_row_t *lines;
    size_t n_lines;
} gw_order_row_t;

/** Writes a completed checkout's order with its lines in its row (idempotent: an existing row is
 *  kept), with
 *  the transaction's COMMIT (db_exec_deferred). */
status_t gw_store_insert_order(db_t *db, const char *merchant_id, const gw_order_row_t *o);

/** Reads an order and its lines (its row's array, or the order_lines rows of an order written
 *  before it had one), locking the order row when for_update. NOT_FOUND
 *  ORDER_NOT_FOUND. */
status_t gw_store_get_order(db_t *db, arena_t *a, const char *merchant_id, const char *order_id,
                            bool for_update, gw_order_row_t *out);

/** Adds a refund to the order's totals (and the lines' refunded quantities and cents). */
status_t gw_store_add_refund(db_t *db, const char *merchant_id, const char *order_id,
                             int64_t amount_cents, const gw_refund_split_t *s,
                             const gw_order_line_row_t *lines, size_t n_lines);

/* ---- settings ---- */

status_t gw_store_get_settings(db_t *db, arena_t *a, const char *merchant_id,
                               Loyalty__V1__GatewaySettings **out);
status_t gw_store_put_settings(db_t *db, arena_t *a, const char *merchant_id,
                               const Loyalty__V1__GatewaySettings *in,
                               Loyalty__V1__GatewaySettings **out);

/* ---- held referral rewards ---- */

/** Remembers that the merchant has held rewards due at due_at (the earliest wins). */
status_t gw_store_referral_due(db_t *db, const char *merchant_id, int64_t due_at);
/** Takes one merchant whose held rewards are due (deleting its row, SKIP LOCKED); *found
 *  false when none. Must run inside a transaction with the saga insert that handles it. */
status_t gw_store_take_referral_due(db_t *db, arena_t *a, char **merchant_id, bool *found);

/** Drops the step logs (steps array, saga_steps rows) of up to `batch` sagas finished
 *  (COMPLETED or CANCELLED) more than `days` ago, oldest first; *dropped: how many. */
status_t gw_store_drop_old_steps(db_t *db, int64_t days, int64_t batch, int64_t *dropped);

/* ---- the merchant settings record (gateway_store_merchant.c) ---- */

/** The record, or the defaults (time zone UTC, version 0) when the merchant never set it. */
status_t gw_store_merchant_read(db_t *db, arena_t *a, const char *merchant_id,
                                Loyalty__V1__GatewayMerchantSettings **out);

/** Writes the record as version + 1; when `push` (its time zone is new to the services) or on
 *  the first version, every one of `services` gets a push targeting this version. */
status_t gw_store_merchant_write(db_t *db, arena_t *a, const char *merchant_id,
                                 const Loyalty__V1__GatewayMerchantSettings *s, bool push,
                                 const char *const *services, size_t n_services,
                                 Loyalty__V1__GatewayMerchantSettings **out);

/** The merchant's time zone from its record, or `fallback` when it never set one (arena
 *  memory, or fallback itself). */
status_t gw_store_merchant_time_zone(db_t *db, arena_t *a, const char *merchant_id,
                                     const char *fallback, const char **out);

/** The merchant's push rows, one per service name, in no order. */
status_t gw_store_merchant_pushes(db_t *db, arena_t *a, const char *merchant_id,
                                  Loyalty__V1__GatewayMerchantSettingsPush ***out, size_t *n);

/** A push taken by the job, under its lease. */
typedef struct gw_merchant_push {
    char *merchant_id;
    char *service;
    int64_t version; /* the record's, to push */
    int64_t resync;
    int32_t attempts;
    char *time_zone;
} gw_merchant_push_t;

/** Takes up to `limit` due pushes under a lease of lease_s into out[0..*n). */
status_t gw_store_merchant_pushes_claim(db_t *db, arena_t *a, int limit, int64_t lease_s,
                                        gw_merchant_push_t *out, int *n);
/** A push applied: the row parks until a newer version or a resync makes it due. */
status_t gw_store_merchant_push_done(db_t *db, const gw_merchant_push_t *x);
/** A push refused or not answered: due again after backoff_s (at once for a newer version). */
status_t gw_store_merchant_push_failed(db_t *db, const gw_merchant_push_t *x, const char *error,
                                       int64_t backoff_s);
/** Asks for a push under a new key to a service whose copy differs from the record, when its
 *  push is otherwise in sync and idle (a push in flight or due will settle it anyway). */
status_t gw_store_merchant_push_resync(db_t *db, const char *merchant_id, const char *service,
                                       int64_t version);

/** A record the verify pass reads the copies of. */
typedef struct gw_merchant_record {
    char *merchant_id;
    char *time_zone;
    int64_t version;
} gw_merchant_record_t;

/** Takes up to `limit` records not verified for every_s seconds, marking them verified now. */
status_t gw_store_merchant_verify_claim(db_t *db, arena_t *a, int64_t every_s, int limit,
                                        gw_merchant_record_t **out, size_t *n);

#endif
