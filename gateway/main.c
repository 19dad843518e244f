/* main.c -- gateway: the storefront API and the saga orchestrator (docs/architecture.md#gateway,
 * docs/architecture.md#sagas). Reads its own settings (CHECKOUT_TTL_S, PARTICIPANT_HOLD_TTL_S,
 * GATEWAY_LEASE_S, GATEWAY_RECOVERY_INTERVAL_S, GATEWAY_BEGIN_GRACE_S, SAGA_STEPS_COMMIT_ASYNC,
 * MERCHANT_SETTINGS_VERIFY_S and the test-only GATEWAY_FAILPOINT) and opens the channels to the
 * five participants. */
#include "campaign_rpc.h"
#include "gateway_merchant.h"
#include "gateway_rpc.h"
#include "ids.h"
#include "log.h"
#include "rpc_server.h"

#include <stdio.h>
#include <stdlib.h>

extern const embed_file_t gateway_migrations[];

static gw_svc_t g_svc;

/* One integer setting from the environment, with its default and bounds. */
static status_t env_int(const char *name, int64_t def, int64_t min, int64_t max, int64_t *out) {
    const char *v = getenv(name);
    *out = def;
    if (v == NULL || v[0] == '\0') {
        return status_ok();
    }
    if (!config_parse_int(v, min, max, out)) {
        return status_make(STATUS_INVALID_ARGUMENT, REASON_INVALID_CONFIG, "%s must be %lld..%lld",
                           name, (long long)min, (long long)max);
    }
    return status_ok();
}

static status_t gateway_start(const config_t *cfg, void **state) {
    gw_svc_t *s = &g_svc;
    s->cfg = cfg;
    status_t st = env_int("CHECKOUT_TTL_S", 900, 1, 86400, &s->checkout_ttl_s);
    if (status_is_ok(&st)) {
        st = env_int("PARTICIPANT_HOLD_TTL_S", 3600, 2, 86400, &s->hold_ttl_s);
    }
    if (status_is_ok(&st)) {
        st = env_int("GATEWAY_LEASE_S", 30, 1, 3600, &s->lease_s);
    }
    if (status_is_ok(&st)) {
        st = env_int("GATEWAY_RECOVERY_INTERVAL_S", 5, 1, 3600, &s->recovery_interval_s);
    }
    if (status_is_ok(&st)) {
        st = env_int("GATEWAY_BEGIN_GRACE_S", 60, 0, 86400, &s->begin_grace_s);
    }
    int64_t steps_commit_async = 1;
    if (status_is_ok(&st)) {
        st = env_int("SAGA_STEPS_COMMIT_ASYNC", 1, 0, 1, &steps_commit_async);
    }
    s->steps_commit_async = steps_commit_async == 1;
    if (status_is_ok(&st)) {
        st = gw_merchant_configure();
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    /* A lease must outlive the longest participant call, and holds the checkout's TTL. */
    if (s->lease_s * 1000 <= cfg->client_timeout_ms) {
        return status_make(STATUS_INVALID_ARGUMENT, REASON_INVALID_CONFIG,
                           "GATEWAY_LEASE_S must exceed RPC_CLIENT_TIMEOUT_MS");
    }
    if (s->hold_ttl_s <= s->checkout_ttl_s) {
        return status_make(STATUS_INVALID_ARGUMENT, REASON_INVALID_CONFIG,
                           "PARTICIPANT_HOLD_TTL_S must exceed CHECKOUT_TTL_S");
    }
    if (!gw_failpoint_parse(getenv("GATEWAY_FAILPOINT"), &s->failpoint)) {
        return status_make(STATUS_INVALID_ARGUMENT, REASON_INVALID_CONFIG,
                           "GATEWAY_FAILPOINT must be before:|sent:|after:<step>");
    }
    if (s->failpoint.when != GW_FAIL_NONE) {
        log_msg(LOG_WARN, "GATEWAY_FAILPOINT is set (%s): test use only",
                getenv("GATEWAY_FAILPOINT"));
    }
    id_random_token("abcdefghijklmnopqrstuvwxyz0123456789", 12, s->instance);
    atomic_init(&s->lease_seq, 1);
    s->member = rpc_channel_get(cfg->member_svc_addr);
    s->points = rpc_channel_get(cfg->points_svc_addr);
    s->wallet = rpc_channel_get(cfg->wallet_svc_addr);
    s->referral = rpc_channel_get(cfg->referral_svc_addr);
    s->promo = rpc_channel_get(cfg->promo_svc_addr);
    log_msg(LOG_INFO,
            "checkout TTL %llds, participant hold TTL %llds, lease %llds, recovery every %llds, "
            "steps commit %s",
            (long long)s->checkout_ttl_s, (long long)s->hold_ttl_s, (long long)s->lease_s,
            (long long)s->recovery_interval_s,
            s->steps_commit_async ? "without waiting for the disk" : "durably");
    *state = s;
    return status_ok();
}

static const rpc_job_t gateway_jobs[] = {
    /* Runs every second; the job itself keeps GATEWAY_RECOVERY_INTERVAL_S. */
    {"saga-recovery", gw_job_recover, 1},
    /* Runs every JOB_INTERVAL_S (60 s by default); each campaign keeps CAMPAIGN_INTERVAL_S
     * between its runs. */
    {"campaign-scheduler", campaign_job_schedule, 0},
    {"purge-saga-steps", gw_job_purge_steps, 3600},
    /* Pushes the merchant settings record to the services and reads their copies back
     * (MERCHANT_SETTINGS_VERIFY_S); every second, so an update reaches them within about one. */
    {"merchant-settings", gw_job_merchant_settings, 1},
    {NULL, NULL, 0},
};

/* The member's tier status is kept here too (gw_read_member_tier): member-svc's invalidations
 * drop it. */
static const char *const gateway_follows[] = {"member-svc", NULL};

int main(int argc, char **argv) {
    const rpc_service_t gateway_services[] = {gateway_service, campaign_service};
    const rpc_server_options_t opts = {
        .service_name = "gateway",
        .default_port = 50050,
        .db_schema = "gateway",
        .migrations = gateway_migrations,
        .services = gateway_services,
        .service_count = 2,
        .jobs = gateway_jobs,
        .storefront_methods = gateway_storefront_methods,
        .on_start = gateway_start,
        .follow_invalidations = gateway_follows,
    };
    return rpc_server_main(&opts, argc, argv);
}
