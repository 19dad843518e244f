/* campaign_rpc.c -- CampaignService handlers (configure, read, run) and the scheduler job. */
#include "campaign_rpc.h"

#include "campaign_run.h"
#include "campaign_store.h"
#include "log.h"
#include "pb.h"

#include <stdlib.h>
#include <time.h>

#define CAMPAIGN_DUE_BATCH 20

static status_t check_kind(Loyalty__V1__CampaignKind kind) {
    if (kind < LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_BIRTHDAY ||
        kind > LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_RE_ENGAGE) {
        return status_invalid_field("kind", "unknown campaign kind %d", (int)kind);
    }
    return status_ok();
}

static status_t rpc_set_campaign(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                 ProtobufCMessage *resp_msg) {
    const Loyalty__V1__CampaignSetRequest *req = (const void *)req_msg;
    Loyalty__V1__CampaignSetResponse *resp = (void *)resp_msg;
    status_t st = campaign_rules_validate(req->campaign);
    if (!status_is_ok(&st)) {
        return st;
    }
    char today[11];
    st = campaign_store_local_date(
        ctx->db, ctx->now_s, req->campaign->time_zone[0] ? req->campaign->time_zone : "UTC", today);
    if (!status_is_ok(&st)) {
        return st;
    }
    return campaign_store_put(ctx->db, ctx->arena, ctx->merchant_id, req->campaign,
                              &resp->campaign);
}

static status_t rpc_get_campaign(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                 ProtobufCMessage *resp_msg) {
    const Loyalty__V1__CampaignGetRequest *req = (const void *)req_msg;
    Loyalty__V1__CampaignGetResponse *resp = (void *)resp_msg;
    status_t st = check_kind(req->kind);
    if (!status_is_ok(&st)) {
        return st;
    }
    return campaign_store_get(ctx->db, ctx->arena, ctx->merchant_id, req->kind, &resp->campaign);
}

static status_t rpc_list_campaigns(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                   ProtobufCMessage *resp_msg) {
    (void)req_msg;
    Loyalty__V1__CampaignListResponse *resp = (void *)resp_msg;
    return campaign_store_list(ctx->db, ctx->arena, ctx->merchant_id, &resp->campaigns,
                               &resp->n_campaigns);
}

static status_t rpc_run_campaign(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                 ProtobufCMessage *resp_msg) {
    const Loyalty__V1__CampaignRunRequest *req = (const void *)req_msg;
    Loyalty__V1__CampaignRunResponse *resp = (void *)resp_msg;
    status_t st = check_kind(req->kind);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (req->at < 0) {
        return status_invalid_field("at", "must be a unix time or 0 for now");
    }
    Loyalty__V1__Campaign *c = NULL;
    st = campaign_store_get(ctx->db, ctx->arena, ctx->merchant_id, req->kind, &c);
    if (!status_is_ok(&st)) {
        return st;
    }
    /* A disabled campaign is one the merchant turned off: running it by hand would reward and
     * message members all the same. A dry run writes nothing, so it stays a preview. */
    if (!c->enabled && !req->dry_run) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_CAMPAIGN_DISABLED,
                           "the campaign is disabled: enable it first (a dry run is allowed)");
    }
    resp->result = pb_new(ctx->arena, &loyalty__v1__campaign_run_result__descriptor);
    return campaign_run(ctx, c, req->at ? req->at : ctx->now_s, req->dry_run, resp->result);
}

static int64_t campaign_interval_s(void) {
    int64_t v = 3600;
    const char *env = getenv("CAMPAIGN_INTERVAL_S");
    if (env && !config_parse_int(env, 1, 86400, &v)) {
        v = 3600;
    }
    return v;
}

status_t campaign_job_schedule(rpc_ctx_t *ctx) {
    campaign_metrics_register(); /* the job runs at start: the series exist from then on */
    Loyalty__V1__Campaign **due = NULL;
    size_t n = 0;
    status_t st = campaign_store_take_due(ctx->db, ctx->arena, campaign_interval_s(),
                                          CAMPAIGN_DUE_BATCH, &due, &n);
    for (size_t i = 0; status_is_ok(&st) && i < n; i++) {
        Loyalty__V1__CampaignRunResult *res =
            pb_new(ctx->arena, &loyalty__v1__campaign_run_result__descriptor);
        ctx->merchant_id = due[i]->merchant_id;
        status_t run = campaign_run(ctx, due[i], (int64_t)time(NULL), false, res);
        log_msg(status_is_ok(&run) ? LOG_INFO : LOG_WARN,
                "campaign %s for %s: targeted %lld, rewarded %lld, messaged %lld, skipped %lld%s%s",
                campaign_kind_name(due[i]->kind), due[i]->merchant_id, (long long)res->targeted,
                (long long)res->rewarded, (long long)res->messaged, (long long)res->skipped,
                status_is_ok(&run) ? "" : "; stopped: ", status_is_ok(&run) ? "" : run.message);
    }
    ctx->merchant_id = "";
    return st;
}

static const rpc_method_t campaign_methods[] = {
    {"SetCampaign", rpc_set_campaign, RPC_MUTATE},
    {"GetCampaign", rpc_get_campaign, RPC_READ},
    {"ListCampaigns", rpc_list_campaigns, RPC_READ},
    {"RunCampaign", rpc_run_campaign, RPC_READ},
    {NULL, NULL, RPC_READ},
};

const rpc_service_t campaign_service = {&loyalty__v1__campaign_service__descriptor,
                                        campaign_methods, NULL};
