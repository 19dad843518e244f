/* member_rpc_tags.c -- the merchant's automatic tag rules (SetTagRules, ListTagRules). The rules
 * are kept in the settings row (migration 006) and evaluated by member_ops_save in every
 * change of a member; a change of the rules starts the re-evaluation walk of the timer. */
#include "member_handlers.h"

#include <string.h>

static void rules_view(arena_t *a, const member_tag_rules_t *rules,
                       Loyalty__V1__MemberTagRule ***out, size_t *n) {
    *out = arena_alloc(a, (size_t)(rules->n ? rules->n : 1) * sizeof **out);
    for (int i = 0; i < rules->n; i++) {
        (*out)[i] = member_tags_view(a, &rules->r[i]);
    }
    *n = (size_t)rules->n;
}

status_t member_rpc_set_tag_rules(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                  ProtobufCMessage *resp_msg) {
    const Loyalty__V1__MemberSetTagRulesRequest *req = (const void *)req_msg;
    Loyalty__V1__MemberSetTagRulesResponse *resp = (void *)resp_msg;
    member_tag_rules_t *rules = arena_alloc(ctx->arena, sizeof *rules);
    status_t st = member_tags_check(req->rules, req->n_rules, rules);
    if (status_is_ok(&st)) { /* serializes with settings changes; creates the row if needed */
        st = member_settings_lock(ctx->db, ctx->merchant_id);
    }
    bool changed = false, pending = false;
    if (status_is_ok(&st)) {
        st =
            member_tag_rules_save(ctx->db, ctx->arena, ctx->merchant_id, rules, &changed, &pending);
    }
    if (status_is_ok(&st)) {
        rules_view(ctx->arena, rules, &resp->rules, &resp->n_rules);
        resp->retag_pending = pending;
    }
    return st;
}

status_t member_rpc_list_tag_rules(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                   ProtobufCMessage *resp_msg) {
    (void)req_msg;
    Loyalty__V1__MemberListTagRulesResponse *resp = (void *)resp_msg;
    member_settings_t *s = arena_alloc(ctx->arena, sizeof *s);
    status_t st = member_settings_load(ctx->db, ctx->merchant_id, ctx->now_s, 0, s, NULL, NULL);
    bool pending = false;
    if (status_is_ok(&st)) {
        st = member_reeval_pending(ctx->db, ctx->merchant_id, &pending);
    }
    if (status_is_ok(&st)) {
        rules_view(ctx->arena, &s->tag_rules, &resp->rules, &resp->n_rules);
        resp->retag_pending = pending;
    }
    return st;
}
