/* gateway_rules.h -- the gateway's pure rules (no I/O, unit-tested): how a checkout's payment is
 * split between points, wallet and the storefront's payment, what earns points, how a refund
 * is split pro rata and which shares it passes on, how step errors are classified and retried,
 * and the test-only failpoint syntax. */
#ifndef GATEWAY_RULES_H
#define GATEWAY_RULES_H

#include "status.h"

#include <stdbool.h>
#include <stdint.h>

#define GW_ORDER_ID_MAX 100
#define GW_LINES_MAX 200
#define GW_PRODUCT_LINES_MAX 5
#define GW_CODES_MAX 5
#define GW_COUPONS_MAX 5
#define GW_LINE_ID_MAX 64
#define GW_SKU_MAX 64
#define GW_STORE_ID_MAX 64
#define GW_QUANTITY_MAX 100000
#define GW_UNIT_PRICE_MAX 10000000000LL /* 10^10 */
#define GW_SHIPPING_MAX 10000000000LL
#define GW_AMOUNT_MAX 1000000000000LL /* 10^12: points, wallet, top-up and refund amounts */
#define GW_PAYMENT_REF_MAX 128
#define GW_REFERRAL_CODE_MAX 32
#define GW_REASON_TEXT_MAX 200
#define GW_WELCOME_TEMPLATES_MAX 10
#define GW_MEMBERSHIP_PERIODS_MAX 36
#define GW_TRANSIENT_ATTEMPTS_IN_REQUEST 3 /* tries of a step within one request */
#define GW_LIMITED_ATTEMPTS_MAX 20         /* INTERNAL/UNKNOWN: then NEEDS_ATTENTION */
#define GW_BACKOFF_MAX_S 300
/* A step started longer ago than this is never called again (participants keep idempotency
 * keys 30 days): the saga needs attention (STEP_TOO_OLD) instead. */
#define GW_STEP_REPLAY_MAX_S (20 * 86400)

/** The wallet amount a checkout holds: min(requested, due), or min(available, due) with
 *  use_max; never negative. */
int64_t gw_choose_wallet(int64_t requested, bool use_max, int64_t available_cents,
                         int64_t due_cents);

/** What a checkout's payment asks of an order of total_cents (its GatewayPaymentChoice). */
typedef struct gw_payment_ask {
    int64_t total_cents;
    int64_t redeem_points;
    bool use_max_points;
    int64_t wallet_cents;
    bool use_max_wallet;
} gw_payment_ask_t;

/** What the payment's reads answered: points-svc's choice of points and their cash value (0
 *  when points were not asked for), the wallet's available balance (0 when not read). */
typedef struct gw_payment_quote {
    int64_t points, points_cash_cents;
    int64_t wallet_available_cents;
} gw_payment_quote_t;

/** How the order is paid: the points held and their cash value, the wallet amount held. */
typedef struct gw_payment_split {
    int64_t points, points_cash_cents;
    int64_t wallet_cents;
} gw_payment_split_t;

/** Points are redeemed when some are asked for (or use_max) and the order has a total to pay. */
bool gw_payment_wants_points(const gw_payment_ask_t *ask);

/** The wallet pays when an amount is asked for or use_max_wallet. */
bool gw_payment_wants_wallet(const gw_payment_ask_t *ask);

/** The payment of a checkout: the quoted points with their cash value (never more than the
 *  total), then the wallet for what they leave due (gw_choose_wallet); nothing that was not
 *  asked for. */
gw_payment_split_t gw_choose_payment(const gw_payment_ask_t *ask, const gw_payment_quote_t *quote);

/** Money that earns points and counts as spend: wallet + external minus the final amount of
 *  WALLET_TOPUP lines (buying stored value earns nothing; spending it does), at least 0. */
int64_t gw_earn_base(int64_t wallet_cents, int64_t external_cents, int64_t topup_lines_cents);

/* ---- refunds ---- */

