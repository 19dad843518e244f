/* gateway_rules.c -- payment split, earn base, refund split, error classes, failpoints. */
#include "gateway_rules.h"

#include "money.h"

#include <stdio.h>
#include <string.h>

int64_t gw_choose_wallet(int64_t requested, bool use_max, int64_t available_cents,
                         int64_t due_cents) {
    int64_t want = use_max ? available_cents : requested;
    if (want > due_cents) {
        want = due_cents;
    }
    return want > 0 ? want : 0;
}

bool gw_payment_wants_points(const gw_payment_ask_t *ask) {
    return (ask->redeem_points > 0 || ask->use_max_points) && ask->total_cents > 0;
}

bool gw_payment_wants_wallet(const gw_payment_ask_t *ask) {
    return ask->wallet_cents > 0 || ask->use_max_wallet;
}

gw_payment_split_t gw_choose_payment(const gw_payment_ask_t *ask, const gw_payment_quote_t *quote) {
    gw_payment_split_t out = {0};
    if (gw_payment_wants_points(ask)) {
        out.points = quote->points;
        /* points-svc caps the cash at the total; never pay more than is due whatever it says */
        out.points_cash_cents = quote->points_cash_cents < ask->total_cents
                                    ? quote->points_cash_cents
                                    : ask->total_cents;
    }
    if (gw_payment_wants_wallet(ask)) {
        out.wallet_cents =
            gw_choose_wallet(ask->wallet_cents, ask->use_max_wallet, quote->wallet_available_cents,
                             ask->total_cents - out.points_cash_cents);
    }
    return out;
}

int64_t gw_earn_base(int64_t wallet_cents, int64_t external_cents, int64_t topup_lines_cents) {
    int64_t base = wallet_cents + external_cents - topup_lines_cents;
    return base > 0 ? base : 0;
}

/* floor(v * num / den) for the cumulative rules; 0 when den is 0. */
static int64_t floor_ratio(int64_t v, int64_t num, int64_t den) {
    int64_t out = 0;
    if (den <= 0 || !money_mul_div(v, num, den, ROUND_FLOOR, &out)) {
        return 0;
    }
    return out;
}

status_t gw_refund_split(const gw_order_figures_t *o, int64_t amount_cents,
                         gw_refund_split_t *out) {
    memset(out, 0, sizeof *out);
    int64_t left = o->refundable_cents - o->refunded_cents;
    if (amount_cents <= 0) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_NOTHING_TO_REFUND,
                           "the refund amounts to nothing");
    }
    if (amount_cents > left) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_REFUND_EXCEEDS_ORDER,
                           "refund of %lld exceeds the %lld still refundable",
                           (long long)amount_cents, (long long)(left > 0 ? left : 0));
    }
    int64_t weights[3] = {o->points_cash_cents - o->refunded_points_cash_cents,
                          o->wallet_cents - o->refunded_wallet_cents,
                          o->external_cents - o->refunded_external_cents};
    int64_t parts[3] = {0, 0, 0};
    if (!money_allocate(amount_cents, weights, 3, parts)) {
        return status_make(STATUS_INTERNAL, REASON_REFUND_SPLIT_FAILED,
                           "the order's payment figures are inconsistent");
    }
    out->points_cash_cents = parts[0];
    out->wallet_cents = parts[1];
    out->external_cents = parts[2];
    int64_t refunded_after = o->refunded_cents + amount_cents;
    out->share_bps_total = refunded_after == o->total_cents
                               ? 10000
                               : floor_ratio(refunded_after, 10000, o->total_cents);
    out->share_bps = out->share_bps_total - o->refunded_share_bps;
    int64_t spend_total = refunded_after == o->total_cents
                              ? o->spend_cents
                              : floor_ratio(o->spend_cents, refunded_after, o->total_cents);
    out->spend_cents = spend_total - o->refunded_spend_cents;
    return status_ok();
}

int64_t gw_line_refund_cents(int64_t final_cents, int64_t quantity, int64_t refunded_before,
                             int64_t refund_quantity) {
    if (quantity <= 0) {
        return 0;
    }
    return floor_ratio(final_cents, refunded_before + refund_quantity, quantity) -
           floor_ratio(final_cents, refunded_before, quantity);
}

int64_t gw_clawback_share_bps(int64_t granted, int64_t clawed_total, bool *exact) {
    *exact = true;
    if (granted <= 0 || clawed_total <= 0) {
        return 0;
    }
    if (clawed_total >= granted) {
        return 10000;
    }
    int64_t s = 0;
    if (!money_mul_div(clawed_total, 10000, granted, ROUND_CEIL, &s)) {
        *exact = false;
        return 0;
    }
    if (floor_ratio(granted, s, 10000) != clawed_total) {
        *exact = false;
        s -= 1; /* the largest share that does not pass clawed_total */
    }
    return s;
}

gw_error_class_t gw_classify(const status_t *st) {
    switch (st->code) {
    case STATUS_UNAVAILABLE:
    case STATUS_DEADLINE_EXCEEDED:
    case STATUS_ABORTED:
    case STATUS_RESOURCE_EXHAUSTED:
    case STATUS_CANCELLED:
        return GW_ERR_TRANSIENT;
    case STATUS_INTERNAL:
    case STATUS_UNKNOWN:
    case STATUS_DATA_LOSS:
        return GW_ERR_LIMITED;
    default:
        return GW_ERR_PERMANENT;
    }
}

int64_t gw_backoff_s(int64_t attempts) {
    if (attempts <= 1) {
        return 1;
    }
    if (attempts > 9) {
        return GW_BACKOFF_MAX_S;
    }
    int64_t s = (int64_t)1 << (attempts - 1);
    return s < GW_BACKOFF_MAX_S ? s : GW_BACKOFF_MAX_S;
}

int64_t gw_retry_delay_ms(int n) {
    static const int64_t delays[] = {50, 200, 800};
    if (n < 1) {
        return delays[0];
    }
    return n <= 3 ? delays[n - 1] : delays[2];
}

bool gw_failpoint_parse(const char *text, gw_failpoint_t *out) {
    memset(out, 0, sizeof *out);
    if (text == NULL || text[0] == '\0') {
        return true;
    }
    static const struct {
        const char *prefix;
        gw_fail_when_t when;
    } kinds[] = {{"before:", GW_FAIL_BEFORE}, {"sent:", GW_FAIL_SENT}, {"after:", GW_FAIL_AFTER}};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        size_t n = strlen(kinds[i].prefix);
        if (strncmp(text, kinds[i].prefix, n) == 0 && text[n] != '\0' &&
            strlen(text + n) < sizeof out->step) {
            out->when = kinds[i].when;
            snprintf(out->step, sizeof out->step, "%s", text + n);
            return true;
        }
    }
    return false;
}

bool gw_failpoint_matches(const gw_failpoint_t *fp, gw_fail_when_t when, const char *step) {
    if (fp->when == GW_FAIL_NONE || fp->when != when) {
        return false;
    }
    size_t n = strlen(fp->step);
    if (n >= 2 && fp->step[n - 2] == ':' && fp->step[n - 1] == '*') {
        return strncmp(fp->step, step, n - 1) == 0; /* "<step>:*": any "<step>:..." */
    }
    return strcmp(fp->step, step) == 0;
}
