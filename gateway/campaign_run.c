/* campaign_run.c -- running one campaign for one merchant: find the members it targets
 * (member-svc ListMembers, points-svc for expiring points), and for each one claim the
 * (campaign, period, member) delivery, issue the rewards with idempotency keys derived from it,
 * and write the message through the outbox in the transaction that marks the delivery done.
 * See campaign.proto for the periods and the at-most-once argument. */
#include "campaign_run.h"

#include "campaign_store.h"
#include "cursor.h"
#include "gateway_store.h"
#include "jsonw.h"
#include "log.h"
#include "loyalty/v1/member.pb-c.h"
#include "loyalty/v1/points.pb-c.h"
#include "loyalty/v1/promo.pb-c.h"
#include "metrics.h"
#include "outbox.h"
#include "pb.h"
#include "rpc_client.h"
#include "validate.h"

#include <stdio.h>
#include <string.h>

#define CAMPAIGN_PAGE_SIZE 200
#define CAMPAIGN_CLAIM_LEASE_S 300
#define CAMPAIGN_WINDOW_DAYS 30 /* how far back threshold crossings are looked for */
#define CAMPAIGN_TIERS_MAX 16

typedef enum skip_reason {
    SKIP_ALREADY_DONE,
    SKIP_IN_PROGRESS,
    SKIP_NO_ADDRESS,
    SKIP_NOT_ELIGIBLE,
    SKIP_REWARD_FAILED,
    SKIP_COUNT,
} skip_reason_t;

static const char *const skip_names[SKIP_COUNT] = {"ALREADY_DONE", "IN_PROGRESS", "NO_ADDRESS",
                                                   "NOT_ELIGIBLE", "REWARD_FAILED"};

/* Metrics of the runs that write (dry runs change nothing and count nowhere);
 * docs/architecture.md#metrics. */
static metrics_family_t campaign_runs = METRICS_COUNTER(
    "loyalty_campaign_runs_total", "Campaign runs (scheduled or RunCampaign), dry runs excluded.");
static metrics_family_t campaign_deliveries =
    METRICS_COUNTER("loyalty_campaign_deliveries_total",
                    "Campaign deliveries done: a member's rewards issued and, when the member "
                    "has an address, the message written.");
static metrics_family_t campaign_skips =
    METRICS_COUNTER("loyalty_campaign_skips_total",
                    "Members a campaign run targeted but did not deliver to, by reason.", "reason");

void campaign_metrics_register(void) {
    metrics_register(&campaign_runs);
    metrics_register(&campaign_deliveries);
    for (int i = 0; i < SKIP_COUNT; i++) { /* every reason from the start, at 0 */
        (void)metrics_series(&campaign_skips, (const char *[]){skip_names[i]});
    }
}

typedef struct campaign_run campaign_run_t;
typedef void (*member_visit_fn)(campaign_run_t *run, arena_t *a,
                                const Loyalty__V1__MemberListItem *item);

struct campaign_run {
    rpc_ctx_t *ctx;
    const Loyalty__V1__Campaign *c;
    const char *merchant_id;
    int64_t at;
    bool dry_run;
    char local_date[11];
    rpc_channel_t *member, *points, *promo;
    Loyalty__V1__CampaignRunResult *res;
    int64_t skips[SKIP_COUNT];
    /* BIRTHDAY with tier_birthday_points: the tiers' bonus points by tier id. */
    char tier_ids[CAMPAIGN_TIERS_MAX][64];
    int64_t tier_points[CAMPAIGN_TIERS_MAX];
    int tier_count;
    member_visit_fn member_visit; /* the visitor of the member list being paged */
};

/* What one member is offered in one period. */
typedef struct offer {
    const Loyalty__V1__Member *member;
    const char *period;
    int64_t points;
    const char *tier_name;
    const char *expiry_date; /* POINTS_EXPIRY_REMINDER */
    int64_t expiring_points; /* POINTS_EXPIRY_REMINDER */
} offer_t;

