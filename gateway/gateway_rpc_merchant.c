/* gateway_rpc_merchant.c -- the merchant settings record (docs/architecture.md#merchant-settings):
 * time zone, currency and locale, set once through Gateway/UpdateMerchantSettings and kept in
 * the gateway's schema; the job that pushes the time zone to the four services that keep a copy
 * (member-svc, points-svc, wallet-svc, promo-svc: each one's own settings RPC with an update_mask
 * of time_zone alone) and reads their copies back; and the time zone the campaigns use.
 *
 * Why a job and not a saga per update: a push always sends the record as it is when the push is
 * made, so a service that was down for several updates gets only the last, and two updates can
 * never reach a service in the wrong order (two sagas retried independently could). One pusher
 * at a time per merchant and service, under a lease column (the calls are never made inside a
 * transaction). */
#include "gateway_merchant.h"

#include "config.h"
#include "fieldmask.h"
#include "gateway_saga.h"
#include "gateway_store.h"
#include "log.h"
#include "loyalty/v1/gateway.pb-c.h"
#include "loyalty/v1/member.pb-c.h"
#include "loyalty/v1/points.pb-c.h"
#include "loyalty/v1/promo.pb-c.h"
#include "loyalty/v1/wallet.pb-c.h"
#include "merchant_rules.h"
#include "pb.h"

#include <assert.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Pushes claimed by one pass of the job, and merchants verified by one pass. */
#define PUSH_BATCH 16
#define VERIFY_BATCH 8
#define VERIFY_DEFAULT_S 300
#define VERIFY_MAX_S 86400

/* MERCHANT_SETTINGS_VERIFY_S: set at start, read by the job thread only. */
static int64_t g_verify_s = VERIFY_DEFAULT_S;

/* ---- the services that keep a copy ---- */

enum { P_MEMBER, P_POINTS, P_WALLET, P_PROMO, P_N };

/* One service that keeps a copy of the time zone, and the two calls the job makes to it. Every
 * update request is { merchant_id, idempotency_key, settings, update_mask } and every read
 * request { merchant_id }, by those field names; the update's settings carry time_zone, and
 * merchant_id too where the settings message has one (`settings_merchant_id`). */
typedef struct p_service {
    const char *name;
    size_t channel; /* offsetof the service's channel in gw_svc_t */
    const ProtobufCServiceDescriptor *service;
    const char *update_method;
    const ProtobufCMessageDescriptor *update_request;
    bool settings_merchant_id;
    const char *get_method;
    const ProtobufCMessageDescriptor *get_request;
} p_service_t;

static const p_service_t p_services[P_N] = {
    [P_MEMBER] = {.name = "member-svc",
                  .channel = offsetof(gw_svc_t, member),
                  .service = &loyalty__v1__member_service__descriptor,
                  .update_method = "UpdateMemberSettings",
                  .update_request = &loyalty__v1__member_update_settings_request__descriptor,
                  .settings_merchant_id = false,
                  .get_method = "GetMemberSettings",
                  .get_request = &loyalty__v1__member_get_settings_request__descriptor},
    [P_POINTS] = {.name = "points-svc",
                  .channel = offsetof(gw_svc_t, points),
                  .service = &loyalty__v1__points_service__descriptor,
                  .update_method = "UpdateSettings",
                  .update_request = &loyalty__v1__points_update_settings_request__descriptor,
                  .settings_merchant_id = false,
                  .get_method = "GetSettings",
                  .get_request = &loyalty__v1__points_get_settings_request__descriptor},
    [P_WALLET] = {.name = "wallet-svc",
                  .channel = offsetof(gw_svc_t, wallet),
                  .service = &loyalty__v1__wallet_service__descriptor,
                  .update_method = "UpdateSettings",
                  .update_request = &loyalty__v1__wallet_update_settings_request__descriptor,
                  .settings_merchant_id = true,
                  .get_method = "GetSettings",
                  .get_request = &loyalty__v1__wallet_get_settings_request__descriptor},
    [P_PROMO] = {.name = "promo-svc",
                 .channel = offsetof(gw_svc_t, promo),
                 .service = &loyalty__v1__promo_service__descriptor,
                 .update_method = "UpdatePromoSettings",
                 .update_request = &loyalty__v1__promo_update_settings_request__descriptor,
                 .settings_merchant_id = false,
                 .get_method = "GetPromoSettings",
                 .get_request = &loyalty__v1__promo_get_settings_request__descriptor},
};

