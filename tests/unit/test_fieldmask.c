/* test_fieldmask.c -- unit tests of update masks (lib/fieldmask.c): which paths are accepted,
 * and that applying a mask copies exactly the named fields, of every kind (scalar, string,
 * enum, message, repeated, oneof member, proto3 optional). */
#include "fieldmask.h"
#include "loyalty/v1/promo.pb-c.h"
#include "loyalty/v1/wallet.pb-c.h"

#include <criterion/criterion.h>

#include <string.h>

#define MASK(...)                                                                                  \
    (&(Google__Protobuf__FieldMask){                                                               \
        PROTOBUF_C_MESSAGE_INIT(&google__protobuf__field_mask__descriptor),                        \
        sizeof((char *[]){__VA_ARGS__}) / sizeof(char *), (char *[]){__VA_ARGS__}})

static const char *const plan_updatable[] = {"name", "enabled", "expiry_months", NULL};

Test(fieldmask, empty_unknown_and_immutable_paths_are_refused) {
    fieldmask_t m;
    const ProtobufCMessageDescriptor *d = &loyalty__v1__wallet_top_up_plan__descriptor;
    status_t st = fieldmask_parse(NULL, d, NULL, &m);
    cr_assert_eq(st.code, STATUS_INVALID_ARGUMENT);
    cr_assert_str_eq(st.reason, "UPDATE_MASK_REQUIRED");
    Google__Protobuf__FieldMask empty = GOOGLE__PROTOBUF__FIELD_MASK__INIT;
    cr_assert_str_eq(fieldmask_parse(&empty, d, NULL, &m).reason, "UPDATE_MASK_REQUIRED");
    st = fieldmask_parse(MASK("name", "colour"), d, NULL, &m);
    cr_assert_str_eq(st.reason, "UPDATE_MASK_UNKNOWN_FIELD");
    cr_assert(strstr(st.message, "'colour'") && strstr(st.message, "WalletTopUpPlan"), "%s",
              st.message);
    /* Paths name fields of the message itself, not nested ones. */
    cr_assert_str_eq(fieldmask_parse(MASK("plan.name"), d, NULL, &m).reason,
                     "UPDATE_MASK_UNKNOWN_FIELD");
    st = fieldmask_parse(MASK("name", "pay_cents"), d, plan_updatable, &m);
    cr_assert_str_eq(st.reason, "UPDATE_MASK_IMMUTABLE_FIELD");
    cr_assert(strstr(st.message, "pay_cents") != NULL, "%s", st.message);
}

Test(fieldmask, parsed_paths_are_the_named_fields) {
    fieldmask_t m;
    status_t st = fieldmask_parse(MASK("enabled", "name", "name"),
                                  &loyalty__v1__wallet_top_up_plan__descriptor, plan_updatable, &m);
    cr_assert_eq(st.code, STATUS_OK, "%s", st.message);
    cr_assert(fieldmask_has(&m, "name"));
    cr_assert(fieldmask_has(&m, "enabled"));
    cr_assert_not(fieldmask_has(&m, "pay_cents"));
    cr_assert_not(fieldmask_has(&m, "expiry_months"));
}

Test(fieldmask, apply_copies_the_named_fields_only) {
    Loyalty__V1__WalletTopUpPlan dst = LOYALTY__V1__WALLET_TOP_UP_PLAN__INIT;
    dst.name = "Old";
    dst.pay_cents = 100;
    dst.enabled = true;
    dst._expiry_months_case = LOYALTY__V1__WALLET_TOP_UP_PLAN___EXPIRY_MONTHS_EXPIRY_MONTHS;
    dst.expiry_months = 6;
    Loyalty__V1__WalletTopUpPlan src = LOYALTY__V1__WALLET_TOP_UP_PLAN__INIT;
    src.name = "New";
    src.pay_cents = 999;
    src.enabled = false;
    fieldmask_t m;
    cr_assert_eq(fieldmask_parse(MASK("name", "enabled"),
                                 &loyalty__v1__wallet_top_up_plan__descriptor, NULL, &m)
                     .code,
                 STATUS_OK);
    fieldmask_apply(&m, &dst.base, &src.base);
    cr_assert_str_eq(dst.name, "New");
    cr_assert_not(dst.enabled, "a named field is set to the request's value, even false");
    cr_assert_eq(dst.pay_cents, 100);
    cr_assert_eq(dst.expiry_months, 6);
    /* A proto3 optional named but absent in the request is cleared. */
    cr_assert_eq(fieldmask_parse(MASK("expiry_months"),
                                 &loyalty__v1__wallet_top_up_plan__descriptor, NULL, &m)
                     .code,
                 STATUS_OK);
    fieldmask_apply(&m, &dst.base, &src.base);
    cr_assert_eq(dst._expiry_months_case, 0);
}