static Loyalty__V1__PromoCouponSource coupon_source(Loyalty__V1__CampaignKind kind) {
    switch (kind) {
    case LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_BIRTHDAY:
        return LOYALTY__V1__PROMO_COUPON_SOURCE__PROMO_COUPON_SOURCE_BIRTHDAY;
    case LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_WELCOME_SERIES:
        return LOYALTY__V1__PROMO_COUPON_SOURCE__PROMO_COUPON_SOURCE_WELCOME;
    case LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_WIN_BACK:
    case LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_RE_ENGAGE:
        return LOYALTY__V1__PROMO_COUPON_SOURCE__PROMO_COUPON_SOURCE_WIN_BACK;
    default:
        return LOYALTY__V1__PROMO_COUPON_SOURCE__PROMO_COUPON_SOURCE_MANUAL;
    }
}

static const char *recipient_of(const campaign_run_t *run, const Loyalty__V1__Member *m) {
    const Loyalty__V1__MemberProfile *p = m->profile;
    if (p == NULL) {
        return "";
    }
    return run->c->channel == LOYALTY__V1__CAMPAIGN_CHANNEL__CAMPAIGN_CHANNEL_EMAIL ? p->email
                                                                                    : p->phone;
}

/* Tells member-svc the member's points balance after the campaign's points (its points_balance
 * tag rules), keyed by the delivery like the points. Best effort: a failure leaves the tag to the
 * member's next points change and does not hold the delivery back. */
static void campaign_record_balance(campaign_run_t *run, arena_t *a, const offer_t *o,
                                    const Loyalty__V1__PointsBalance *balance) {
    if (balance == NULL) {
        return;
    }
    Loyalty__V1__MemberRecordPointsBalanceRequest req =
        LOYALTY__V1__MEMBER_RECORD_POINTS_BALANCE_REQUEST__INIT;
    req.merchant_id = (char *)run->merchant_id;
    req.idempotency_key =
        campaign_reward_key(a, run->c->kind, o->period, o->member->id, "points_balance");
    req.member_id = (char *)o->member->id;
    req.points_balance = balance->available;
    req.points_balance_version = balance->version;
    status_t st = rpc_call(run->member, &loyalty__v1__member_service__descriptor,
                           "RecordPointsBalance", &req.base, a, NULL, NULL);
    if (!status_is_ok(&st)) {
        log_msg(LOG_WARN, "campaign %s: member-svc did not take %s's points balance: %s",
                campaign_kind_name(run->c->kind), o->member->id, st.message);
    }
}

/* Issues the offer's points and coupon with keys derived from the delivery, so that a runner
 * taking the delivery over after a crash gets the same answers and issues nothing twice. */
static status_t campaign_issue(campaign_run_t *run, arena_t *a, const offer_t *o,
                               Loyalty__V1__PromoCoupon **coupon) {
    const Loyalty__V1__Campaign *c = run->c;
    const char *member_id = o->member->id;
    *coupon = NULL;
    if (o->points > 0) {
        Loyalty__V1__PointsEarnRequest req = LOYALTY__V1__POINTS_EARN_REQUEST__INIT;
        req.merchant_id = (char *)run->merchant_id;
        req.idempotency_key = campaign_reward_key(a, c->kind, o->period, member_id, "points");
        req.member_id = (char *)member_id;
        req.source = LOYALTY__V1__POINTS_SOURCE__POINTS_SOURCE_PROMOTION;
        /* points-svc keeps one grant per (source, reference): the member is part of it. */
        req.reference =
            arena_printf(a, "campaign:%s:%s:%s", campaign_kind_name(c->kind), o->period, member_id);
        req.amount_case = LOYALTY__V1__POINTS_EARN_REQUEST__AMOUNT_POINTS;
        req.points = o->points;
        req.note = arena_printf(a, "%s campaign", campaign_kind_name(c->kind));
        char expiry[11];
        if (c->reward->points_valid_days > 0 &&
            campaign_date_add_days(run->local_date, c->reward->points_valid_days, expiry)) {
            req.expiry_date = arena_strdup(a, expiry);
        }
        ProtobufCMessage *earned = NULL;
        status_t st = rpc_call(run->points, &loyalty__v1__points_service__descriptor, "Earn",
                               &req.base, a, &earned, NULL);
        if (!status_is_ok(&st)) {
            return st;
        }
        run->res->points_given += o->points;
        campaign_record_balance(run, a, o, ((Loyalty__V1__PointsEarnResponse *)earned)->balance);
    }
    if (c->reward && c->reward->coupon_template_id[0]) {
        Loyalty__V1__PromoIssueCouponRequest req = LOYALTY__V1__PROMO_ISSUE_COUPON_REQUEST__INIT;
        req.merchant_id = (char *)run->merchant_id;
        req.idempotency_key = campaign_reward_key(a, c->kind, o->period, member_id, "coupon");
        req.member_id = (char *)member_id;
        req.template_id = c->reward->coupon_template_id;
        req.source = coupon_source(c->kind);
        ProtobufCMessage *resp = NULL;
        status_t st = rpc_call(run->promo, &loyalty__v1__promo_service__descriptor, "IssueCoupon",
                               &req.base, a, &resp, NULL);
        if (!status_is_ok(&st)) {
            return st;
        }
        *coupon = ((Loyalty__V1__PromoIssueCouponResponse *)resp)->coupon;
        run->res->coupons_issued++;
    }
    return status_ok();
}