static int p_index(const char *name) {
    for (int i = 0; i < P_N; i++) {
        if (strcmp(p_services[i].name, name) == 0) {
            return i;
        }
    }
    return -1;
}

/* A call of service i's method with `request`. */
static void p_call(const gw_svc_t *svc, int i, const char *method, ProtobufCMessage *request,
                   rpc_call_spec_t *c) {
    memset(c, 0, sizeof *c);
    memcpy(&c->channel, (const char *)svc + p_services[i].channel, sizeof c->channel);
    c->service = p_services[i].service;
    c->method = method;
    c->request = request;
}

/* The update of service i's time zone alone, with its idempotency key. */
static void p_update_call(arena_t *a, const gw_svc_t *svc, int i, const char *merchant_id,
                          const char *key, const char *time_zone, rpc_call_spec_t *c) {
    const p_service_t *p = &p_services[i];
    Google__Protobuf__FieldMask *mask = pb_new(a, &google__protobuf__field_mask__descriptor);
    mask->paths = arena_alloc(a, sizeof *mask->paths);
    mask->paths[0] = "time_zone";
    mask->n_paths = 1;
    char *merchant = arena_strdup(a, merchant_id);
    ProtobufCMessage *r = pb_new(a, p->update_request);
    const ProtobufCFieldDescriptor *sf =
        protobuf_c_message_descriptor_get_field_by_name(p->update_request, "settings");
    assert(sf != NULL && sf->type == PROTOBUF_C_TYPE_MESSAGE);
    ProtobufCMessage *s = pb_new(a, sf->descriptor);
    bool set = pb_set_string_field(s, "time_zone", arena_strdup(a, time_zone)) &&
               (!p->settings_merchant_id || pb_set_string_field(s, "merchant_id", merchant)) &&
               pb_set_string_field(r, "merchant_id", merchant) &&
               pb_set_string_field(r, "idempotency_key", arena_strdup(a, key)) &&
               pb_set_message_field(r, "settings", s) &&
               pb_set_message_field(r, "update_mask", &mask->base);
    assert(set); /* the messages are this file's table: a mismatch is a build's mistake */
    (void)set;
    p_call(svc, i, p->update_method, r, c);
}

/* The read of service i's settings. */
static void p_get_call(arena_t *a, const gw_svc_t *svc, int i, const char *merchant_id,
                       rpc_call_spec_t *c) {
    const p_service_t *p = &p_services[i];
    ProtobufCMessage *r = pb_new(a, p->get_request);
    bool set = pb_set_string_field(r, "merchant_id", arena_strdup(a, merchant_id));
    assert(set);
    (void)set;
    p_call(svc, i, p->get_method, r, c);
}

/* The time zone in service i's settings answer (every answer is { settings = 1 } whose
 * time_zone is a string field). NULL when it has none. */
static const char *p_time_zone(const ProtobufCMessage *resp) {
    const ProtobufCMessage *s = pb_get_message_field(resp, "settings");
    return s ? pb_get_string_field(s, "time_zone") : NULL;
}

/* The push rows of the services this gateway pushes to, in p_services order (the store answers
 * them in any order, with the service's name). */
static void pushes_in_order(Loyalty__V1__GatewayMerchantSettingsPush **v, size_t *n) {
    Loyalty__V1__GatewayMerchantSettingsPush *by_service[P_N] = {0};
    for (size_t k = 0; k < *n; k++) {
        int i = p_index(v[k]->service);
        if (i >= 0) { /* else a service this gateway no longer pushes to */
            v[k]->service = (char *)p_services[i].name;
            by_service[i] = v[k];
        }
    }
    size_t out = 0;
    for (int i = 0; i < P_N; i++) {
        if (by_service[i] != NULL) {
            v[out++] = by_service[i];
        }
    }
    *n = out;
}

/* ---- RPCs ---- */

status_t gw_rpc_get_merchant_settings(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                      ProtobufCMessage *resp_msg) {
    (void)req_msg; /* merchant_id only, validated by the runtime */
    Loyalty__V1__GatewayGetMerchantSettingsResponse *resp = (void *)resp_msg;
    status_t st = gw_store_merchant_read(ctx->db, ctx->arena, ctx->merchant_id, &resp->settings);
    if (status_is_ok(&st)) {
        st = gw_store_merchant_pushes(ctx->db, ctx->arena, ctx->merchant_id, &resp->pushes,
                                      &resp->n_pushes);
    }
    if (status_is_ok(&st)) {
        pushes_in_order(resp->pushes, &resp->n_pushes);
    }
    return st;
}