/** What one refund does to an order. */
typedef struct gw_refund_split {
    int64_t points_cash_cents, wallet_cents, external_cents;
    int64_t share_bps;       /* this refund's share, passed to ReverseOrder/ReverseRewards */
    int64_t share_bps_total; /* after it */
    int64_t spend_cents;     /* spend given back to member-svc by this refund */
} gw_refund_split_t;

/** The order's figures and what earlier refunds already gave back. */
typedef struct gw_order_figures {
    int64_t total_cents; /* points cash + wallet + external */
    int64_t points_cash_cents, wallet_cents, external_cents;
    int64_t spend_cents;      /* recorded with member-svc */
    int64_t refundable_cents; /* total minus MEMBERSHIP and WALLET_TOPUP lines */
    int64_t refunded_cents;   /* so far */
    int64_t refunded_points_cash_cents, refunded_wallet_cents, refunded_external_cents;
    int64_t refunded_share_bps, refunded_spend_cents;
} gw_order_figures_t;

/** Splits a refund of amount_cents (1..refundable - refunded) over points cash, wallet and
 *  external money pro rata to what each has left (money_allocate; ties: points, wallet,
 *  external), and computes the cumulative share and spend (see gateway.proto REFUND). Fails
 *  REFUND_EXCEEDS_ORDER / NOTHING_TO_REFUND. */
status_t gw_refund_split(const gw_order_figures_t *o, int64_t amount_cents, gw_refund_split_t *out);

/** The amount a line gives back when refunded_before + quantity of its `quantity` units are
 *  refunded: floor(final * (before + q) / quantity) - floor(final * before / quantity). */
int64_t gw_line_refund_cents(int64_t final_cents, int64_t quantity, int64_t refunded_before,
                             int64_t refund_quantity);

/** The share of a referral reward of `granted` points to pass to PointsService.ReverseOrder so
 *  that its cumulative claw-back floor(granted * share / 10000) becomes `clawed_total`: the
 *  smallest share reaching it, or the largest not passing it when no share hits it exactly
 *  (granted > 10000); *exact tells which. */
int64_t gw_clawback_share_bps(int64_t granted, int64_t clawed_total, bool *exact);

/* ---- step errors ---- */

typedef enum gw_error_class {
    GW_ERR_TRANSIENT, /* UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED, RESOURCE_EXHAUSTED, CANCELLED */
    GW_ERR_LIMITED,   /* INTERNAL, UNKNOWN, DATA_LOSS: retried up to GW_LIMITED_ATTEMPTS_MAX */
    GW_ERR_PERMANENT, /* a refusal or a bad request: retrying cannot help */
} gw_error_class_t;

gw_error_class_t gw_classify(const status_t *st);

/** Seconds to wait before attempt number `attempts` + 1 of a saga by the recovery job:
 *  2^(attempts-1) capped at GW_BACKOFF_MAX_S (1, 2, 4, ... 256, 300, 300, ...). */
int64_t gw_backoff_s(int64_t attempts);

/** In-request retry delay in milliseconds after the n-th failed try (n >= 1): 50, 200, 800. */
int64_t gw_retry_delay_ms(int n);

/* ---- failpoints (test only) ---- */

typedef enum gw_fail_when {
    GW_FAIL_NONE,
    GW_FAIL_BEFORE, /* STARTED committed, participant not yet called */
    GW_FAIL_SENT,   /* participant answered, answer not yet logged */
    GW_FAIL_AFTER,  /* DONE committed */
} gw_fail_when_t;

typedef struct gw_failpoint {
    gw_fail_when_t when;
    char step[96];
} gw_failpoint_t;

/** Parses "before:<step>", "sent:<step>" or "after:<step>"; "" gives GW_FAIL_NONE. */
bool gw_failpoint_parse(const char *text, gw_failpoint_t *out);

/** True when the failpoint names this step: equal, or "<name>:*" for every step "<name>:...". */
bool gw_failpoint_matches(const gw_failpoint_t *fp, gw_fail_when_t when, const char *step);

#endif
