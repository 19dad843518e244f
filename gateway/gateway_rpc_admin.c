/* gateway_rpc_admin.c -- the operators' view of the suite through the gateway (loyaltyctl):
 * CheckHealth (every service's readiness and the gateway's own PostgreSQL and Redis),
 * VerifyLedgers (points and wallet VerifyLedger for a merchant) and GetMemberDetail (a member
 * found by id, phone or external id, with the overview, stats, tier history and recent orders).
 * Admin credentials only: none of them is in gateway_storefront_methods. */
#include "gateway_rpc.h"
#include "gateway_store.h"
#include "grpc/health/v1/health.pb-c.h"
#include "health.h"
#include "log.h"
#include "loyalty/v1/gateway.pb-c.h"
#include "pb.h"
#include "validate.h"

#include <string.h>

/* How long CheckHealth waits for each participant's answer. */
#define GW_HEALTH_TIMEOUT_MS 2000
/* The longest VerifyLedgers waits for the participants (the caller's deadline may be shorter). */
#define GW_VERIFY_TIMEOUT_MS 600000
#define GW_TIER_HISTORY_MAX 20
#define GW_RECENT_ORDERS_MAX 10
/* Member.external_id as member-svc takes it (its own check is the one that counts). */
#define GW_EXTERNAL_ID_MAX 128

/* ---- CheckHealth ---- */

/* The participants asked, by name: every per-participant array below is indexed by these (in
 * designated initialisers), so adding one cannot shift which answer is read as whose. */
enum { HC_MEMBER, HC_POINTS, HC_WALLET, HC_REFERRAL, HC_PROMO, HC_N };

/* Redis as the gateway sees it: "off" without a URL, else a PING on this worker's connection. */
static const char *redis_state(rpc_ctx_t *ctx) {
    if (ctx->config->redis_url[0] == '\0') {
        return "off";
    }
    redisContext *conn = ctx->cache ? cache_conn(ctx->cache) : NULL;
    if (conn == NULL) {
        return "down";
    }
    redisReply *reply = redisCommand(conn, "PING");
    if (reply == NULL) {
        cache_mark_broken(ctx->cache);
        return "down";
    }
    bool up = reply->type == REDIS_REPLY_STATUS;
    freeReplyObject(reply);
    return up ? "up" : "down";
}

status_t gw_rpc_check_health(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                             ProtobufCMessage *resp_msg) {
    const Loyalty__V1__GatewayCheckHealthRequest *req = (const void *)req_msg;
    Loyalty__V1__GatewayCheckHealthResponse *resp = (void *)resp_msg;
    /* RPC_READ_ANY_MERCHANT: "" is the operators' view; a named merchant must be valid, and
     * the access line then names it (as ListSagas does). */
    if (req->merchant_id[0]) {
        status_t st = validate_merchant_id(req->merchant_id);
        if (!status_is_ok(&st)) {
            return st;
        }
        ctx->merchant_id = req->merchant_id;
    }
    gw_svc_t *svc = gw_svc(ctx);
    static const char *const names[HC_N] = {[HC_MEMBER] = "member-svc",
                                            [HC_POINTS] = "points-svc",
                                            [HC_WALLET] = "wallet-svc",
                                            [HC_REFERRAL] = "referral-svc",
                                            [HC_PROMO] = "promo-svc"};
    const char *addrs[HC_N] = {[HC_MEMBER] = svc->cfg->member_svc_addr,
                               [HC_POINTS] = svc->cfg->points_svc_addr,
                               [HC_WALLET] = svc->cfg->wallet_svc_addr,
                               [HC_REFERRAL] = svc->cfg->referral_svc_addr,
                               [HC_PROMO] = svc->cfg->promo_svc_addr};
    rpc_channel_t *channels[HC_N] = {[HC_MEMBER] = svc->member,
                                     [HC_POINTS] = svc->points,
                                     [HC_WALLET] = svc->wallet,
                                     [HC_REFERRAL] = svc->referral,
                                     [HC_PROMO] = svc->promo};
    Grpc__Health__V1__HealthCheckRequest check = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    check.service = ""; /* readiness */
    rpc_call_spec_t c[HC_N];
    memset(c, 0, sizeof c);
    for (int i = 0; i < HC_N; i++) {
        c[i].channel = channels[i];
        c[i].service = &grpc__health__v1__health__descriptor;
        c[i].method = "Check";
        c[i].request = &check.base;
    }
    rpc_call_opts_t opts = {.timeout_ms = GW_HEALTH_TIMEOUT_MS};
    rpc_call_many(c, HC_N, ctx->arena, &opts);

    resp->database_up = db_ping(ctx->db);
    resp->redis = (char *)redis_state(ctx);
    resp->services = arena_alloc(ctx->arena, (HC_N + 1) * sizeof *resp->services);
    Loyalty__V1__GatewayServiceHealth *gw =
        pb_new(ctx->arena, &loyalty__v1__gateway_service_health__descriptor);
    gw->service = "gateway";
    gw->ready = health_is_serving() && resp->database_up;
    gw->status = gw->ready ? "SERVING" : "NOT_SERVING";
    if (!resp->database_up) {
        gw->detail = "PostgreSQL did not answer";
    } else if (!health_is_serving()) {
        gw->detail = "not serving (migrations pending or shutting down)";
    }
    resp->services[resp->n_services++] = gw;
    resp->all_ready = gw->ready;
    for (int i = 0; i < HC_N; i++) {
        Loyalty__V1__GatewayServiceHealth *h =
            pb_new(ctx->arena, &loyalty__v1__gateway_service_health__descriptor);
        h->service = (char *)names[i];
        h->address = (char *)addrs[i];
        if (status_is_ok(&c[i].status)) {
            int s = ((Grpc__Health__V1__HealthCheckResponse *)c[i].response)->status;
            h->ready = s == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
            h->status = h->ready ? "SERVING" : "NOT_SERVING";
        } else {
            h->status = (char *)status_code_name(c[i].status.code);
            h->detail = arena_strdup(ctx->arena, c[i].status.message);
        }
        resp->all_ready = resp->all_ready && h->ready;
        resp->services[resp->n_services++] = h;
    }
    return status_ok();
}

