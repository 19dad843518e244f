/* member_rpc.c -- MemberService: the profile handlers and the table of every handler (the
 * others live in member_rpc_tiers.c, member_rpc_order.c and member_rpc_list.c). */
#include "member_rpc.h"

#include "ids.h"
#include "jsonw.h"
#include "member_cache.h"
#include "member_handlers.h"
#include "member_rules.h"
#include "member_store.h"
#include "outbox.h"
#include "validate.h"

#include <stdio.h>
#include <string.h>

/* Today in days since 1970, plus one so that a member born "today" in a time zone ahead of UTC
 * is not refused. */
static int64_t member_today_days(const rpc_ctx_t *ctx) {
    return ctx->now_s / 86400 + 1;
}

static status_t rpc_create_member(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                  ProtobufCMessage *resp_msg) {
    const Loyalty__V1__CreateMemberRequest *req = (const void *)req_msg;
    Loyalty__V1__CreateMemberResponse *resp = (void *)resp_msg;
    status_t st = member_rules_check_external_id(req->external_id);
    if (!status_is_ok(&st)) {
        return st;
    }
    Loyalty__V1__MemberProfile profile = LOYALTY__V1__MEMBER_PROFILE__INIT;
    st = member_rules_normalize_profile(ctx->arena, req->profile, MEMBER_FIELD_ALL,
                                        member_today_days(ctx), &profile);
    if (!status_is_ok(&st)) {
        return st;
    }
    char id[ID_MAX];
    id_generate("mbr", id);
    st = member_store_insert(ctx->db, ctx->arena, ctx->merchant_id, id, req->external_id, &profile,
                             &resp->member);
    if (status_is_ok(&st)) { /* tier, segment and counters start in the same transaction */
        st = member_rpc_init_state(ctx, id);
    }
    return st;
}

static status_t rpc_get_member(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                               ProtobufCMessage *resp_msg) {
    const Loyalty__V1__GetMemberRequest *req = (const void *)req_msg;
    Loyalty__V1__GetMemberResponse *resp = (void *)resp_msg;
    char normalized[EMAIL_MAX + 1];
    status_t st = status_ok();
    switch (req->lookup_case) {
    case LOYALTY__V1__GET_MEMBER_REQUEST__LOOKUP_MEMBER_ID:
        st = validate_token("member_id", req->member_id, ID_MAX);
        if (!status_is_ok(&st)) {
            return st;
        }
        if (member_cache_get(ctx, req->member_id, &resp->member)) {
            return st;
        }
        st = member_store_get(ctx->db, ctx->arena, ctx->merchant_id, MEMBER_BY_ID, req->member_id,
                              false, &resp->member);
        if (status_is_ok(&st)) {
            member_cache_put(ctx, resp->member);
        }
        return st;
    case LOYALTY__V1__GET_MEMBER_REQUEST__LOOKUP_PHONE:
        st = validate_phone("phone", req->phone, normalized);
        if (!status_is_ok(&st)) {
            return st;
        }
        return member_store_get(ctx->db, ctx->arena, ctx->merchant_id, MEMBER_BY_PHONE, normalized,
                                false, &resp->member);
    case LOYALTY__V1__GET_MEMBER_REQUEST__LOOKUP_EMAIL:
        st = validate_email("email", req->email, normalized);
        if (!status_is_ok(&st)) {
            return st;
        }
        return member_store_get(ctx->db, ctx->arena, ctx->merchant_id, MEMBER_BY_EMAIL, normalized,
                                false, &resp->member);
    case LOYALTY__V1__GET_MEMBER_REQUEST__LOOKUP_EXTERNAL_ID:
        st = validate_token("external_id", req->external_id, MEMBER_EXTERNAL_ID_MAX);
        if (!status_is_ok(&st)) {
            return st;
        }
        return member_store_get(ctx->db, ctx->arena, ctx->merchant_id, MEMBER_BY_EXTERNAL_ID,
                                req->external_id, false, &resp->member);
    default:
        return status_invalid_field("lookup",
                                    "one of member_id, phone, email or external_id is required");
    }
}

