/* wallet_rules.h -- pure rules of the wallet: spending order, allocation of amounts over lots,
 * pro-rata refunds and bonus forfeits, expiry dates, hold state checks and input limits. No
 * I/O; unit-tested in tests/unit/test_wallet_rules.c. The model is described at the top of
 * proto/loyalty/v1/wallet.proto. */
#ifndef WALLET_RULES_H
#define WALLET_RULES_H

#include "status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Account codes (WalletAccountCode in the proto). */
enum {
    WALLET_ACC_PRINCIPAL = 1,
    WALLET_ACC_BONUS = 2,
    WALLET_ACC_TOP_UP_FUNDING = 10,
    WALLET_ACC_BONUS_EXPENSE = 11,
    WALLET_ACC_REDEEMED_PRINCIPAL = 12,
    WALLET_ACC_REDEEMED_BONUS = 13,
    WALLET_ACC_BREAKAGE_PRINCIPAL = 14,
    WALLET_ACC_BREAKAGE_BONUS = 15,
};

/* Transfer kinds (WalletTransferKind). */
enum {
    WALLET_XFER_TOP_UP = 1,
    WALLET_XFER_TOP_UP_REFUND = 2,
    WALLET_XFER_HOLD = 3,
    WALLET_XFER_CAPTURE = 4,
    WALLET_XFER_VOID = 5,
    WALLET_XFER_HOLD_EXPIRY = 6,
    WALLET_XFER_REFUND = 7,
    WALLET_XFER_DEPOSIT_EXPIRY = 8,
};

/* Hold states (WalletHoldState). */
enum {
    WALLET_HOLD_PENDING = 1,
    WALLET_HOLD_CAPTURED = 2,
    WALLET_HOLD_VOIDED = 3,
    WALLET_HOLD_EXPIRED = 4,
};

/* Lot origins (WalletLotOrigin). */
enum {
    WALLET_ORIGIN_TOP_UP = 1,
    WALLET_ORIGIN_REFUND = 2,
};

#define WALLET_SHARDS 16                      /* rows per merchant account */
#define WALLET_AMOUNT_MAX 1000000000000LL     /* 10^12 cents in one request */
#define WALLET_BALANCE_MAX 1000000000000000LL /* 10^15 cents in one wallet */
#define WALLET_BONUS_FACTOR_MAX 10            /* bonus_cents <= 10 * pay_cents */
#define WALLET_EXPIRY_MONTHS_MAX 120
#define WALLET_GRACE_DAYS_MAX 3650
#define WALLET_HOLD_TTL_DEFAULT_S 900
#define WALLET_HOLD_TTL_MAX_S 604800
#define WALLET_REFERENCE_MAX 128
#define WALLET_MEMBER_ID_MAX 64
#define WALLET_PLAN_NAME_MAX 100
#define WALLET_TIME_ZONE_MAX 64
#define WALLET_EXPIRING_SOON_S (30 * 86400)
#define WALLET_PAGE_MAX 200
#define WALLET_EXPIRE_MEMBERS_MAX 500 /* members per ExpireDeposits call */
#define WALLET_LOTS_PER_OP_MAX 1000   /* lots one hold, capture or refund may touch */

/** The shard of a member's merchant-account rows: FNV-1a of the id, mod WALLET_SHARDS. */
int wallet_shard(const char *member_id);

/** True for the member account codes (principal, bonus). */
bool wallet_code_is_member(int code);

/** The merchant account that pairs with a member account for a kind of movement: redeemed
 *  (capture, refund), breakage (expiry). `member_code` is WALLET_ACC_PRINCIPAL or _BONUS. */
int wallet_redeemed_code(int member_code);
int wallet_breakage_code(int member_code);

/** A lot as the rules see it. expires_at 0 means never. */
typedef struct wallet_lot_key {
    int64_t expires_at;
    int code;
    const char *id;
} wallet_lot_key_t;