Test(fieldmask, apply_handles_messages_repeated_fields_and_oneofs) {
    Loyalty__V1__PromoAmountOff amount = LOYALTY__V1__PROMO_AMOUNT_OFF__INIT;
    amount.amount_off_cents = 500;
    Loyalty__V1__PromoLimit limit = LOYALTY__V1__PROMO_LIMIT__INIT;
    limit.max_uses = 3;
    Loyalty__V1__PromoLimit *limits[] = {&limit};
    Loyalty__V1__Promotion dst = LOYALTY__V1__PROMOTION__INIT;
    dst.name = "Kept";
    dst.priority = 1;
    dst.rule_case = LOYALTY__V1__PROMOTION__RULE_AMOUNT_OFF;
    dst.amount_off = &amount;
    dst.limits = limits;
    dst.n_limits = 1;

    Loyalty__V1__PromoPercentOff pct = LOYALTY__V1__PROMO_PERCENT_OFF__INIT;
    pct.percent_off_bps = 1000;
    Loyalty__V1__PromoConditions cond = LOYALTY__V1__PROMO_CONDITIONS__INIT;
    Loyalty__V1__Promotion src = LOYALTY__V1__PROMOTION__INIT;
    src.name = "Dropped";
    src.priority = 9;
    src.rule_case = LOYALTY__V1__PROMOTION__RULE_PERCENT_OFF;
    src.percent_off = &pct;
    src.conditions = &cond;

    fieldmask_t m;
    cr_assert_eq(fieldmask_parse(MASK("priority", "conditions", "limits", "percent_off"),
                                 &loyalty__v1__promotion__descriptor, NULL, &m)
                     .code,
                 STATUS_OK);
    fieldmask_apply(&m, &dst.base, &src.base);
    cr_assert_str_eq(dst.name, "Kept");
    cr_assert_eq(dst.priority, 9);
    cr_assert_eq(dst.conditions, &cond);
    cr_assert_eq(dst.n_limits, 0, "a named repeated field is replaced, here by nothing");
    cr_assert_eq(dst.rule_case, LOYALTY__V1__PROMOTION__RULE_PERCENT_OFF);
    cr_assert_eq(dst.percent_off, &pct);

    /* Naming the member the destination has while the source has another clears the oneof;
     * naming one neither has changes nothing. */
    dst.rule_case = LOYALTY__V1__PROMOTION__RULE_AMOUNT_OFF;
    dst.amount_off = &amount;
    cr_assert_eq(
        fieldmask_parse(MASK("free_shipping"), &loyalty__v1__promotion__descriptor, NULL, &m).code,
        STATUS_OK);
    fieldmask_apply(&m, &dst.base, &src.base);
    cr_assert_eq(dst.rule_case, LOYALTY__V1__PROMOTION__RULE_AMOUNT_OFF);
    cr_assert_eq(
        fieldmask_parse(MASK("amount_off"), &loyalty__v1__promotion__descriptor, NULL, &m).code,
        STATUS_OK);
    fieldmask_apply(&m, &dst.base, &src.base);
    cr_assert_eq(dst.rule_case, LOYALTY__V1__PROMOTION__RULE__NOT_SET);
}