typedef struct finish_arg {
    campaign_run_t *run;
    const offer_t *o;
    const char *recipient;
    const char *text;
    const char *coupon_id;
    const char *message_key;
} finish_arg_t;

/* Marks the delivery DONE and writes its message to the outbox: one transaction, so the
 * message exists exactly when the delivery is done. */
static status_t campaign_finish_tx(db_t *db, void *p) {
    finish_arg_t *f = p;
    campaign_run_t *run = f->run;
    char event_id[ID_MAX] = "";
    if (f->recipient[0]) {
        char payload[OUTBOX_PAYLOAD_MAX];
        jsonw_t w;
        jsonw_begin(&w, payload, sizeof payload);
        jsonw_str(&w, "merchant_id", run->merchant_id);
        jsonw_str(&w, "member_id", f->o->member->id);
        jsonw_str(&w, "channel", campaign_channel_name(run->c->channel));
        jsonw_str(&w, "recipient", f->recipient);
        jsonw_str(&w, "text", f->text);
        jsonw_str(&w, "campaign", campaign_kind_name(run->c->kind));
        jsonw_str(&w, "period", f->o->period);
        jsonw_str(&w, "idempotency_key", f->message_key);
        jsonw_end(&w);
        char type[40];
        snprintf(type, sizeof type, "notification.%s", campaign_channel_name(run->c->channel));
        status_t st = outbox_emit(run->ctx, run->merchant_id, OUTBOX_NOTIFICATIONS_STREAM, type,
                                  f->o->member->id, payload, event_id);
        if (!status_is_ok(&st)) {
            return st;
        }
    }
    return campaign_store_finish(db, run->merchant_id, run->c->kind, f->o->period, f->o->member->id,
                                 f->o->points, f->coupon_id, event_id,
                                 f->recipient[0] ? "" : "NO_ADDRESS");
}

static void campaign_format_date(int64_t at, char out[11]) {
    if (at <= 0) {
        out[0] = '\0';
        return;
    }
    int y, m, d;
    date_civil_from_days(at / 86400, &y, &m, &d);
    snprintf(out, 11, "%04d-%02d-%02d", y, m, d);
}