/** Spending order: soonest expiry first, never-expiring last; on equal expiry principal
 *  before bonus; then the older lot (smaller id; ids sort by creation time). qsort-style. */
int wallet_lot_order_cmp(const wallet_lot_key_t *a, const wallet_lot_key_t *b);

/** Takes `amount` from avail[0..n) in index order (the caller sorted them in spending order):
 *  parts[i] = what comes from lot i. False, with parts untouched, when the sum of avail is
 *  below amount or amount/avail are negative. */
bool wallet_take_in_order(const int64_t *avail, int n, int64_t amount_cents, int64_t *parts);

/** Splits `amount` over lots in proportion to remaining[0..n) (what each may still take) with
 *  money_allocate (floor, then the leftover cents to the largest remainders, the earliest on
 *  ties), so that parts sum to amount exactly and parts[i] <= remaining[i]. False when amount
 *  is not in 1..sum(remaining). */
bool wallet_split_pro_rata(const int64_t *remaining, int n, int64_t amount_cents, int64_t *parts);

/** The bonus a top-up refund forfeits. The top-up paid `paid` with bonus `bonus`;
 *  `refunded_before` was refunded already, `refund_now` is refunded now. The forfeit is
 *  cumulative and rounds up: ceil(bonus * (before + now) / paid) - ceil(bonus * before / paid).
 *  False when the figures are inconsistent (paid <= 0, before + now > paid, negatives). */
bool wallet_forfeit_cents(int64_t paid, int64_t bonus, int64_t refunded_before, int64_t refund_now,
                          int64_t *forfeit);

/** The largest principal RefundTopUp would accept now: at most paid - refunded_before and
 *  principal_available, and small enough that its forfeit fits in bonus_available. */
int64_t wallet_top_up_refundable(int64_t paid, int64_t bonus, int64_t refunded_before,
                                 int64_t principal_available, int64_t bonus_available);

/** The last local day (days since 1970-01-01) on which a deposit made on local day `day` with
 *  a validity of `months` calendar months can be spent: the same day of the month `months`
 *  later, clamped to the end of a shorter month. The money lapses at the start of the next
 *  local day. months must be 1..WALLET_EXPIRY_MONTHS_MAX. */
int64_t wallet_expiry_last_day(int64_t day, int months);

/** The state a hold is in at `now`: a PENDING hold at or past its expiry is EXPIRED. */
int wallet_hold_effective_state(int state, int64_t expires_at, int64_t now);

/** Whether a hold in `state` (as stored), expiring at `expires_at`, holding `held`, can be
 *  captured for `amount` at `now`: FAILED_PRECONDITION HOLD_EXPIRED / HOLD_VOIDED /
 *  HOLD_ALREADY_CAPTURED / CAPTURE_EXCEEDS_HOLD otherwise. */
status_t wallet_check_capture(int state, int64_t expires_at, int64_t now, int64_t held,
                              int64_t amount_cents);

/** An amount field: 1..WALLET_AMOUNT_MAX, INVALID_ARGUMENT naming `field` otherwise. */
status_t wallet_check_amount(const char *field, int64_t amount_cents);

/** A member id: a token of at most WALLET_MEMBER_ID_MAX characters. */
status_t wallet_check_member_id(const char *member_id);

/** A hold's ttl_s: 0 gives the default; 1..WALLET_HOLD_TTL_MAX_S is kept; else invalid. */
status_t wallet_hold_ttl(int32_t ttl_s, int64_t *out);

/** The amounts, expiry and window of a new plan. */
status_t wallet_check_plan(const char *name, int64_t pay_cents, int64_t bonus_cents,
                           bool has_expiry, int32_t expiry_months, int64_t active_from_at,
                           int64_t active_until_at);

/** Whether a plan can be used at `now`. */
bool wallet_plan_active(bool enabled, int64_t active_from_at, int64_t active_until_at, int64_t now);

#endif
