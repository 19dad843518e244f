/* promo_store.h -- promo-svc's SQL: promotions and codes (promo_store.c), coupon templates and
 * coupons (promo_store_coupons.c), settings, limit counters and reservations
 * (promo_store_checkout.c). Every query filters by merchant; results live in the caller's
 * arena. Functions that change rows run inside the caller's transaction. */
#ifndef PROMO_STORE_H
#define PROMO_STORE_H

#include "arena.h"
#include "db.h"
#include "loyalty/v1/promo.pb-c.h"
#include "promo_rules.h"
#include "status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- promotions ---- */

/** Inserts a normalised promotion (id, status and timestamps set) and its shared code, under a
 *  per-merchant lock that keeps at most PROMO_ACTIVE_MAX active promotions
 *  (RESOURCE_EXHAUSTED TOO_MANY_PROMOTIONS). A shared code in use is ALREADY_EXISTS CODE_TAKEN. */
status_t promo_store_promotion_insert(db_t *db, const char *merchant_id,
                                      const Loyalty__V1__Promotion *p);

/** One promotion; NOT_FOUND PROMOTION_NOT_FOUND. `for_update` locks its row. */
status_t promo_store_promotion_get(db_t *db, arena_t *a, const char *merchant_id, const char *id,
                                   bool for_update, Loyalty__V1__Promotion **out);

/** Replaces the definition (version + 1, updated_at) and moves the shared code from `old_code`
 *  ("" for none) to p->code. */
status_t promo_store_promotion_update(db_t *db, const char *merchant_id,
                                      const Loyalty__V1__Promotion *p, const char *old_code);

/** Sets the status (and updated_at, version + 1); resuming is bound by PROMO_ACTIVE_MAX. */
status_t promo_store_promotion_set_status(db_t *db, const char *merchant_id, const char *id,
                                          Loyalty__V1__PromoStatus status, int64_t now);

/** Newest first, after `after_id` ("" = from the start); status and trigger 0 = any. Returns
 *  up to `limit` rows; *more says whether another page exists. */
status_t promo_store_promotions_list(db_t *db, arena_t *a, const char *merchant_id,
                                     Loyalty__V1__PromoStatus status,
                                     Loyalty__V1__PromoTrigger trigger, const char *after_id,
                                     int limit, Loyalty__V1__Promotion ***out, size_t *n,
                                     bool *more);

/** The statement of promo_store_promotions_active, for a caller that sends it with others
 *  (db_exec_all: `p` must live until then), and the reading of its result. */
void promo_store_active_query(db_exec_item_t *item, db_params_t *p, const char *merchant_id,
                              int64_t now);
status_t promo_store_active_parse(arena_t *a, const PGresult *r, Loyalty__V1__Promotion ***out,
                                  size_t *n);
/** Every ACTIVE promotion not ended at `now`, by priority. */
status_t promo_store_promotions_active(db_t *db, arena_t *a, const char *merchant_id, int64_t now,
                                       Loyalty__V1__Promotion ***out, size_t *n);

/* ---- codes ---- */

typedef struct promo_code_row {
    char *code, *promotion_id, *batch_id, *checkout_id;
    Loyalty__V1__PromoCodeKind kind;
    Loyalty__V1__PromoCodeStatus status;
    bool held_live; /* RESERVED by a reservation that is still live at `now` */
    int64_t created_at;
} promo_code_row_t;

/** A code by its normalised text; *found false when unknown. `for_update` locks the row. */
status_t promo_store_code_get(db_t *db, arena_t *a, const char *merchant_id, const char *code,
                              int64_t now, bool for_update, promo_code_row_t *out, bool *found);

/** Generates `count` unique codes ("<prefix><12 random>") for a promotion in batch
 *  `batch_id`; RESOURCE_EXHAUSTED TOO_MANY_CODES past PROMO_UNIQUE_CODES_MAX per promotion. */
status_t promo_store_codes_generate(db_t *db, arena_t *a, const char *merchant_id,
                                    const char *promotion_id, const char *batch_id,
                                    const char *prefix, int count, int64_t now);

/** Codes of a promotion in code order after `after_code`; batch_id "" and status 0 = any. */
status_t promo_store_codes_list(db_t *db, arena_t *a, const char *merchant_id,
                                const char *promotion_id, const char *batch_id,
                                Loyalty__V1__PromoCodeStatus status, const char *after_code,
                                int limit, int64_t now, Loyalty__V1__PromoCode ***out, size_t *n,
                                bool *more);

/** Moves every unique code held by `checkout_id` to `status`; AVAILABLE also clears the
 *  checkout. */
status_t promo_store_codes_set_by_checkout(db_t *db, const char *merchant_id,
                                           const char *checkout_id,
                                           Loyalty__V1__PromoCodeStatus status);

/* ---- settings and calendar ---- */

/** The statement of promo_store_settings_get, for db_exec_all, and the reading of its result. */
void promo_store_settings_query(db_exec_item_t *item, db_params_t *p, const char *merchant_id,
                                int64_t at);