/* One member: claim, issue, message, done. Counts into run->res. */
static void campaign_deliver(campaign_run_t *run, arena_t *a, const offer_t *o) {
    Loyalty__V1__CampaignRunResult *res = run->res;
    const Loyalty__V1__Campaign *c = run->c;
    res->targeted++;
    const char *recipient = recipient_of(run, o->member);
    campaign_claim_t claim;
    status_t st = run->dry_run
                      ? campaign_store_peek(run->ctx->db, run->merchant_id, c->kind, o->period,
                                            o->member->id, &claim)
                      : campaign_store_claim(run->ctx->db, run->merchant_id, c->kind, o->period,
                                             o->member->id, CAMPAIGN_CLAIM_LEASE_S, &claim);
    if (!status_is_ok(&st) || claim != CAMPAIGN_CLAIMED) {
        run->skips[status_is_ok(&st) && claim == CAMPAIGN_ALREADY_DONE ? SKIP_ALREADY_DONE
                                                                       : SKIP_IN_PROGRESS]++;
        return;
    }
    bool rewarding = o->points > 0 || (c->reward && c->reward->coupon_template_id[0]);
    if (run->dry_run) {
        res->rewarded += rewarding;
        if (recipient[0]) {
            res->messaged++;
        } else {
            run->skips[SKIP_NO_ADDRESS]++;
        }
        return;
    }
    Loyalty__V1__PromoCoupon *coupon = NULL;
    st = campaign_issue(run, a, o, &coupon);
    if (!status_is_ok(&st)) {
        /* The claim runs out and a later run tries again with the same keys. */
        log_msg(LOG_WARN, "campaign %s: reward for %s failed: %s %s", campaign_kind_name(c->kind),
                o->member->id, status_code_name(st.code), st.message);
        run->skips[SKIP_REWARD_FAILED]++;
        return;
    }
    char points_text[24], expiring_text[24], coupon_expires[11];
    snprintf(points_text, sizeof points_text, "%lld", (long long)o->points);
    snprintf(expiring_text, sizeof expiring_text, "%lld", (long long)o->expiring_points);
    campaign_format_date(coupon ? coupon->valid_until_at : 0, coupon_expires);
    campaign_vars_t vars = {
        .name = o->member->profile ? o->member->profile->name : "",
        .points = points_text,
        .coupon_code = coupon ? (coupon->code[0] ? coupon->code : coupon->id) : "",
        .coupon_expires = coupon_expires,
        .expiry_date = o->expiry_date,
        .expiring_points = expiring_text,
        .tier = o->tier_name,
    };
    finish_arg_t f = {
        .run = run,
        .o = o,
        .recipient = recipient,
        .text = campaign_render(a, c->message_template, &vars),
        .coupon_id = coupon ? coupon->id : "",
        .message_key = campaign_reward_key(a, c->kind, o->period, o->member->id, "message"),
    };
    st = db_tx(run->ctx->db, campaign_finish_tx, &f);
    if (!status_is_ok(&st)) {
        log_msg(LOG_WARN, "campaign %s: cannot finish %s: %s %s", campaign_kind_name(c->kind),
                o->member->id, status_code_name(st.code), st.message);
        run->skips[st.code == STATUS_NOT_FOUND ? SKIP_ALREADY_DONE : SKIP_IN_PROGRESS]++;
        return;
    }
    metrics_inc(&campaign_deliveries, NULL);
    res->rewarded += rewarding;
    if (recipient[0]) {
        res->messaged++;
    } else {
        run->skips[SKIP_NO_ADDRESS]++;
    }
}

/* ---- targeting ---- */

static const Loyalty__V1__Member *member_profile(campaign_run_t *run, arena_t *a,
                                                 const char *member_id);

/* One List RPC to page through: the request (whose `page` field campaign_pages sets for every
 * call) and what to do with each page's answer. */
typedef struct pager {
    rpc_channel_t *channel;
    const ProtobufCServiceDescriptor *service;
    const char *method;
    ProtobufCMessage *request;
    Loyalty__V1__PageRequest **page; /* the request's page field */
    void (*visit)(campaign_run_t *run, arena_t *a, const ProtobufCMessage *resp);
} pager_t;

/* Calls the List RPC page after page (one arena per page) until its page_info has no next
 * cursor; a failed call stops the run with its status. */