/* ---- VerifyLedgers ---- */

status_t gw_rpc_verify_ledgers(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                               ProtobufCMessage *resp_msg) {
    (void)req_msg; /* merchant_id only, validated by the runtime */
    Loyalty__V1__GatewayVerifyLedgersResponse *resp = (void *)resp_msg;
    gw_svc_t *svc = gw_svc(ctx);
    Loyalty__V1__PointsVerifyLedgerRequest pv = LOYALTY__V1__POINTS_VERIFY_LEDGER_REQUEST__INIT;
    pv.merchant_id = (char *)ctx->merchant_id;
    Loyalty__V1__WalletVerifyLedgerRequest wv = LOYALTY__V1__WALLET_VERIFY_LEDGER_REQUEST__INIT;
    wv.merchant_id = (char *)ctx->merchant_id;
    /* The calls by name: each answer is read through the index its call was built at. */
    enum { VL_POINTS, VL_WALLET, VL_N };
    rpc_call_spec_t c[VL_N] = {
        [VL_POINTS] = {.channel = svc->points,
                       .service = &loyalty__v1__points_service__descriptor,
                       .method = "VerifyLedger",
                       .request = &pv.base},
        [VL_WALLET] = {.channel = svc->wallet,
                       .service = &loyalty__v1__wallet_service__descriptor,
                       .method = "VerifyLedger",
                       .request = &wv.base},
    };
    /* The default client deadline is for quick calls; a whole merchant's ledger takes longer.
     * Never past the caller's own deadline (rpc_call_many caps it there). */
    rpc_call_opts_t opts = {.timeout_ms = GW_VERIFY_TIMEOUT_MS};
    rpc_call_many(c, VL_N, ctx->arena, &opts);
    for (int i = 0; i < VL_N; i++) {
        if (!status_is_ok(&c[i].status)) {
            return c[i].status;
        }
    }
    resp->points = (Loyalty__V1__PointsVerifyLedgerResponse *)c[VL_POINTS].response;
    resp->wallet = (Loyalty__V1__WalletVerifyLedgerResponse *)c[VL_WALLET].response;
    resp->ok = resp->points->ok && resp->wallet->ok;
    return status_ok();
}

/* ---- GetMemberDetail ---- */

/* The member's id from the request's lookup (GetMember by id, phone or external id). */
static status_t detail_find_member(rpc_ctx_t *ctx,
                                   const Loyalty__V1__GatewayGetMemberDetailRequest *req,
                                   char **member_id) {
    Loyalty__V1__GetMemberRequest gm = LOYALTY__V1__GET_MEMBER_REQUEST__INIT;
    gm.merchant_id = (char *)ctx->merchant_id;
    status_t st = status_ok();
    switch (req->lookup_case) {
    case LOYALTY__V1__GATEWAY_GET_MEMBER_DETAIL_REQUEST__LOOKUP_MEMBER_ID:
        st = gw_check_id("member_id", req->member_id, ID_MAX);
        *member_id = req->member_id;
        return st; /* the overview's GetMember answers NOT_FOUND for an unknown id */
    case LOYALTY__V1__GATEWAY_GET_MEMBER_DETAIL_REQUEST__LOOKUP_PHONE:
        gm.phone = arena_alloc(ctx->arena, PHONE_MAX + 1);
        st = validate_phone("phone", req->phone, gm.phone);
        if (!status_is_ok(&st)) {
            return st;
        }
        gm.lookup_case = LOYALTY__V1__GET_MEMBER_REQUEST__LOOKUP_PHONE;
        break;
    case LOYALTY__V1__GATEWAY_GET_MEMBER_DETAIL_REQUEST__LOOKUP_EXTERNAL_ID:
        st = validate_text("external_id", req->external_id, 1, GW_EXTERNAL_ID_MAX);
        if (!status_is_ok(&st)) {
            return st;
        }
        gm.lookup_case = LOYALTY__V1__GET_MEMBER_REQUEST__LOOKUP_EXTERNAL_ID;
        gm.external_id = req->external_id;
        break;
    default:
        return status_invalid_field("lookup", "one of member_id, phone, external_id is required");
    }
    ProtobufCMessage *got = NULL;
    st = rpc_call(gw_svc(ctx)->member, &loyalty__v1__member_service__descriptor, "GetMember",
                  &gm.base, ctx->arena, &got, NULL);
    if (!status_is_ok(&st)) {
        return st;
    }
    *member_id = ((Loyalty__V1__GetMemberResponse *)got)->member->id;
    return status_ok();
}

