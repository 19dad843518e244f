/* test_money.c -- unit tests of money arithmetic: every rounding rule, overflow, allocation. */
#include "cursor.h"
#include "money.h"

#include <criterion/criterion.h>

#include <string.h>

static int64_t share(int64_t amount, int64_t bps, money_rounding_t r) {
    int64_t out = 0;
    cr_assert(money_share_bps(amount, bps, r, &out));
    return out;
}

Test(money, bps_share_rounding_rules) {
    /* 1005 cents at 5% = 50.25 cents */
    cr_assert_eq(share(1005, 500, ROUND_FLOOR), 50);
    cr_assert_eq(share(1005, 500, ROUND_CEIL), 51);
    cr_assert_eq(share(1005, 500, ROUND_HALF_UP), 50);
    /* 1010 at 5% = 50.5 */
    cr_assert_eq(share(1010, 500, ROUND_HALF_UP), 51);
    cr_assert_eq(share(1010, 500, ROUND_HALF_EVEN), 50);
    cr_assert_eq(share(1030, 500, ROUND_HALF_EVEN), 52, "51.5 -> 52 (even)");
    /* exact results are untouched by every rule */
    for (int r = ROUND_FLOOR; r <= ROUND_HALF_EVEN; r++) {
        cr_assert_eq(share(2000, 2500, (money_rounding_t)r), 500);
    }
    /* negatives: floor goes down, half-up goes away from zero */
    cr_assert_eq(share(-1005, 500, ROUND_FLOOR), -51);
    cr_assert_eq(share(-1005, 500, ROUND_CEIL), -50);
    cr_assert_eq(share(-1010, 500, ROUND_HALF_UP), -51);
    cr_assert_eq(share(0, 500, ROUND_CEIL), 0);
    cr_assert_eq(share(12345, BPS_ONE, ROUND_FLOOR), 12345);
}

Test(money, no_intermediate_overflow) {
    int64_t out;
    cr_assert(money_mul_div(INT64_MAX, 3, 4, ROUND_FLOOR, &out));
    cr_assert_eq(out, (int64_t)(((__int128)INT64_MAX * 3) / 4));
    cr_assert_not(money_mul_div(INT64_MAX, 2, 1, ROUND_FLOOR, &out), "result too large");
    cr_assert_not(money_mul_div(5, 1, 0, ROUND_FLOOR, &out), "division by zero");
    cr_assert(money_mul_div(7, 1, -2, ROUND_FLOOR, &out));
    cr_assert_eq(out, -4);
    cr_assert(money_add(INT64_MAX - 1, 1, &out));
    cr_assert_not(money_add(INT64_MAX, 1, &out));
    cr_assert_not(money_add(INT64_MIN, -1, &out));
}

Test(money, allocation_sums_exactly) {
    int64_t parts[3];
    int64_t w[] = {1, 1, 1};
    cr_assert(money_allocate(100, w, 3, parts));
    cr_assert(parts[0] == 34 && parts[1] == 33 && parts[2] == 33);
    int64_t w2[] = {500, 300, 200};
    cr_assert(money_allocate(999, w2, 3, parts));
    cr_assert_eq(parts[0] + parts[1] + parts[2], 999);
    /* 499.5, 299.7, 199.8: the two units left go to the largest remainders */
    cr_assert(parts[0] == 499 && parts[1] == 300 && parts[2] == 200);
    int64_t w3[] = {0, 5};
    cr_assert(money_allocate(7, w3, 2, parts));
    cr_assert(parts[0] == 0 && parts[1] == 7);
    int64_t zero[] = {0, 0};
    cr_assert_not(money_allocate(7, zero, 2, parts));
    int64_t neg[] = {-1, 2};
    cr_assert_not(money_allocate(7, neg, 2, parts));
    cr_assert(money_allocate(-10, w, 3, parts));
    cr_assert_eq(parts[0] + parts[1] + parts[2], -10);
}

Test(cursor, round_trips_and_rejects_garbage) {
    arena_t a;
    arena_init(&a);
    char *c = cursor_encode(&a, "2026-01-02 10:00:00", "mbr_01ABC");
    char *key, *id;
    cr_assert_eq(cursor_decode(&a, "page.cursor", c, &key, &id).code, STATUS_OK);
    cr_assert_str_eq(key, "2026-01-02 10:00:00");
    cr_assert_str_eq(id, "mbr_01ABC");
    cr_assert_eq(cursor_decode(&a, "page.cursor", "", &key, &id).code, STATUS_OK);
    cr_assert_str_eq(id, "");
    status_t st = cursor_decode(&a, "page.cursor", "not*base64", &key, &id);
    cr_assert_str_eq(st.reason, "INVALID_PAGE_CURSOR");
    cr_assert_eq(cursor_decode(&a, "page.cursor", "aGVsbG8", &key, &id).code,
                 STATUS_INVALID_ARGUMENT, "valid base64, not a cursor");
    int32_t size;
    cr_assert(cursor_page_size("page.page_size", 0, 200, &size).code == STATUS_OK && size == 50);
    cr_assert(cursor_page_size("page.page_size", 200, 200, &size).code == STATUS_OK && size == 200);
    cr_assert_eq(cursor_page_size("page.page_size", 201, 200, &size).code, STATUS_INVALID_ARGUMENT);
    cr_assert_eq(cursor_page_size("page.page_size", -1, 200, &size).code, STATUS_INVALID_ARGUMENT);
    arena_free(&a);
}