static status_t campaign_pages(campaign_run_t *run, const pager_t *pg) {
    char cursor[CURSOR_MAX + 1] = "";
    for (;;) {
        arena_t a;
        arena_init(&a);
        Loyalty__V1__PageRequest page = LOYALTY__V1__PAGE_REQUEST__INIT;
        page.page_size = CAMPAIGN_PAGE_SIZE;
        page.cursor = cursor;
        *pg->page = &page;
        ProtobufCMessage *resp = NULL;
        status_t st = rpc_call(pg->channel, pg->service, pg->method, pg->request, &a, &resp, NULL);
        if (!status_is_ok(&st)) {
            arena_free(&a);
            return st;
        }
        pg->visit(run, &a, resp);
        const Loyalty__V1__PageInfo *info =
            (const Loyalty__V1__PageInfo *)pb_get_message_field(resp, "page_info");
        const char *next = info ? info->next_cursor : "";
        bool more = next[0] != '\0' && strlen(next) <= CURSOR_MAX;
        if (more) {
            snprintf(cursor, sizeof cursor, "%s", next);
        }
        arena_free(&a);
        if (!more) {
            return status_ok();
        }
    }
}

static void visit_member_page(campaign_run_t *run, arena_t *a, const ProtobufCMessage *resp) {
    const Loyalty__V1__MemberListResponse *list = (const void *)resp;
    for (size_t i = 0; i < list->n_members; i++) {
        run->member_visit(run, a, list->members[i]);
    }
}

/* Pages through ListMembers with `filter` (narrowed to the campaign's tag, if it has one),
 * calling visit for every member. */
static status_t campaign_for_each_member(campaign_run_t *run,
                                         const Loyalty__V1__MemberListFilter *filter,
                                         member_visit_fn visit) {
    Loyalty__V1__MemberListFilter f = *filter;
    if (run->c->tag != NULL && run->c->tag[0] != '\0') {
        f.tag = run->c->tag;
    }
    Loyalty__V1__MemberListRequest req = LOYALTY__V1__MEMBER_LIST_REQUEST__INIT;
    req.merchant_id = (char *)run->merchant_id;
    req.filter = &f;
    run->member_visit = visit;
    pager_t pg = {run->member,   &loyalty__v1__member_service__descriptor,
                  "ListMembers", &req.base,
                  &req.page,     visit_member_page};
    return campaign_pages(run, &pg);
}

static const char *tier_name_of(const Loyalty__V1__MemberListItem *item) {
    return item->tier ? item->tier->name : "";
}

static void visit_birthday(campaign_run_t *run, arena_t *a,
                           const Loyalty__V1__MemberListItem *item) {
    const Loyalty__V1__Member *m = item->member;
    if (m == NULL || m->profile == NULL ||
        !campaign_birthday_matches(m->profile->birthday, run->local_date,
                                   run->c->birthday_timing)) {
        return; /* the filter is wider than the rule only on Feb 28 of common years */
    }
    int64_t points = run->c->reward ? run->c->reward->points : 0;
    if (run->c->reward && run->c->reward->tier_birthday_points && item->tier) {
        for (int i = 0; i < run->tier_count; i++) {
            if (strcmp(run->tier_ids[i], item->tier->id) == 0) {
                points += run->tier_points[i];
            }
        }
    }
    char year[5];
    snprintf(year, sizeof year, "%.4s", run->local_date);
    offer_t o = {.member = m,
                 .period = arena_strdup(a, year),
                 .points = points,
                 .tier_name = tier_name_of(item)};
    campaign_deliver(run, a, &o);
}

static int64_t fixed_points(const campaign_run_t *run) {
    return run->c->reward ? run->c->reward->points : 0;
}

static void visit_welcome(campaign_run_t *run, arena_t *a,
                          const Loyalty__V1__MemberListItem *item) {
    if (item->member == NULL || (item->stats && item->stats->order_count > 0)) {
        return;
    }
    offer_t o = {.member = item->member,
                 .period = "once",
                 .points = fixed_points(run),
                 .tier_name = tier_name_of(item)};
    campaign_deliver(run, a, &o);
}

/* One inactivity episode, whichever way the member qualified: the last order's instant, or
 * with no order the segment episode, so a member qualifying twice is rewarded once. */