void promo_store_settings_parse(arena_t *a, const PGresult *r,
                                Loyalty__V1__PromoSettings **settings, promo_periods_t *periods);
/** The merchant's settings (defaults when none are stored) and the limit periods of `at` in
 *  its time zone. */
status_t promo_store_settings_get(db_t *db, arena_t *a, const char *merchant_id, int64_t at,
                                  Loyalty__V1__PromoSettings **settings, promo_periods_t *periods);

/** Replaces the settings; FAILED_PRECONDITION INVALID_TIME_ZONE for an unknown IANA zone. */
status_t promo_store_settings_put(db_t *db, const char *merchant_id,
                                  const Loyalty__V1__PromoSettings *s, int64_t now);

/* ---- limit counters ---- */

/* promo_counter_t: promo_rules.h */

/** Fills uses/discount_cents of counters[0..n) (0 for rows that do not exist yet). With `lock`,
 *  creates the missing rows and locks all of them in key order (the caller sorts and dedupes
 *  the keys first), so that the values stay true until the transaction ends. */
status_t promo_store_counters_read(db_t *db, arena_t *a, const char *merchant_id,
                                   promo_counter_t *counters, size_t n, bool lock);

/** Locks, in key order and in one statement, the counters[0..n) (keys only; created when
 *  missing) together with the counters recorded against the reservations of `checkout_ids` or
 *  `order_ids` (existing rows): what promo_store_counters_read with `lock` and
 *  promo_store_give_back lock, for the calls of a merged batch at once, so that no call of it
 *  takes a counter after another call took a later one. Nothing is sent when all are empty. */
status_t promo_store_counters_lock(db_t *db, arena_t *a, const char *merchant_id,
                                   const promo_counter_t *counters, size_t n,
                                   char *const *checkout_ids, size_t n_checkouts,
                                   char *const *order_ids, size_t n_orders);

/* ---- coupon templates and coupons (promo_store_coupons.c) ---- */

status_t promo_store_template_insert(db_t *db, const char *merchant_id,
                                     const Loyalty__V1__PromoCouponTemplate *t);

/** NOT_FOUND TEMPLATE_NOT_FOUND. */
status_t promo_store_template_get(db_t *db, arena_t *a, const char *merchant_id, const char *id,
                                  Loyalty__V1__PromoCouponTemplate **out);

status_t promo_store_templates_list(db_t *db, arena_t *a, const char *merchant_id,
                                    const char *after_id, int limit,
                                    Loyalty__V1__PromoCouponTemplate ***out, size_t *n, bool *more);

status_t promo_store_template_set_active(db_t *db, arena_t *a, const char *merchant_id,
                                         const char *id, bool active,
                                         Loyalty__V1__PromoCouponTemplate **out);

/** Takes one from the template's stock (FAILED_PRECONDITION TEMPLATE_OUT_OF_STOCK) and one of
 *  the member's allowance (COUPON_LIMIT_REACHED), atomically. */
status_t promo_store_template_take(db_t *db, const char *merchant_id,
                                   const Loyalty__V1__PromoCouponTemplate *t,
                                   const char *member_id);

/** Inserts a coupon under a code drawn here (c->code, arena memory), drawing again on the rare
 *  collision; ABORTED CODE_COLLISION (safe to retry) after PROMO_COUPON_CODE_ATTEMPTS. */
status_t promo_store_coupon_insert(db_t *db, arena_t *a, const char *merchant_id,
                                   Loyalty__V1__PromoCoupon *c);

/** NOT_FOUND COUPON_NOT_FOUND. The status is as stored (see promo_rules_coupon_status). */
status_t promo_store_coupon_get(db_t *db, arena_t *a, const char *merchant_id, const char *id,
                                int64_t now, Loyalty__V1__PromoCoupon **out);

/** A member's coupons newest first; status 0 = any (EXPIRED/AVAILABLE judged at `now`). */
status_t promo_store_coupons_list(db_t *db, arena_t *a, const char *merchant_id,
                                  const char *member_id, Loyalty__V1__PromoCouponStatus status,
                                  int64_t now, const char *after_id, int limit,
                                  Loyalty__V1__PromoCoupon ***out, size_t *n, bool *more);

/** The coupons of ids[0..n) and of codes[0..n_codes) (normalised, upper case), in id order,
 *  unknown ones absent, each with whether a live reservation holds it at `now`; `lock` locks
 *  them. */
status_t promo_store_coupons_for_cart(db_t *db, arena_t *a, const char *merchant_id,
                                      char *const *ids, size_t n, char *const *codes,
                                      size_t n_codes, int64_t now, bool lock,
                                      Loyalty__V1__PromoCoupon ***out, bool **held_live,
                                      size_t *n_out);

/** Moves every coupon held by the checkout to `status` (USED sets used_at; AVAILABLE clears
 *  the checkout). */
