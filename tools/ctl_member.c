/* ctl_member.c -- `loyaltyctl member show`: one member found by id, phone or external id
 * (Gateway.GetMemberDetail): profile, balances, tier and its history, recent orders. */
#include "ctl.h"
#include "loyalty/v1/gateway.pb-c.h"
#include "status.h"

#include <stdio.h>
#include <string.h>

typedef enum lookup { BY_ID, BY_PHONE, BY_EXTERNAL_ID } lookup_t;

static int get_detail(ctl_t *c, const ctl_command_t *cmd, const char *merchant, lookup_t by,
                      const char *value, bool quiet_not_found, ProtobufCMessage **out, int *code) {
    Loyalty__V1__GatewayGetMemberDetailRequest req =
        LOYALTY__V1__GATEWAY_GET_MEMBER_DETAIL_REQUEST__INIT;
    req.merchant_id = (char *)merchant;
    switch (by) {
    case BY_ID:
        req.lookup_case = LOYALTY__V1__GATEWAY_GET_MEMBER_DETAIL_REQUEST__LOOKUP_MEMBER_ID;
        req.member_id = (char *)value;
        break;
    case BY_PHONE:
        req.lookup_case = LOYALTY__V1__GATEWAY_GET_MEMBER_DETAIL_REQUEST__LOOKUP_PHONE;
        req.phone = (char *)value;
        break;
    case BY_EXTERNAL_ID:
        req.lookup_case = LOYALTY__V1__GATEWAY_GET_MEMBER_DETAIL_REQUEST__LOOKUP_EXTERNAL_ID;
        req.external_id = (char *)value;
        break;
    }
    /* A first guess (the argument as a member id) is asked quietly: on a miss the caller
     * tries an external id next. */
    return quiet_not_found ? ctl_call_quiet(c, cmd, "GetMemberDetail", &req.base, out, code)
                           : ctl_call(c, cmd, "GetMemberDetail", &req.base, out, code);
}

static void print_detail(const Loyalty__V1__GatewayGetMemberDetailResponse *d) {
    const Loyalty__V1__GatewayGetMemberOverviewResponse *ov = d->overview;
    const Loyalty__V1__Member *m = ov->member;
    char b1[24], b2[24];
    printf("member       %s\n", m->id);
    if (m->external_id[0]) {
        printf("external id  %s\n", m->external_id);
    }
    if (m->profile != NULL) {
        printf("name         %s\n", m->profile->name[0] ? m->profile->name : "-");
        printf("phone        %s\n", m->profile->phone[0] ? m->profile->phone : "-");
        printf("email        %s\n", m->profile->email[0] ? m->profile->email : "-");
    }
    printf("registered   %s\n", ctl_time(m->created_at, b1));
    if (ov->tier != NULL) {
        const Loyalty__V1__MemberTierStatus *t = ov->tier;
        printf("tier         %s", t->tier && t->tier->name[0] ? t->tier->name : "(none)");
        if (t->next_tier != NULL && t->next_tier->name[0]) {
            printf(" (next: %s, %lld to go)", t->next_tier->name, (long long)t->value_to_next_tier);
        }
        printf("\n");
    }
    if (ov->points != NULL) {
        printf("points       available %lld, held %lld, pending %lld, lifetime %lld\n",
               (long long)ov->points->available, (long long)ov->points->held,
               (long long)ov->points->pending, (long long)ov->points->lifetime_earned);
    }
    if (ov->wallet != NULL) {
        printf("wallet       available %lld cents (bonus %lld), held %lld cents\n",
               (long long)ov->wallet->available_cents, (long long)ov->wallet->bonus_available_cents,
               (long long)ov->wallet->held_cents);
    }
    printf("coupons      %zu usable%s\n", ov->n_coupons, ov->coupons_more ? " (and more)" : "");
    if (ov->referral_code[0]) {
        printf("referral     code %s\n", ov->referral_code);
    }
    if (d->stats != NULL) {
        printf("orders       %lld, spend %lld cents, last %s, segment %s\n",
               (long long)d->stats->order_count, (long long)d->stats->total_spend_cents,
               ctl_time(d->stats->last_order_at, b1),
               ctl_enum_name(&loyalty__v1__member_segment__descriptor, d->stats->segment, b2));
    }
    for (size_t i = 0; i < ov->n_unavailable; i++) {
        printf("unavailable  %s\n", ov->unavailable[i]);
    }
    printf("\nTIER HISTORY\n%-20s %-16s %-16s %s\n", "AT", "FROM", "TO", "REASON");
    for (size_t i = 0; i < d->n_tier_history; i++) {
        const Loyalty__V1__MemberTierChange *t = d->tier_history[i];
        printf("%-20s %-16s %-16s %s\n", ctl_time(t->at, b1),
               t->from_tier && t->from_tier->name[0] ? t->from_tier->name : "-",
               t->to_tier && t->to_tier->name[0] ? t->to_tier->name : "-",
               ctl_enum_name(&loyalty__v1__member_tier_change_reason__descriptor, t->reason, b2));
    }
    printf("\nRECENT ORDERS\n%-20s %-24s %-10s %-16s %s\n", "CREATED", "ORDER", "KIND", "STATE",
           "SAGA");
    for (size_t i = 0; i < d->n_recent_orders; i++) {
        const Loyalty__V1__GatewaySaga *s = d->recent_orders[i];
        char kb[24], sb[24];
        printf("%-20s %-24s %-10s %-16s %s\n", ctl_time(s->created_at, b1),
               s->order_id[0] ? s->order_id : "-",
               ctl_enum_name(&loyalty__v1__gateway_saga_kind__descriptor, s->kind, kb),
               ctl_enum_name(&loyalty__v1__gateway_saga_state__descriptor, s->state, sb), s->id);
    }
}

int ctl_cmd_member_show(ctl_t *c, const ctl_command_t *cmd, const ctl_args_t *a) {
    const char *who = a->positional[0];
    ProtobufCMessage *out = NULL;
    int code = 0, rc;
    if (a->by != NULL) {
        lookup_t by;
        if (strcmp(a->by, "id") == 0) {
            by = BY_ID;
        } else if (strcmp(a->by, "phone") == 0) {
            by = BY_PHONE;
        } else if (strcmp(a->by, "external-id") == 0) {
            by = BY_EXTERNAL_ID;
        } else {
            return ctl_usage_error(cmd, "--by takes id, phone or external-id, not %s", a->by);
        }
        rc = get_detail(c, cmd, a->merchant, by, who, false, &out, &code);
    } else if (who[0] == '+') {
        rc = get_detail(c, cmd, a->merchant, BY_PHONE, who, false, &out, &code);
    } else {
        /* A member id, else an external id (an external id need not look like an id). */
        rc = get_detail(c, cmd, a->merchant, BY_ID, who, true, &out, &code);
        if (rc != CTL_EXIT_OK && (code == STATUS_NOT_FOUND || code == STATUS_INVALID_ARGUMENT)) {
            rc = get_detail(c, cmd, a->merchant, BY_EXTERNAL_ID, who, false, &out, &code);
        } else if (rc != CTL_EXIT_OK) {
            /* Refused for another reason: ask again aloud, so that it is reported. */
            rc = get_detail(c, cmd, a->merchant, BY_ID, who, false, &out, &code);
        }
    }
    if (rc != CTL_EXIT_OK) {
        return rc;
    }
    if (c->json) {
        ctl_print_json(out);
    } else {
        print_detail((const void *)out);
    }
    return CTL_EXIT_OK;
}
