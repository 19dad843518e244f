/* wallet_rules.c -- pure rules of the wallet (see wallet_rules.h). */
#include "wallet_rules.h"

#include "money.h"
#include "validate.h"

#include <assert.h>
#include <string.h>

int wallet_shard(const char *member_id) {
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)member_id; *p; p++) {
        h ^= *p;
        h *= 16777619u;
    }
    return (int)(h % WALLET_SHARDS);
}

bool wallet_code_is_member(int code) {
    return code == WALLET_ACC_PRINCIPAL || code == WALLET_ACC_BONUS;
}

int wallet_redeemed_code(int member_code) {
    assert(wallet_code_is_member(member_code));
    return member_code == WALLET_ACC_PRINCIPAL ? WALLET_ACC_REDEEMED_PRINCIPAL
                                               : WALLET_ACC_REDEEMED_BONUS;
}

int wallet_breakage_code(int member_code) {
    assert(wallet_code_is_member(member_code));
    return member_code == WALLET_ACC_PRINCIPAL ? WALLET_ACC_BREAKAGE_PRINCIPAL
                                               : WALLET_ACC_BREAKAGE_BONUS;
}

int wallet_lot_order_cmp(const wallet_lot_key_t *a, const wallet_lot_key_t *b) {
    if (a->expires_at != b->expires_at) {
        if (a->expires_at == 0) {
            return 1; /* never-expiring money goes last */
        }
        if (b->expires_at == 0) {
            return -1;
        }
        return a->expires_at < b->expires_at ? -1 : 1;
    }
    if (a->code != b->code) {
        return a->code == WALLET_ACC_PRINCIPAL ? -1 : 1;
    }
    return strcmp(a->id, b->id);
}

bool wallet_take_in_order(const int64_t *avail, int n, int64_t amount_cents, int64_t *parts) {
    if (amount_cents < 0 || n < 0) {
        return false;
    }
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        if (avail[i] < 0 || !money_add(total, avail[i], &total)) {
            return false;
        }
    }
    if (total < amount_cents) {
        return false;
    }
    int64_t left = amount_cents;
    for (int i = 0; i < n; i++) {
        parts[i] = avail[i] < left ? avail[i] : left;
        left -= parts[i];
    }
    assert(left == 0);
    return true;
}

bool wallet_split_pro_rata(const int64_t *remaining, int n, int64_t amount_cents, int64_t *parts) {
    if (n <= 0 || amount_cents <= 0) {
        return false;
    }
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        if (remaining[i] < 0 || !money_add(total, remaining[i], &total)) {
            return false;
        }
    }
    if (amount_cents > total || !money_allocate(amount_cents, remaining, n, parts)) {
        return false;
    }
    for (int i = 0; i < n; i++) {
        /* money_allocate never gives a part above its weight when amount <= the weights' sum;
         * checked anyway since the ledger depends on it. */
        assert(parts[i] >= 0 && parts[i] <= remaining[i]);
    }
    return true;
}

bool wallet_forfeit_cents(int64_t paid, int64_t bonus, int64_t refunded_before, int64_t refund_now,
                          int64_t *forfeit) {
    if (paid <= 0 || bonus < 0 || refunded_before < 0 || refund_now < 0 || refunded_before > paid ||
        refund_now > paid - refunded_before) {
        return false;
    }
    int64_t before = 0;
    int64_t after = 0;
    if (!money_mul_div(bonus, refunded_before, paid, ROUND_CEIL, &before) ||
        !money_mul_div(bonus, refunded_before + refund_now, paid, ROUND_CEIL, &after)) {
        return false;
    }
    assert(after >= before && after <= bonus);
    *forfeit = after - before;
    return true;
}

int64_t wallet_top_up_refundable(int64_t paid, int64_t bonus, int64_t refunded_before,
                                 int64_t principal_available, int64_t bonus_available) {
    int64_t limit = paid - refunded_before;
    if (principal_available < limit) {
        limit = principal_available;
    }
    if (limit <= 0) {
        return 0;
    }
    if (bonus <= 0) {
        return limit;
    }
    /* A refund r is allowed when ceil(B(R0 + r)/P) - F0 <= Bav, i.e. B(R0 + r)/P <= F0 + Bav
     * (the right side is a whole number), i.e. r <= floor((F0 + Bav) P / B) - R0. */
    int64_t forfeited_before = 0;
    int64_t cap = 0;
    if (!money_mul_div(bonus, refunded_before, paid, ROUND_CEIL, &forfeited_before) ||
        !money_mul_div(forfeited_before + bonus_available, paid, bonus, ROUND_FLOOR, &cap)) {
        return 0;
    }
    cap -= refunded_before;
    if (cap < 0) {
        return 0;
    }
    return cap < limit ? cap : limit;
}