status_t promo_store_coupons_set_by_checkout(db_t *db, const char *merchant_id,
                                             const char *checkout_id,
                                             Loyalty__V1__PromoCouponStatus status, int64_t now);

/* ---- reservations (promo_store_checkout.c) ---- */

/** Records a new RESERVED reservation and takes what it holds, in one statement: the coupons
 *  and unique codes given become RESERVED by the checkout, and deltas[0..n_deltas) (uses,
 *  discount_cents) are added to their counters, which the caller has locked
 *  (promo_store_counters_read with lock), and recorded against the checkout so that a release
 *  takes back exactly the same. ALREADY_EXISTS RESERVATION_EXISTS when the checkout has a
 *  reservation. */
status_t promo_store_reserve(db_t *db, arena_t *a, const char *merchant_id,
                             const Loyalty__V1__PromoReservation *r, char *const *coupons,
                             size_t n_coupons, char *const *codes, size_t n_codes,
                             const promo_counter_t *deltas, size_t n_deltas);

/** Gives back what a checkout holds: with `coupons` its coupons become AVAILABLE; with `usage`
 *  its unique codes become AVAILABLE and what it added to the counters is subtracted (the
 *  counter rows are locked in key order first). */
status_t promo_store_give_back(db_t *db, const char *merchant_id, const char *checkout_id,
                               bool usage, bool coupons);

/** Records a RELEASED reservation for a checkout that never reserved (a late Reserve for it is
 *  then refused); *inserted false when a row appeared meanwhile. */
status_t promo_store_reservation_tombstone(db_t *db, const char *merchant_id,
                                           const char *checkout_id, int64_t now, bool *inserted);

/** One reservation by checkout or by order id; *found false when there is none. */
status_t promo_store_reservation_get(db_t *db, arena_t *a, const char *merchant_id,
                                     const char *checkout_id, const char *order_id, bool for_update,
                                     Loyalty__V1__PromoReservation **out, bool *found);

/** Sets status, order id (when not NULL), the restore flags and updated_at; deferred
 *  (db_exec_deferred). ALREADY_EXISTS ORDER_ID_TAKEN, from the transaction's next statement or
 *  its COMMIT, when another reservation has the order id. */
status_t promo_store_reservation_update(db_t *db, const char *merchant_id,
                                        const Loyalty__V1__PromoReservation *r);

/** Locks the reservation if it is still RESERVED past its TTL at `now` and no other
 *  transaction holds it (SKIP LOCKED); *found false otherwise. */
status_t promo_store_reservation_claim_expired(db_t *db, arena_t *a, const char *merchant_id,
                                               const char *checkout_id, int64_t now,
                                               Loyalty__V1__PromoReservation **out, bool *found);

typedef struct promo_reservation_ref {
    char *merchant_id, *checkout_id;
} promo_reservation_ref_t;

/** Reservations still RESERVED whose TTL ended by `now`, oldest first (merchant_id NULL = all
 *  merchants), without locking them. */
status_t promo_store_reservations_expired(db_t *db, arena_t *a, const char *merchant_id,
                                          int64_t now, int limit, promo_reservation_ref_t **out,
                                          size_t *n);

/** What a pricing reads before anything it locks: the merchant's settings with the periods of
 *  the pricing's time, and its active promotions. */
typedef struct promo_preload {
    Loyalty__V1__PromoSettings *settings;
    promo_periods_t periods;
    Loyalty__V1__Promotion **active;
    size_t n_active;
} promo_preload_t;

/** Reserve's reads in one round trip, none of them locking: the checkout's reservation if any,
 *  the merchant's reservations whose TTL ended (at most expired_max, as
 *  promo_store_reservations_expired), and the pricing's settings and promotions at `now`. */
typedef struct promo_reserve_reads {
    Loyalty__V1__PromoReservation *existing;
    bool existing_found;
    promo_reservation_ref_t *expired;
    size_t n_expired;
    promo_preload_t preload;
} promo_reserve_reads_t;
status_t promo_store_reserve_reads(db_t *db, arena_t *a, const char *merchant_id,
                                   const char *checkout_id, int64_t now, int expired_max,
                                   promo_reserve_reads_t *out);

/** What a merged batch of Reserve calls reads, in one round trip and without locks, to know the
 *  counters its calls may lock: the pricing's settings and promotions at `now`, the merchant's
 *  reservations whose TTL ended (as promo_store_reserve_reads) and, for each of codes[0..n),
 *  the promotion it brings in (NULL when no such code). */
typedef struct promo_batch_reads {
    promo_preload_t preload;
    promo_reservation_ref_t *expired;
    size_t n_expired;
    char **code_promotions; /* [n_codes] */
} promo_batch_reads_t;
status_t promo_store_batch_reads(db_t *db, arena_t *a, const char *merchant_id, int64_t now,
                                 int expired_max, char *const *codes, size_t n_codes,
                                 promo_batch_reads_t *out);

#endif