/* Every field but version and updated_at. */
static const char *const settings_updatable[] = {"time_zone", "currency", "locale", NULL};

status_t gw_rpc_update_merchant_settings(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                         ProtobufCMessage *resp_msg) {
    const Loyalty__V1__GatewayUpdateMerchantSettingsRequest *req = (const void *)req_msg;
    Loyalty__V1__GatewayUpdateMerchantSettingsResponse *resp = (void *)resp_msg;
    fieldmask_t mask;
    status_t st =
        fieldmask_parse(req->update_mask, &loyalty__v1__gateway_merchant_settings__descriptor,
                        settings_updatable, &mask);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (req->settings == NULL) {
        return status_invalid_field("settings", "required");
    }
    /* Every named value is checked before anything is written. */
    Loyalty__V1__GatewayMerchantSettings in = *req->settings;
    bool set_time_zone = fieldmask_has(&mask, "time_zone");
    if (set_time_zone) {
        st = merchant_check_time_zone(in.time_zone);
        bool known = false;
        if (status_is_ok(&st)) {
            st = db_time_zone_known(ctx->db, in.time_zone, &known);
        }
        if (status_is_ok(&st) && !known) {
            st = status_invalid_field("settings.time_zone", "not an IANA time zone");
        }
    }
    if (status_is_ok(&st) && fieldmask_has(&mask, "currency")) {
        st = merchant_check_currency(in.currency);
    }
    if (status_is_ok(&st) && fieldmask_has(&mask, "locale")) {
        char *locale = arena_alloc(ctx->arena, MERCHANT_LOCALE_MAX + 1);
        st = merchant_normalize_locale(in.locale, locale);
        in.locale = locale;
    }
    /* The record as it is, under the lock every update takes, with the named fields changed. */
    Loyalty__V1__GatewayMerchantSettings *s = NULL;
    if (status_is_ok(&st)) {
        st = db_lock_named(ctx->db, "gateway.merchant_settings", ctx->merchant_id);
    }
    if (status_is_ok(&st)) {
        st = gw_store_merchant_read(ctx->db, ctx->arena, ctx->merchant_id, &s);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    /* The record starts with a time zone of the merchant's choosing: pushed to the services, a
     * default would overwrite the zones a merchant set in each of them before the record. */
    if (s->version == 0 && !set_time_zone) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_TIME_ZONE_REQUIRED,
                           "the merchant's first settings must name time_zone in update_mask");
    }
    bool push = set_time_zone && strcmp(s->time_zone, in.time_zone) != 0;
    fieldmask_apply(&mask, &s->base, &in.base);
    const char *names[P_N];
    for (int i = 0; i < P_N; i++) {
        names[i] = p_services[i].name;
    }
    return gw_store_merchant_write(ctx->db, ctx->arena, ctx->merchant_id, s, push, names, P_N,
                                   &resp->settings);
}

/* ---- the job ---- */

/* Takes up to PUSH_BATCH due pushes under a lease of GATEWAY_LEASE_S (longer than any call);
 * rows of services this gateway no longer pushes to are left to their lease. */
static status_t pushes_claim(rpc_ctx_t *ctx, int64_t lease_s, gw_merchant_push_t *out, int *n_out,
                             int *service) {
    int n = 0;
    status_t st = gw_store_merchant_pushes_claim(ctx->db, ctx->arena, PUSH_BATCH, lease_s, out, &n);
    int kept = 0;
    for (int k = 0; status_is_ok(&st) && k < n; k++) {
        int i = p_index(out[k].service);
        if (i >= 0) {
            out[kept] = out[k];
            service[kept++] = i;
        }
    }
    *n_out = kept;
    return st;
}

/* Records a push's outcome and gives its lease back (gw_store_merchant_push_done / _failed). */
static status_t push_finish(rpc_ctx_t *ctx, const gw_merchant_push_t *x, const status_t *outcome) {
    if (status_is_ok(outcome)) {
        return gw_store_merchant_push_done(ctx->db, x);
    }
    char *error =
        arena_printf(ctx->arena, "%s: %s", status_code_name(outcome->code), outcome->message);
    return gw_store_merchant_push_failed(ctx->db, x, error,
                                         merchant_push_backoff_s(x->attempts + 1));
}