int64_t wallet_expiry_last_day(int64_t day, int months) {
    assert(months >= 1 && months <= WALLET_EXPIRY_MONTHS_MAX);
    int y = 0;
    int m = 0;
    int d = 0;
    date_civil_from_days(day, &y, &m, &d);
    int index = (y * 12 + (m - 1)) + months;
    y = index / 12;
    m = index % 12 + 1;
    int last = date_days_in_month(y, m);
    return date_days_from_civil(y, m, d < last ? d : last);
}

int wallet_hold_effective_state(int state, int64_t expires_at, int64_t now) {
    if (state == WALLET_HOLD_PENDING && now >= expires_at) {
        return WALLET_HOLD_EXPIRED;
    }
    return state;
}

status_t wallet_check_capture(int state, int64_t expires_at, int64_t now, int64_t held,
                              int64_t amount_cents) {
    switch (wallet_hold_effective_state(state, expires_at, now)) {
    case WALLET_HOLD_PENDING:
        break;
    case WALLET_HOLD_EXPIRED:
        return status_make(STATUS_FAILED_PRECONDITION, REASON_HOLD_EXPIRED,
                           "the hold expired before it was captured; nothing was charged");
    case WALLET_HOLD_VOIDED:
        return status_make(STATUS_FAILED_PRECONDITION, REASON_HOLD_VOIDED,
                           "the hold was voided; nothing was charged");
    case WALLET_HOLD_CAPTURED:
        return status_make(STATUS_FAILED_PRECONDITION, REASON_HOLD_ALREADY_CAPTURED,
                           "the hold was already captured");
    default:
        return status_make(STATUS_INTERNAL, REASON_BAD_HOLD_STATE, "hold in unknown state %d",
                           state);
    }
    if (amount_cents > held) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_CAPTURE_EXCEEDS_HOLD,
                           "capture of %lld cents exceeds the %lld cents held",
                           (long long)amount_cents, (long long)held);
    }
    return status_ok();
}

status_t wallet_check_amount(const char *field, int64_t amount_cents) {
    if (amount_cents <= 0) {
        return status_invalid_field(field, "must be positive");
    }
    if (amount_cents > WALLET_AMOUNT_MAX) {
        return status_invalid_field(field, "at most %lld", (long long)WALLET_AMOUNT_MAX);
    }
    return status_ok();
}

status_t wallet_check_member_id(const char *member_id) {
    return validate_token("member_id", member_id, WALLET_MEMBER_ID_MAX);
}

status_t wallet_hold_ttl(int32_t ttl_s, int64_t *out) {
    if (ttl_s == 0) {
        *out = WALLET_HOLD_TTL_DEFAULT_S;
        return status_ok();
    }
    if (ttl_s < 0 || ttl_s > WALLET_HOLD_TTL_MAX_S) {
        return status_invalid_field("ttl_s", "must be 1..%d seconds (0 = %d)",
                                    WALLET_HOLD_TTL_MAX_S, WALLET_HOLD_TTL_DEFAULT_S);
    }
    *out = ttl_s;
    return status_ok();
}

status_t wallet_check_plan(const char *name, int64_t pay_cents, int64_t bonus_cents,
                           bool has_expiry, int32_t expiry_months, int64_t active_from_at,
                           int64_t active_until_at) {
    status_t st = validate_text("name", name, 1, WALLET_PLAN_NAME_MAX);
    if (!status_is_ok(&st)) {
        return st;
    }
    st = wallet_check_amount("pay_cents", pay_cents);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (bonus_cents < 0 || bonus_cents > WALLET_BONUS_FACTOR_MAX * pay_cents) {
        return status_invalid_field("bonus_cents", "must be 0..%d times pay_cents",
                                    WALLET_BONUS_FACTOR_MAX);
    }
    if (has_expiry && (expiry_months < 0 || expiry_months > WALLET_EXPIRY_MONTHS_MAX)) {
        return status_invalid_field("expiry_months", "must be 0..%d (0 = never expires)",
                                    WALLET_EXPIRY_MONTHS_MAX);
    }
    if (active_from_at < 0) {
        return status_invalid_field("active_from_at", "must not be negative");
    }
    if (active_until_at < 0 || (active_until_at != 0 && active_until_at <= active_from_at)) {
        return status_invalid_field("active_until_at", "must be 0 or after active_from_at");
    }
    return status_ok();
}

bool wallet_plan_active(bool enabled, int64_t active_from_at, int64_t active_until_at,
                        int64_t now) {
    return enabled && now >= active_from_at && (active_until_at == 0 || now < active_until_at);
}
