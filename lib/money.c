/* money.c -- 128-bit intermediate arithmetic with explicit rounding. */
#include "money.h"

bool money_mul_div(int64_t amount, int64_t numerator, int64_t denominator, money_rounding_t r,
                   int64_t *out) {
    if (denominator == 0) {
        return false;
    }
    __int128 p = (__int128)amount * numerator;
    __int128 d = denominator;
    if (d < 0) {
        p = -p;
        d = -d;
    }
    __int128 q = p / d; /* truncates toward zero */
    __int128 rem = p % d;
    if (rem != 0) {
        bool negative = p < 0;
        __int128 twice = (rem < 0 ? -rem : rem) * 2;
        switch (r) {
        case ROUND_FLOOR:
            q -= negative ? 1 : 0;
            break;
        case ROUND_CEIL:
            q += negative ? 0 : 1;
            break;
        case ROUND_HALF_UP:
            if (twice >= d) {
                q += negative ? -1 : 1;
            }
            break;
        case ROUND_HALF_EVEN:
            if (twice > d || (twice == d && (q % 2 != 0))) {
                q += negative ? -1 : 1;
            }
            break;
        }
    }
    if (q > INT64_MAX || q < INT64_MIN) {
        return false;
    }
    *out = (int64_t)q;
    return true;
}

bool money_share_bps(int64_t amount, int64_t bps, money_rounding_t r, int64_t *out) {
    return money_mul_div(amount, bps, BPS_ONE, r, out);
}

bool money_add(int64_t a, int64_t b, int64_t *out) {
    return !__builtin_add_overflow(a, b, out);
}

bool money_allocate(int64_t total, const int64_t *weights, int n, int64_t *parts) {
    if (n <= 0 || n > 1024) {
        return false;
    }
    __int128 sum = 0;
    for (int i = 0; i < n; i++) {
        if (weights[i] < 0) {
            return false;
        }
        sum += weights[i];
    }
    if (sum <= 0 || sum > INT64_MAX) {
        return false;
    }
    int64_t given = 0;
    int64_t rems[1024];
    for (int i = 0; i < n; i++) {
        __int128 p = (__int128)total * weights[i];
        __int128 q = p / sum;
        __int128 rm = p % sum;
        if (rm < 0) { /* floor for negative totals */
            q -= 1;
            rm += sum;
        }
        parts[i] = (int64_t)q;
        rems[i] = (int64_t)rm;
        given += parts[i];
    }
    int64_t left = total - given; /* 0 <= left < n */
    while (left > 0) {
        int best = 0;
        for (int i = 1; i < n; i++) {
            if (rems[i] > rems[best]) {
                best = i;
            }
        }
        parts[best] += 1;
        rems[best] = -1;
        left--;
    }
    return true;
}
