/* referral_rpc.c -- ReferralService handlers: validate the request, apply the rules, call the
 * store, fill the response. Mutating handlers run in one transaction (the runtime's RPC_MUTATE)
 * and may be re-run on a conflict, so they act on PostgreSQL only. */
#include "referral_rpc.h"

#include "cursor.h"
#include "ids.h"
#include "jsonw.h"
#include "outbox.h"
#include "pb.h"
#include "referral_rules.h"
#include "referral_store.h"
#include "validate.h"

#include <string.h>

static status_t check_member_id(const char *field, const char *value) {
    return validate_token(field, value, REFERRAL_MEMBER_ID_MAX);
}

static status_t code_not_found(void) {
    return status_make(STATUS_NOT_FOUND, REASON_CODE_NOT_FOUND, "no such referral code");
}

/* ---- programme ---- */

static status_t rpc_set_program(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                ProtobufCMessage *resp_msg) {
    const Loyalty__V1__ReferralSetProgramRequest *req = (const void *)req_msg;
    Loyalty__V1__ReferralSetProgramResponse *resp = (void *)resp_msg;
    Loyalty__V1__ReferralProgram norm = LOYALTY__V1__REFERRAL_PROGRAM__INIT;
    status_t st = referral_rules_check_program(ctx->arena, req->program, &norm);
    if (!status_is_ok(&st)) {
        return st;
    }
    bool has_expected =
        req->_expected_version_case ==
        LOYALTY__V1__REFERRAL_SET_PROGRAM_REQUEST___EXPECTED_VERSION_EXPECTED_VERSION;
    return referral_store_program_put(ctx->db, ctx->arena, ctx->merchant_id, &norm, has_expected,
                                      req->expected_version, ctx->now_s, &resp->program);
}

static status_t rpc_get_program(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                ProtobufCMessage *resp_msg) {
    Loyalty__V1__ReferralGetProgramResponse *resp = (void *)resp_msg;
    return referral_store_program_get(ctx->db, ctx->arena, ctx->merchant_id, &resp->program);
}

/* ---- codes ---- */

static status_t rpc_get_code(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                             ProtobufCMessage *resp_msg) {
    const Loyalty__V1__ReferralGetCodeRequest *req = (const void *)req_msg;
    Loyalty__V1__ReferralGetCodeResponse *resp = (void *)resp_msg;
    status_t st = check_member_id("member_id", req->member_id);
    if (!status_is_ok(&st)) {
        return st;
    }
    referral_member_row_t row;
    st = referral_store_member_ensure(ctx->db, ctx->arena, ctx->merchant_id, req->member_id,
                                      ctx->now_s, &row);
    if (!status_is_ok(&st)) {
        return st;
    }
    Loyalty__V1__ReferralProgram *prog = NULL;
    st = referral_store_program_get(ctx->db, ctx->arena, ctx->merchant_id, &prog);
    if (!status_is_ok(&st)) {
        return st;
    }
    resp->member_id = row.member_id;
    resp->code = row.code;
    resp->links = pb_new(ctx->arena, &loyalty__v1__referral_share_links__descriptor);
    referral_share_links(ctx->arena, prog->share_url_template, prog->share_message_template,
                         row.code, resp->links);
    return status_ok();
}

static status_t rpc_resolve_code(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                 ProtobufCMessage *resp_msg) {
    const Loyalty__V1__ReferralResolveCodeRequest *req = (const void *)req_msg;
    Loyalty__V1__ReferralResolveCodeResponse *resp = (void *)resp_msg;
    char code[REFERRAL_CODE_INPUT_MAX + 1];
    status_t st = referral_code_normalize("code", req->code, code);
    if (!status_is_ok(&st)) {
        return st;
    }
    referral_member_row_t owner;
    bool found = false;
    st = referral_store_member_by_code(ctx->db, ctx->arena, ctx->merchant_id, code, &owner, &found);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (!found) {
        return code_not_found();
    }
    resp->member_id = owner.member_id;
    resp->code = owner.code;
    return status_ok();
}

/* ---- the tree ---- */