/* Appends `section` to the overview's unavailable list. */
static void detail_unavailable(rpc_ctx_t *ctx, Loyalty__V1__GatewayGetMemberOverviewResponse *ov,
                               const char *section, const status_t *why) {
    log_msg(LOG_WARN, "member detail: %s unavailable: %s", section, why->message);
    char **list = arena_alloc(ctx->arena, (ov->n_unavailable + 1) * sizeof *list);
    if (ov->n_unavailable > 0) {
        memcpy(list, ov->unavailable, ov->n_unavailable * sizeof *list);
    }
    list[ov->n_unavailable++] = (char *)section;
    ov->unavailable = list;
}

status_t gw_rpc_get_member_detail(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                  ProtobufCMessage *resp_msg) {
    const Loyalty__V1__GatewayGetMemberDetailRequest *req = (const void *)req_msg;
    Loyalty__V1__GatewayGetMemberDetailResponse *resp = (void *)resp_msg;
    char *member_id = NULL;
    status_t st = detail_find_member(ctx, req, &member_id);
    if (!status_is_ok(&st)) {
        return st;
    }
    Loyalty__V1__GatewayGetMemberOverviewRequest ovr =
        LOYALTY__V1__GATEWAY_GET_MEMBER_OVERVIEW_REQUEST__INIT;
    ovr.merchant_id = (char *)ctx->merchant_id;
    ovr.member_id = member_id;
    Loyalty__V1__GatewayGetMemberOverviewResponse *ov =
        pb_new(ctx->arena, &loyalty__v1__gateway_get_member_overview_response__descriptor);
    st = gw_rpc_get_member_overview(ctx, &ovr.base, &ov->base);
    if (!status_is_ok(&st)) {
        return st;
    }
    resp->overview = ov;

    gw_svc_t *svc = gw_svc(ctx);
    Loyalty__V1__MemberGetStatsRequest gs = LOYALTY__V1__MEMBER_GET_STATS_REQUEST__INIT;
    gs.merchant_id = (char *)ctx->merchant_id;
    gs.member_id = member_id;
    Loyalty__V1__PageRequest page = LOYALTY__V1__PAGE_REQUEST__INIT;
    page.page_size = GW_TIER_HISTORY_MAX;
    Loyalty__V1__MemberListTierHistoryRequest th =
        LOYALTY__V1__MEMBER_LIST_TIER_HISTORY_REQUEST__INIT;
    th.merchant_id = (char *)ctx->merchant_id;
    th.member_id = member_id;
    th.page = &page;
    /* The calls by name: each answer is read through the index its call was built at. */
    enum { MD_STATS, MD_TIER_HISTORY, MD_N };
    rpc_call_spec_t c[MD_N] = {
        [MD_STATS] = {.channel = svc->member,
                      .service = &loyalty__v1__member_service__descriptor,
                      .method = "GetMemberStats",
                      .request = &gs.base},
        [MD_TIER_HISTORY] = {.channel = svc->member,
                             .service = &loyalty__v1__member_service__descriptor,
                             .method = "ListTierHistory",
                             .request = &th.base},
    };
    rpc_call_many(c, MD_N, ctx->arena, NULL);
    const rpc_call_spec_t *stats = &c[MD_STATS], *tiers = &c[MD_TIER_HISTORY];
    if (status_is_ok(&stats->status)) {
        resp->stats = ((Loyalty__V1__MemberGetStatsResponse *)stats->response)->stats;
    } else {
        detail_unavailable(ctx, ov, "stats", &stats->status);
    }
    if (status_is_ok(&tiers->status)) {
        Loyalty__V1__MemberListTierHistoryResponse *r = (void *)tiers->response;
        resp->tier_history = r->changes;
        resp->n_tier_history = r->n_changes;
    } else {
        detail_unavailable(ctx, ov, "tier_history", &tiers->status);
    }
    return gw_store_list_member_orders(ctx->db, ctx->arena, ctx->merchant_id, member_id,
                                       GW_RECENT_ORDERS_MAX, &resp->recent_orders,
                                       &resp->n_recent_orders);
}