static void visit_win_back(campaign_run_t *run, arena_t *a,
                           const Loyalty__V1__MemberListItem *item) {
    if (item->member == NULL) {
        return;
    }
    const Loyalty__V1__MemberStats *s = item->stats;
    const char *period =
        s && s->last_order_at > 0
            ? arena_printf(a, "order:%lld", (long long)s->last_order_at)
            : arena_printf(a, "segment:%lld", (long long)(s ? s->segment_since_at : 0));
    offer_t o = {.member = item->member,
                 .period = period,
                 .points = fixed_points(run),
                 .tier_name = tier_name_of(item)};
    campaign_deliver(run, a, &o);
}

static void visit_re_engage(campaign_run_t *run, arena_t *a,
                            const Loyalty__V1__MemberListItem *item) {
    if (item->member == NULL) {
        return;
    }
    char month[8];
    campaign_month_of(run->local_date, month);
    offer_t o = {.member = item->member,
                 .period = arena_strdup(a, month),
                 .points = fixed_points(run),
                 .tier_name = tier_name_of(item)};
    campaign_deliver(run, a, &o);
}

static status_t campaign_load_tiers(campaign_run_t *run) {
    arena_t a;
    arena_init(&a);
    Loyalty__V1__MemberListTiersRequest req = LOYALTY__V1__MEMBER_LIST_TIERS_REQUEST__INIT;
    req.merchant_id = (char *)run->merchant_id;
    ProtobufCMessage *resp = NULL;
    status_t st = rpc_call(run->member, &loyalty__v1__member_service__descriptor, "ListTiers",
                           &req.base, &a, &resp, NULL);
    if (status_is_ok(&st)) {
        const Loyalty__V1__MemberListTiersResponse *t = (const void *)resp;
        for (size_t i = 0; i < t->n_tiers && run->tier_count < CAMPAIGN_TIERS_MAX; i++) {
            snprintf(run->tier_ids[run->tier_count], sizeof run->tier_ids[0], "%s",
                     t->tiers[i]->id);
            run->tier_points[run->tier_count++] = t->tiers[i]->birthday_bonus_points;
        }
    }
    arena_free(&a);
    return st;
}

static status_t run_birthday(campaign_run_t *run) {
    Loyalty__V1__MemberListFilter f = LOYALTY__V1__MEMBER_LIST_FILTER__INIT;
    int y = 0, m = 0, d = 0;
    sscanf(run->local_date, "%d-%d-%d", &y, &m, &d);
    f.birthday_month = m;
    bool feb28_common = m == 2 && d == 28 && date_days_in_month(y, 2) == 28;
    if (run->c->birthday_timing ==
            LOYALTY__V1__CAMPAIGN_BIRTHDAY_TIMING__CAMPAIGN_BIRTHDAY_TIMING_ON_DAY &&
        !feb28_common) {
        f.birthday_day = d;
    }
    if (run->c->reward && run->c->reward->tier_birthday_points) {
        status_t st = campaign_load_tiers(run);
        if (!status_is_ok(&st)) {
            return st;
        }
    }
    return campaign_for_each_member(run, &f, visit_birthday);
}

static status_t run_welcome(campaign_run_t *run) {
    Loyalty__V1__MemberListFilter f = LOYALTY__V1__MEMBER_LIST_FILTER__INIT;
    int64_t days = run->c->welcome_reminder_days;
    f.registered_from_at = run->at - (days + CAMPAIGN_WINDOW_DAYS) * 86400;
    f.registered_to_at = run->at - days * 86400;
    return campaign_for_each_member(run, &f, visit_welcome);
}

static status_t run_by_segments(campaign_run_t *run, member_visit_fn visit) {
    for (size_t i = 0; i < run->c->n_segments; i++) {
        Loyalty__V1__MemberListFilter f = LOYALTY__V1__MEMBER_LIST_FILTER__INIT;
        f.segment = run->c->segments[i];
        status_t st = campaign_for_each_member(run, &f, visit);
        if (!status_is_ok(&st)) {
            return st;
        }
    }
    return status_ok();
}