/* The upline of a row as messages, level 1 first. */
static Loyalty__V1__ReferralAncestor **ancestors_of(arena_t *a, const char *const up[3],
                                                    size_t *n) {
    Loyalty__V1__ReferralAncestor **list = arena_alloc(a, REFERRAL_LEVELS_MAX * sizeof *list);
    *n = 0;
    for (int i = 0; i < REFERRAL_LEVELS_MAX && up[i][0]; i++) {
        Loyalty__V1__ReferralAncestor *anc = pb_new(a, &loyalty__v1__referral_ancestor__descriptor);
        anc->level = i + 1;
        anc->member_id = arena_strdup(a, up[i]);
        list[(*n)++] = anc;
    }
    return list;
}

static status_t rpc_attach(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                           ProtobufCMessage *resp_msg) {
    const Loyalty__V1__ReferralAttachRequest *req = (const void *)req_msg;
    Loyalty__V1__ReferralAttachResponse *resp = (void *)resp_msg;
    char code[REFERRAL_CODE_INPUT_MAX + 1];
    status_t st = check_member_id("referee_member_id", req->referee_member_id);
    if (status_is_ok(&st)) {
        st = referral_code_normalize("code", req->code, code);
    }
    Loyalty__V1__ReferralProgram *prog = NULL;
    if (status_is_ok(&st)) {
        st = referral_store_program_get(ctx->db, ctx->arena, ctx->merchant_id, &prog);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    if (!prog->enabled) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_PROGRAM_DISABLED,
                           "the referral programme is not enabled");
    }
    referral_member_row_t referrer, referee;
    bool found = false;
    st = referral_store_member_by_code(ctx->db, ctx->arena, ctx->merchant_id, code, &referrer,
                                       &found);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (!found) {
        return code_not_found();
    }
    referral_attach_plan_t plan;
    if (strcmp(referrer.member_id, req->referee_member_id) == 0) {
        referral_node_t self = referral_store_node(&referrer);
        return referral_rules_attach(&self, false, &self, &plan); /* SELF_REFERRAL */
    }
    st = referral_store_member_ensure(ctx->db, ctx->arena, ctx->merchant_id, req->referee_member_id,
                                      ctx->now_s, &referee);
    if (status_is_ok(&st)) {
        st = referral_store_lock_pair(ctx->db, ctx->arena, ctx->merchant_id, req->referee_member_id,
                                      referrer.member_id, &referee, &referrer);
    }
    bool has_downline = false;
    if (status_is_ok(&st)) {
        st = referral_store_has_downline(ctx->db, ctx->merchant_id, referee.member_id,
                                         &has_downline);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    referral_node_t ee = referral_store_node(&referee), er = referral_store_node(&referrer);
    st = referral_rules_attach(&ee, has_downline, &er, &plan);
    if (!status_is_ok(&st)) {
        return st;
    }
    char attach_id[ID_MAX];
    id_generate("att", attach_id);
    st = referral_store_attach(ctx->db, ctx->arena, ctx->merchant_id, referee.member_id, &plan,
                               attach_id, ctx->now_s);
    if (!status_is_ok(&st)) {
        return st;
    }
    resp->referee_member_id = referee.member_id;
    resp->referrer_member_id = referrer.member_id;
    resp->ancestors = ancestors_of(ctx->arena, plan.ancestors, &resp->n_ancestors);
    resp->attached_at = ctx->now_s;
    /* referral.attached for integrations, committed with the attachment itself. */
    char payload[512];
    jsonw_t w;
    jsonw_begin(&w, payload, sizeof payload);
    jsonw_str(&w, "referee_member_id", resp->referee_member_id);
    jsonw_str(&w, "referrer_member_id", resp->referrer_member_id);
    jsonw_str(&w, "attachment_id", attach_id);
    jsonw_int(&w, "levels", (int64_t)resp->n_ancestors);
    jsonw_int(&w, "attached_at", resp->attached_at);
    jsonw_end(&w);
    return outbox_emit(ctx, ctx->merchant_id, OUTBOX_EVENTS_STREAM, "referral.attached",
                       resp->referee_member_id, payload, NULL);
}

static status_t rpc_get_upline(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                               ProtobufCMessage *resp_msg) {
    const Loyalty__V1__ReferralGetUplineRequest *req = (const void *)req_msg;
    Loyalty__V1__ReferralGetUplineResponse *resp = (void *)resp_msg;
    status_t st = check_member_id("member_id", req->member_id);
    if (!status_is_ok(&st)) {
        return st;
    }
    referral_member_row_t row;
    bool found = false;
    st = referral_store_member_get(ctx->db, ctx->arena, ctx->merchant_id, req->member_id, false,
                                   &row, &found);
    if (!status_is_ok(&st) || !found) {
        return st; /* unknown to the programme: no upline */
    }
    const char *up[REFERRAL_LEVELS_MAX] = {row.referrer_id, row.ancestor_2, row.ancestor_3};
    resp->ancestors = ancestors_of(ctx->arena, up, &resp->n_ancestors);
    resp->attached_at = row.attached_at;
    return status_ok();
}