/* member.updated through the outbox: which profile fields the update named. */
static status_t emit_updated(rpc_ctx_t *ctx, const Loyalty__V1__Member *m, char *const *mask,
                             size_t n) {
    char fields[512] = "";
    size_t used = 0;
    for (size_t i = 0; i < n && used < sizeof fields; i++) {
        int w = snprintf(fields + used, sizeof fields - used, "%s%s", i ? "," : "", mask[i]);
        used += w > 0 ? (size_t)w : 0;
    }
    char json[768];
    jsonw_t w;
    jsonw_begin(&w, json, sizeof json);
    jsonw_str(&w, "member_id", m->id);
    jsonw_str(&w, "fields", fields);
    jsonw_int(&w, "version", m->version);
    jsonw_end(&w);
    return outbox_emit(ctx, NULL, OUTBOX_EVENTS_STREAM, "member.updated", m->id, json, NULL);
}

static status_t rpc_update_member(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                  ProtobufCMessage *resp_msg) {
    const Loyalty__V1__UpdateMemberRequest *req = (const void *)req_msg;
    Loyalty__V1__UpdateMemberResponse *resp = (void *)resp_msg;
    status_t st = validate_token("member_id", req->member_id, ID_MAX);
    if (!status_is_ok(&st)) {
        return st;
    }
    unsigned mask = 0;
    st = member_rules_parse_mask(req->update_mask, &mask);
    if (!status_is_ok(&st)) {
        return st;
    }
    Loyalty__V1__Member *current = NULL;
    st = member_store_get(ctx->db, ctx->arena, ctx->merchant_id, MEMBER_BY_ID, req->member_id, true,
                          &current);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (req->_expected_version_case ==
            LOYALTY__V1__UPDATE_MEMBER_REQUEST___EXPECTED_VERSION_EXPECTED_VERSION &&
        req->expected_version != current->version) {
        return status_make(STATUS_ABORTED, REASON_VERSION_MISMATCH,
                           "member changed since version %lld (now %lld); re-read and retry",
                           (long long)req->expected_version, (long long)current->version);
    }
    st = member_rules_normalize_profile(ctx->arena, req->profile, mask, member_today_days(ctx),
                                        current->profile);
    if (!status_is_ok(&st)) {
        return st;
    }
    member_cache_invalidate(ctx, current->id);
    st = member_store_update_profile(ctx->db, ctx->arena, ctx->merchant_id, current->id,
                                     current->profile, &resp->member);
    if (status_is_ok(&st)) {
        st = emit_updated(ctx, resp->member, req->update_mask->paths, req->update_mask->n_paths);
    }
    return st;
}

static const rpc_method_t member_methods[] = {
    {"CreateMember", rpc_create_member, RPC_MUTATE},
    {"GetMember", rpc_get_member, RPC_READ},
    {"UpdateMember", rpc_update_member, RPC_MUTATE},
    {"GetMemberSettings", member_rpc_get_settings, RPC_READ},
    {"UpdateMemberSettings", member_rpc_update_settings, RPC_MUTATE},
    {"SetTagRules", member_rpc_set_tag_rules, RPC_MUTATE},
    {"ListTagRules", member_rpc_list_tag_rules, RPC_READ},
    {"CreateTier", member_rpc_create_tier, RPC_MUTATE},
    {"UpdateTier", member_rpc_update_tier, RPC_MUTATE},
    {"ListTiers", member_rpc_list_tiers, RPC_READ},
    {"CreateMembershipPlan", member_rpc_create_plan, RPC_MUTATE},
    {"UpdateMembershipPlan", member_rpc_update_plan, RPC_MUTATE},
    {"ListMembershipPlans", member_rpc_list_plans, RPC_READ},
    {"GetMemberTier", member_rpc_get_tier, RPC_READ},
    {"GetMemberStats", member_rpc_get_stats, RPC_READ},
    {"ListTierHistory", member_rpc_list_history, RPC_READ},
    {"ListTierChanges", member_rpc_list_changes, RPC_READ},
    {"RecordOrder", member_rpc_record_order, RPC_MUTATE},
    {"RecordReturn", member_rpc_record_return, RPC_MUTATE},
    {"RecordPointsBalance", member_rpc_record_points_balance, RPC_MUTATE},
    {"PurchaseMembership", member_rpc_purchase, RPC_MUTATE},
    {"AssignTier", member_rpc_assign_tier, RPC_MUTATE},
    {"RunTierMaintenance", member_rpc_run_maintenance, RPC_MUTATE},
    {"ListMembers", member_rpc_list_members, RPC_READ},
    {"CountMembers", member_rpc_count_members, RPC_READ},
    {"ImportMembers", member_rpc_import_members, RPC_MUTATE},
    {NULL, NULL, RPC_READ},
};

const rpc_service_t member_service = {&loyalty__v1__member_service__descriptor, member_methods,
                                      NULL};