static status_t run_win_back(campaign_run_t *run) {
    if (run->c->inactive_days > 0) {
        Loyalty__V1__MemberListFilter f = LOYALTY__V1__MEMBER_LIST_FILTER__INIT;
        int64_t days = run->c->inactive_days;
        f.last_order_from_at = run->at - (days + CAMPAIGN_WINDOW_DAYS) * 86400;
        f.last_order_to_at = run->at - days * 86400;
        status_t st = campaign_for_each_member(run, &f, visit_win_back);
        if (!status_is_ok(&st)) {
            return st;
        }
    }
    return run_by_segments(run, visit_win_back);
}

/* One member holding expiring points: the profile comes from member-svc (the reminder needs a
 * name and an address); the period is the soonest expiry date, so a member is reminded once per
 * date however often the campaign runs. */
static void deliver_expiring(campaign_run_t *run, arena_t *a,
                             const Loyalty__V1__PointsExpiringBalance *b) {
    const Loyalty__V1__Member *m = member_profile(run, a, b->member_id);
    if (m == NULL) {
        return; /* points of someone member-svc does not know */
    }
    offer_t o = {.member = m,
                 .period = arena_strdup(a, b->expiry_date),
                 .points = fixed_points(run),
                 .tier_name = "",
                 .expiry_date = b->expiry_date,
                 .expiring_points = b->points};
    campaign_deliver(run, a, &o);
}

static void visit_expiring_page(campaign_run_t *run, arena_t *a, const ProtobufCMessage *resp) {
    const Loyalty__V1__PointsListExpiringResponse *list = (const void *)resp;
    for (size_t i = 0; i < list->n_balances; i++) {
        deliver_expiring(run, a, list->balances[i]);
    }
}

static status_t run_expiry_reminder(campaign_run_t *run) {
    Loyalty__V1__PointsListExpiringRequest req = LOYALTY__V1__POINTS_LIST_EXPIRING_REQUEST__INIT;
    req.merchant_id = (char *)run->merchant_id;
    req.from_at = run->at;
    req.to_at = run->at + (int64_t)run->c->expiring_within_days * 86400;
    pager_t pg = {run->points,
                  &loyalty__v1__points_service__descriptor,
                  "ListExpiringPoints",
                  &req.base,
                  &req.page,
                  visit_expiring_page};
    return campaign_pages(run, &pg);
}

/* The member's profile from member-svc, or NULL (counted NOT_ELIGIBLE) when it has none. */
static const Loyalty__V1__Member *member_profile(campaign_run_t *run, arena_t *a,
                                                 const char *member_id) {
    Loyalty__V1__GetMemberRequest req = LOYALTY__V1__GET_MEMBER_REQUEST__INIT;
    req.merchant_id = (char *)run->merchant_id;
    req.lookup_case = LOYALTY__V1__GET_MEMBER_REQUEST__LOOKUP_MEMBER_ID;
    req.member_id = (char *)member_id;
    ProtobufCMessage *resp = NULL;
    status_t st = rpc_call(run->member, &loyalty__v1__member_service__descriptor, "GetMember",
                           &req.base, a, &resp, NULL);
    if (!status_is_ok(&st)) {
        run->skips[SKIP_NOT_ELIGIBLE]++;
        return NULL;
    }
    return ((Loyalty__V1__GetMemberResponse *)resp)->member;
}

static void visit_tier_change_page(campaign_run_t *run, arena_t *a, const ProtobufCMessage *resp) {
    const Loyalty__V1__MemberListTierChangesResponse *list = (const void *)resp;
    for (size_t i = 0; i < list->n_changes; i++) {
        const Loyalty__V1__MemberTierChange *ch = list->changes[i];
        if (!campaign_rules_is_promotion(ch)) {
            continue;
        }
        const Loyalty__V1__Member *m = member_profile(run, a, ch->member_id);
        if (m == NULL) {
            continue;
        }
        offer_t o = {.member = m,
                     .period = arena_printf(a, "tier:%s", ch->id),
                     .points = fixed_points(run),
                     .tier_name = ch->to_tier->name};
        campaign_deliver(run, a, &o);
    }
}