static status_t rpc_list_downline(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                  ProtobufCMessage *resp_msg) {
    const Loyalty__V1__ReferralListDownlineRequest *req = (const void *)req_msg;
    Loyalty__V1__ReferralListDownlineResponse *resp = (void *)resp_msg;
    status_t st = check_member_id("member_id", req->member_id);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (req->level < 1 || req->level > REFERRAL_LEVELS_MAX) {
        return status_invalid_field("level", "must be between 1 and %d", REFERRAL_LEVELS_MAX);
    }
    int32_t size = 0;
    char *after = "", *unused = "";
    st = cursor_page_size("page.page_size", req->page ? req->page->page_size : 0, PAGE_SIZE_MAX,
                          &size);
    if (status_is_ok(&st)) {
        st = cursor_decode(ctx->arena, "page.cursor", req->page ? req->page->cursor : "", &after,
                           &unused);
    }
    if (status_is_ok(&st)) {
        st = referral_store_level_counts(ctx->db, ctx->arena, ctx->merchant_id, req->member_id,
                                         &resp->level_counts);
        resp->n_level_counts = REFERRAL_LEVELS_MAX;
    }
    const char *next = "";
    if (status_is_ok(&st)) {
        st = referral_store_downline_page(ctx->db, ctx->arena, ctx->merchant_id, req->member_id,
                                          req->level, after, size, &resp->members, &resp->n_members,
                                          &next);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    resp->page_info = pb_new(ctx->arena, &loyalty__v1__page_info__descriptor);
    resp->page_info->next_cursor = next[0] ? cursor_encode(ctx->arena, next, "") : "";
    return status_ok();
}

/* ---- rewards ---- */

static status_t check_event(int event) {
    if (event != REFERRAL_EVENT_REGISTRATION && event != REFERRAL_EVENT_PURCHASE) {
        return status_invalid_field("event", "must be REGISTRATION or PURCHASE");
    }
    return status_ok();
}

static status_t check_compute_request(const Loyalty__V1__ReferralComputeRewardsRequest *req,
                                      int64_t now_s) {
    status_t st = check_event(req->event);
    if (status_is_ok(&st)) {
        st = check_member_id("member_id", req->member_id);
    }
    if (status_is_ok(&st)) {
        st = validate_token("reference", req->reference, REFERRAL_REFERENCE_MAX);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    bool purchase = req->event == REFERRAL_EVENT_PURCHASE;
    if (req->paid_cents < 0 || req->paid_cents > (purchase ? REFERRAL_PAID_CENTS_MAX : 0)) {
        return status_invalid_field("paid_cents", purchase ? "must be between 0 and 10^13"
                                                           : "must be 0 for a registration");
    }
    bool has_hold = req->_hold_until_case ==
                    LOYALTY__V1__REFERRAL_COMPUTE_REWARDS_REQUEST___HOLD_UNTIL_HOLD_UNTIL_AT;
    if (has_hold && (!purchase || req->hold_until_at < 0 ||
                     req->hold_until_at > now_s + REFERRAL_HOLD_AHEAD_MAX_S)) {
        return status_invalid_field("hold_until_at", "only for purchases, at most 366 days ahead");
    }
    return status_ok();
}

/* Records a new event and its rewards into `resp`. *recorded false: a concurrent call
 * recorded the same (event, reference) first, and the caller reads that one. */
static status_t record_event(rpc_ctx_t *ctx, const Loyalty__V1__ReferralComputeRewardsRequest *req,
                             const referral_event_reads_t *in,
                             Loyalty__V1__ReferralComputeRewardsResponse *resp, bool *recorded) {
    const Loyalty__V1__ReferralProgram *prog = in->program;
    const referral_member_row_t row = in->member;
    bool found = in->member_found;
    status_t st = status_ok();
    bool attached = found && row.referrer_id[0] != '\0';
    bool purchase = req->event == REFERRAL_EVENT_PURCHASE;
    if (attached && !purchase && row.registration_ref[0] != '\0') {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_REGISTRATION_ALREADY_REWARDED,
                           "the member's registration rewards were computed under another "
                           "reference");
    }
    referral_event_row_t ev = {.event = req->event,
                               .reference = req->reference,
                               .member_id = req->member_id,
                               .paid_cents = req->paid_cents,
                               .purchase_number = attached && purchase ? row.purchase_count + 1 : 0,
                               .program_version = prog->version};
    st = referral_store_event_insert(ctx->db, ctx->merchant_id, &ev, ctx->now_s, recorded);
    if (!status_is_ok(&st) || !*recorded) {
        return st;
    }
    resp->purchase_number = ev.purchase_number;
    resp->rewards = arena_alloc(ctx->arena, sizeof *resp->rewards);
    if (!attached) {
        return st; /* recorded with no rewards, so that a retry returns the same */
    }
    st = purchase ? referral_store_member_set_purchases(ctx->db, ctx->merchant_id, req->member_id,
                                                        ev.purchase_number)
                  : referral_store_member_set_registration(ctx->db, ctx->merchant_id,
                                                           req->member_id, req->reference);
    referral_referee_t referee = {.member_id = req->member_id,
                                  .ancestors = {row.referrer_id, row.ancestor_2, row.ancestor_3},
                                  .attached_at_s = row.attached_at,
                                  .purchase_number = ev.purchase_number};
    referral_reward_spec_t specs[REFERRAL_REWARDS_PER_EVENT_MAX];
    int n = referral_rules_compute(prog, req->event, &referee, req->paid_cents, ctx->now_s, specs);
    bool has_hold = req->_hold_until_case ==
                    LOYALTY__V1__REFERRAL_COMPUTE_REWARDS_REQUEST___HOLD_UNTIL_HOLD_UNTIL_AT;
    int64_t held_until =
        purchase ? referral_rules_hold_until(prog, has_hold, req->hold_until_at, ctx->now_s) : 0;
    if (status_is_ok(&st) && n > 0) {
        st =
            referral_store_rewards_insert(ctx->db, ctx->arena, ctx->merchant_id, &ev, specs, n,
                                          held_until, ctx->now_s, &resp->rewards, &resp->n_rewards);
    }
    return st;
}

static status_t rpc_compute_rewards(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                    ProtobufCMessage *resp_msg) {
    const Loyalty__V1__ReferralComputeRewardsRequest *req = (const void *)req_msg;
    Loyalty__V1__ReferralComputeRewardsResponse *resp = (void *)resp_msg;
    status_t st = check_compute_request(req, ctx->now_s);
    if (!status_is_ok(&st)) {
        return st;
    }
    /* The event (a replay), the programme and the referee's lock: one round trip. */
    referral_event_reads_t *in = arena_alloc(ctx->arena, sizeof *in);
    st = referral_store_event_reads(ctx->db, ctx->arena, ctx->merchant_id, req->event,
                                    req->reference, req->member_id, in);
    referral_event_row_t ev = in->event;
    bool found = in->event_found;
    if (status_is_ok(&st) && !found) {
        bool recorded = false;
        st = record_event(ctx, req, in, resp, &recorded);
        if (!status_is_ok(&st) || recorded) {
            return st;
        }
        st = referral_store_event_get(ctx->db, ctx->arena, ctx->merchant_id, req->event,
                                      req->reference, false, &ev, &found);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    if (!found) {
        return status_make(STATUS_ABORTED, REASON_CONCURRENCY_CONFLICT,
                           "the event vanished while it was recorded; safe to retry");
    }
    if (strcmp(ev.member_id, req->member_id) != 0 || ev.paid_cents != req->paid_cents) {
        return status_make(STATUS_ALREADY_EXISTS, REASON_EVENT_REFERENCE_REUSED,
                           "this event reference was recorded for another member or amount");
    }
    resp->purchase_number = ev.purchase_number;
    return referral_store_event_rewards(ctx->db, ctx->arena, ctx->merchant_id, req->event,
                                        req->reference, false, &resp->rewards, &resp->n_rewards);
}

static referral_reward_money_t money_of(const Loyalty__V1__ReferralReward *w) {
    referral_reward_money_t m = {.state = (int)w->state,
                                 .points = w->points,
                                 .granted_points = w->granted_points,
                                 .reversed_points = w->reversed_points,
                                 .clawed_back_points = w->clawed_back_points};
    return m;
}

static void money_to(Loyalty__V1__ReferralReward *w, const referral_reward_money_t *m) {
    w->state = (Loyalty__V1__ReferralRewardState)m->state;
    w->granted_points = m->granted_points;
    w->reversed_points = m->reversed_points;
    w->clawed_back_points = m->clawed_back_points;
}

static status_t rpc_reverse_rewards(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                    ProtobufCMessage *resp_msg) {
    const Loyalty__V1__ReferralReverseRewardsRequest *req = (const void *)req_msg;
    Loyalty__V1__ReferralReverseRewardsResponse *resp = (void *)resp_msg;
    status_t st = check_event(req->event);
    if (status_is_ok(&st)) {
        st = validate_token("reference", req->reference, REFERRAL_REFERENCE_MAX);
    }
    if (status_is_ok(&st) && (req->share_bps < 1 || req->share_bps > 10000)) {
        st = status_invalid_field("share_bps", "must be between 1 and 10000");
    }
    referral_event_row_t ev;
    bool found = false;
    if (status_is_ok(&st)) {
        st = referral_store_event_get(ctx->db, ctx->arena, ctx->merchant_id, req->event,
                                      req->reference, true, &ev, &found);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    if (!found) {
        return status_make(STATUS_NOT_FOUND, REASON_EVENT_NOT_FOUND,
                           "no rewards were computed for this event reference");
    }
    int32_t share = referral_rules_add_share(ev.reversed_share_bps, req->share_bps);
    st = referral_store_event_rewards(ctx->db, ctx->arena, ctx->merchant_id, req->event,
                                      req->reference, true, &resp->rewards, &resp->n_rewards);
    if (!status_is_ok(&st)) {
        return st;
    }
    resp->reversals = arena_alloc(ctx->arena, (resp->n_rewards + 1) * sizeof *resp->reversals);
    /* The counters after the rewards, all in one statement (or with the merged batch's). */
    referral_stats_sum_t own = {0};
    referral_stats_sum_t *stats = referral_store_stats_gathering();
    stats = stats ? stats : &own;
    for (size_t i = 0; status_is_ok(&st) && i < resp->n_rewards; i++) {
        Loyalty__V1__ReferralReward *w = resp->rewards[i];
        referral_reward_money_t m = money_of(w);
        int64_t delta = 0, clawback = 0;
        referral_rules_reverse(&m, share, &delta, &clawback);
        if (delta == 0) {
            continue;
        }
        money_to(w, &m);
        Loyalty__V1__ReferralReversal *rv =
            pb_new(ctx->arena, &loyalty__v1__referral_reversal__descriptor);
        char id[ID_MAX];
        id_generate("rvs", id);
        rv->id = arena_strdup(ctx->arena, id);
        rv->reward_id = w->id;
        rv->beneficiary_member_id = w->beneficiary_member_id;
        rv->level = w->level;
        rv->reversed_points = delta;
        rv->clawback_points = clawback;
        resp->reversals[resp->n_reversals++] = rv;
        st = referral_store_reward_reverse(ctx->db, ctx->merchant_id, w, delta, clawback, rv->id,
                                           ctx->now_s);
        if (w->level > 0) {
            referral_stats_delta_t d = {
                .member_id = w->beneficiary_member_id, .level = w->level, .reversed_points = delta};
            referral_rules_stats_add(stats, ctx->arena, &d);
        }
    }
    if (status_is_ok(&st) && stats == &own) {
        st = referral_store_stats_write(ctx->db, ctx->arena, ctx->merchant_id, &own);
    }
    if (status_is_ok(&st)) {
        st = referral_store_event_set_share(ctx->db, ctx->merchant_id, req->event, req->reference,
                                            share);
    }
    resp->reversed_share_bps = share;
    return st;
}

static status_t rpc_release_held(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                 ProtobufCMessage *resp_msg) {
    const Loyalty__V1__ReferralReleaseHeldRewardsRequest *req = (const void *)req_msg;
    Loyalty__V1__ReferralReleaseHeldRewardsResponse *resp = (void *)resp_msg;
    if (req->limit < 0 || req->limit > REFERRAL_RELEASE_LIMIT_MAX) {
        return status_invalid_field("limit", "must be between 0 and %d",
                                    REFERRAL_RELEASE_LIMIT_MAX);
    }
    int32_t limit = req->limit ? req->limit : REFERRAL_RELEASE_LIMIT_DEFAULT;
    Loyalty__V1__ReferralReward **due = NULL;
    size_t n = 0;
    bool more = false;
    status_t st = referral_store_due_rewards(ctx->db, ctx->arena, ctx->merchant_id, ctx->now_s,
                                             limit, &due, &n, &more);
    if (!status_is_ok(&st)) {
        return st;
    }
    resp->more = more;
    resp->rewards = arena_alloc(ctx->arena, (n + 1) * sizeof *resp->rewards);
    for (size_t i = 0; i < n; i++) {
        referral_reward_money_t m = money_of(due[i]);
        bool grant = referral_rules_release(&m);
        money_to(due[i], &m);
        if (grant) {
            due[i]->granted_at = ctx->now_s;
            resp->rewards[resp->n_rewards++] = due[i];
        }
    }
    return referral_store_rewards_released(ctx->db, ctx->arena, ctx->merchant_id, due, n,
                                           ctx->now_s);
}

static status_t rpc_list_rewards(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                 ProtobufCMessage *resp_msg) {
    const Loyalty__V1__ReferralListRewardsRequest *req = (const void *)req_msg;
    Loyalty__V1__ReferralListRewardsResponse *resp = (void *)resp_msg;
    status_t st = check_member_id("beneficiary_member_id", req->beneficiary_member_id);
    int32_t size = 0;
    char *after = "", *unused = "";
    if (status_is_ok(&st)) {
        st = cursor_page_size("page.page_size", req->page ? req->page->page_size : 0, PAGE_SIZE_MAX,
                              &size);
    }
    if (status_is_ok(&st)) {
        st = cursor_decode(ctx->arena, "page.cursor", req->page ? req->page->cursor : "", &after,
                           &unused);
    }
    const char *next = "";
    if (status_is_ok(&st)) {
        st = referral_store_rewards_page(ctx->db, ctx->arena, ctx->merchant_id,
                                         req->beneficiary_member_id, after, size, &resp->rewards,
                                         &resp->n_rewards, &next);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    resp->page_info = pb_new(ctx->arena, &loyalty__v1__page_info__descriptor);
    resp->page_info->next_cursor = next[0] ? cursor_encode(ctx->arena, next, "") : "";
    return status_ok();
}

static const rpc_method_t referral_methods[] = {
    {"SetReferralProgram", rpc_set_program, RPC_MUTATE},
    {"GetReferralProgram", rpc_get_program, RPC_READ},
    /* get-or-create of a stable code: idempotent by nature, so one transaction without a key */
    {"GetReferralCode", rpc_get_code, RPC_TX},
    {"ResolveReferralCode", rpc_resolve_code, RPC_READ},
    {"AttachReferral", rpc_attach, RPC_MUTATE},
    {"GetUpline", rpc_get_upline, RPC_READ},
    {"ListDownline", rpc_list_downline, RPC_READ},
    {"ComputeRewards", rpc_compute_rewards, RPC_MUTATE},
    {"ReverseRewards", rpc_reverse_rewards, RPC_MUTATE},
    {"ReleaseHeldRewards", rpc_release_held, RPC_MUTATE},
    {"ListRewards", rpc_list_rewards, RPC_READ},
    {NULL, NULL, RPC_READ},
};

/* A merged batch of AttachReferral, ComputeRewards or ReverseRewards (docs/architecture.md "Batched
 * saga steps"): the calls' handlers in sequence, with the downline counters of them all written
 * once, at the end, in (member, level) order, the order every writer of the counters uses; calls
 * writing their own would lock the rows of their beneficiaries in an order of their batch's, and
 * two batches whose buyers share referrers could deadlock. */
static status_t merge_with_counters(rpc_ctx_t *ctx, rpc_merge_call_t *calls, size_t n) {
    referral_stats_sum_t stats;
    referral_store_stats_gather_begin(&stats);
    status_t st = rpc_merge_in_sequence(calls, n);
    status_t written =
        referral_store_stats_gather_end(ctx->db, ctx->arena, ctx->merchant_id, status_is_ok(&st));
    return status_is_ok(&st) ? written : st;
}

static const rpc_method_merger_t referral_mergers[] = {
    {"AttachReferral", merge_with_counters},
    {"ComputeRewards", merge_with_counters},
    {"ReverseRewards", merge_with_counters},
    {NULL, NULL},
};

const rpc_service_t referral_service = {&loyalty__v1__referral_service__descriptor,
                                        referral_methods, referral_mergers};