static status_t push_due(rpc_ctx_t *ctx, gw_svc_t *svc, int *pushed) {
    gw_merchant_push_t due[PUSH_BATCH];
    int service[PUSH_BATCH];
    int n = 0;
    status_t st = pushes_claim(ctx, svc->lease_s, due, &n, service);
    if (!status_is_ok(&st) || n == 0) {
        return st;
    }
    rpc_call_spec_t calls[PUSH_BATCH];
    for (int i = 0; i < n; i++) {
        char *key = arena_printf(ctx->arena, "merchant-settings:v%lld:r%lld",
                                 (long long)due[i].version, (long long)due[i].resync);
        p_update_call(ctx->arena, svc, service[i], due[i].merchant_id, key, due[i].time_zone,
                      &calls[i]);
    }
    rpc_call_many(calls, (size_t)n, ctx->arena, NULL);
    for (int i = 0; i < n; i++) {
        const gw_merchant_push_t *x = &due[i];
        if (!status_is_ok(&calls[i].status)) {
            /* The first failure of a push is worth a warning; the retries are not. */
            log_msg(x->attempts == 0 ? LOG_WARN : LOG_DEBUG,
                    "merchant %s: pushing time zone %s (version %lld) to %s failed: %s",
                    x->merchant_id, x->time_zone, (long long)x->version, x->service,
                    calls[i].status.message);
        }
        status_t fst = push_finish(ctx, x, &calls[i].status);
        if (!status_is_ok(&fst)) {
            st = fst; /* the lease lapses by itself; the push is made again then */
        }
    }
    *pushed = n;
    return st;
}

/* Reads every service's copy of the merchants not verified for MERCHANT_SETTINGS_VERIFY_S. */
static status_t verify_due(rpc_ctx_t *ctx, gw_svc_t *svc) {
    gw_merchant_record_t *due = NULL;
    size_t n = 0;
    status_t st =
        gw_store_merchant_verify_claim(ctx->db, ctx->arena, g_verify_s, VERIFY_BATCH, &due, &n);
    if (!status_is_ok(&st)) {
        return st;
    }
    for (size_t k = 0; k < n && status_is_ok(&st); k++) {
        const char *merchant_id = due[k].merchant_id, *tz = due[k].time_zone;
        int64_t version = due[k].version;
        rpc_call_spec_t calls[P_N];
        for (int i = 0; i < P_N; i++) {
            p_get_call(ctx->arena, svc, i, merchant_id, &calls[i]);
        }
        rpc_call_many(calls, P_N, ctx->arena, NULL);
        for (int i = 0; i < P_N && status_is_ok(&st); i++) {
            const char *copy =
                status_is_ok(&calls[i].status) ? p_time_zone(calls[i].response) : NULL;
            if (copy == NULL || strcmp(copy, tz) == 0) {
                continue; /* in sync, or not answering: verified at the next period */
            }
            log_msg(LOG_INFO,
                    "merchant %s: %s has time zone %s, the merchant settings %s; pushing again",
                    merchant_id, p_services[i].name, copy, tz);
            /* a push under a new key, unless one is in flight or due (it settles it anyway) */
            st = gw_store_merchant_push_resync(ctx->db, merchant_id, p_services[i].name, version);
        }
    }
    return st;
}

status_t gw_job_merchant_settings(rpc_ctx_t *ctx) {
    gw_svc_t *svc = ctx->service_state;
    int pushed = 0;
    status_t st = push_due(ctx, svc, &pushed);
    if (status_is_ok(&st) && g_verify_s > 0) {
        st = verify_due(ctx, svc);
    }
    return st;
}

status_t gw_merchant_configure(void) {
    const char *v = getenv("MERCHANT_SETTINGS_VERIFY_S");
    g_verify_s = VERIFY_DEFAULT_S;
    if (v != NULL && v[0] != '\0' && !config_parse_int(v, 0, VERIFY_MAX_S, &g_verify_s)) {
        return status_make(STATUS_INVALID_ARGUMENT, REASON_INVALID_CONFIG,
                           "MERCHANT_SETTINGS_VERIFY_S must be 0..%d", VERIFY_MAX_S);
    }
    return status_ok();
}