/* Upgrades (to a higher rank) of the last CAMPAIGN_WINDOW_DAYS, one delivery per change. */
static status_t run_tier_promotion(campaign_run_t *run) {
    Loyalty__V1__MemberListTierChangesRequest req =
        LOYALTY__V1__MEMBER_LIST_TIER_CHANGES_REQUEST__INIT;
    req.merchant_id = (char *)run->merchant_id;
    req.from_at = run->at - CAMPAIGN_WINDOW_DAYS * 86400;
    req.to_at = run->at;
    pager_t pg = {run->member,       &loyalty__v1__member_service__descriptor,
                  "ListTierChanges", &req.base,
                  &req.page,         visit_tier_change_page};
    return campaign_pages(run, &pg);
}

status_t campaign_run(rpc_ctx_t *ctx, const Loyalty__V1__Campaign *c, int64_t at, bool dry_run,
                      Loyalty__V1__CampaignRunResult *res) {
    campaign_run_t run = {
        .ctx = ctx,
        .c = c,
        .merchant_id = c->merchant_id,
        .at = at,
        .dry_run = dry_run,
        .member = rpc_channel_get(ctx->config->member_svc_addr),
        .points = rpc_channel_get(ctx->config->points_svc_addr),
        .promo = rpc_channel_get(ctx->config->promo_svc_addr),
        .res = res,
    };
    /* The merchant settings record's time zone wins over the campaign's own once it is set
     * (docs/architecture.md#merchant-settings). */
    const char *tz = NULL;
    status_t st = gw_store_merchant_time_zone(ctx->db, ctx->arena, c->merchant_id,
                                              c->time_zone[0] ? c->time_zone : "UTC", &tz);
    if (status_is_ok(&st)) {
        st = campaign_store_local_date(ctx->db, at, tz, run.local_date);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    res->kind = c->kind;
    res->at = at;
    res->local_date = arena_strdup(ctx->arena, run.local_date);
    res->dry_run = dry_run;
    switch (c->kind) {
    case LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_BIRTHDAY:
        st = run_birthday(&run);
        break;
    case LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_WELCOME_SERIES:
        st = run_welcome(&run);
        break;
    case LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_WIN_BACK:
        st = run_win_back(&run);
        break;
    case LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_RE_ENGAGE:
        st = run_by_segments(&run, visit_re_engage);
        break;
    case LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_POINTS_EXPIRY_REMINDER:
        st = run_expiry_reminder(&run);
        break;
    case LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_TIER_PROMOTION:
        st = run_tier_promotion(&run);
        break;
    default:
        st = status_invalid_field("kind", "unknown campaign kind %d", (int)c->kind);
        break;
    }
    if (!dry_run) {
        metrics_inc(&campaign_runs, NULL);
        for (int i = 0; i < SKIP_COUNT; i++) {
            metrics_series_add(metrics_series(&campaign_skips, (const char *[]){skip_names[i]}),
                               (uint64_t)run.skips[i]);
        }
    }
    /* Counts are reported even when the run stopped early (a dependency down). */
    size_t kinds = 0;
    for (int i = 0; i < SKIP_COUNT; i++) {
        kinds += run.skips[i] > 0;
        res->skipped += run.skips[i];
    }
    res->skipped_by_reason = arena_alloc(ctx->arena, (kinds ? kinds : 1) * sizeof(void *));
    for (int i = 0; i < SKIP_COUNT; i++) {
        if (run.skips[i] > 0) {
            Loyalty__V1__CampaignSkipCount *s =
                pb_new(ctx->arena, &loyalty__v1__campaign_skip_count__descriptor);
            s->reason = (char *)skip_names[i];
            s->count = run.skips[i];
            res->skipped_by_reason[res->n_skipped_by_reason++] = s;
        }
    }
    return st;
}
