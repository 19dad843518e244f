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
#include "log.h"
#include "loyalty/v1/gateway.pb-c.h"
#include "loyalty/v1/member.pb-c.h"
#include "loyalty/v1/points.pb-c.h"
#include "loyalty/v1/promo.pb-c.h"
#include "loyalty/v1/wallet.pb-c.h"
#include "merchant_rules.h"
#include "pb.h"
#include "pgarray.h"

#include <assert.h>
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

static const char *const p_names[P_N] = {"member-svc", "points-svc", "wallet-svc", "promo-svc"};

static int p_index(const char *name) {
    for (int i = 0; i < P_N; i++) {
        if (strcmp(p_names[i], name) == 0) {
            return i;
        }
    }
    return -1;
}

static rpc_channel_t *p_channel(const gw_svc_t *svc, int i) {
    rpc_channel_t *const channels[P_N] = {svc->member, svc->points, svc->wallet, svc->promo};
    return channels[i];
}

static const ProtobufCServiceDescriptor *p_service(int i) {
    static const ProtobufCServiceDescriptor *const services[P_N] = {
        &loyalty__v1__member_service__descriptor, &loyalty__v1__points_service__descriptor,
        &loyalty__v1__wallet_service__descriptor, &loyalty__v1__promo_service__descriptor};
    return services[i];
}

/* The update of service i's time zone alone, with its idempotency key. */
static void p_update_call(arena_t *a, const gw_svc_t *svc, int i, const char *merchant_id,
                          const char *key, const char *time_zone, rpc_call_spec_t *c) {
    Google__Protobuf__FieldMask *mask = pb_new(a, &google__protobuf__field_mask__descriptor);
    mask->paths = arena_alloc(a, sizeof *mask->paths);
    mask->paths[0] = "time_zone";
    mask->n_paths = 1;
    char *merchant = arena_strdup(a, merchant_id), *k = arena_strdup(a, key),
         *tz = arena_strdup(a, time_zone);
    memset(c, 0, sizeof *c);
    c->channel = p_channel(svc, i);
    c->service = p_service(i);
    switch (i) {
    case P_MEMBER: {
        Loyalty__V1__MemberSettings *s = pb_new(a, &loyalty__v1__member_settings__descriptor);
        s->time_zone = tz;
        Loyalty__V1__MemberUpdateSettingsRequest *r =
            pb_new(a, &loyalty__v1__member_update_settings_request__descriptor);
        r->merchant_id = merchant;
        r->idempotency_key = k;
        r->settings = s;
        r->update_mask = mask;
        c->method = "UpdateMemberSettings";
        c->request = &r->base;
        break;
    }
    case P_POINTS: {
        Loyalty__V1__PointsSettings *s = pb_new(a, &loyalty__v1__points_settings__descriptor);
        s->time_zone = tz;
        Loyalty__V1__PointsUpdateSettingsRequest *r =
            pb_new(a, &loyalty__v1__points_update_settings_request__descriptor);
        r->merchant_id = merchant;
        r->idempotency_key = k;
        r->settings = s;
        r->update_mask = mask;
        c->method = "UpdateSettings";
        c->request = &r->base;
        break;
    }
    case P_WALLET: {
        Loyalty__V1__WalletSettings *s = pb_new(a, &loyalty__v1__wallet_settings__descriptor);
        s->merchant_id = merchant;
        s->time_zone = tz;
        Loyalty__V1__WalletUpdateSettingsRequest *r =
            pb_new(a, &loyalty__v1__wallet_update_settings_request__descriptor);
        r->merchant_id = merchant;
        r->idempotency_key = k;
        r->settings = s;
        r->update_mask = mask;
        c->method = "UpdateSettings";
        c->request = &r->base;
        break;
    }
    default: {
        Loyalty__V1__PromoSettings *s = pb_new(a, &loyalty__v1__promo_settings__descriptor);
        s->time_zone = tz;
        Loyalty__V1__PromoUpdateSettingsRequest *r =
            pb_new(a, &loyalty__v1__promo_update_settings_request__descriptor);
        r->merchant_id = merchant;
        r->idempotency_key = k;
        r->settings = s;
        r->update_mask = mask;
        c->method = "UpdatePromoSettings";
        c->request = &r->base;
        break;
    }
    }
}

/* The read of service i's settings. */
static void p_get_call(arena_t *a, const gw_svc_t *svc, int i, const char *merchant_id,
                       rpc_call_spec_t *c) {
    static const char *const methods[P_N] = {"GetMemberSettings", "GetSettings", "GetSettings",
                                             "GetPromoSettings"};
    static const ProtobufCMessageDescriptor *const requests[P_N] = {
        &loyalty__v1__member_get_settings_request__descriptor,
        &loyalty__v1__points_get_settings_request__descriptor,
        &loyalty__v1__wallet_get_settings_request__descriptor,
        &loyalty__v1__promo_get_settings_request__descriptor};
    ProtobufCMessage *r = pb_new(a, requests[i]);
    /* Each of the four requests is { string merchant_id = 1; }. */
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(requests[i], "merchant_id");
    assert(f != NULL && f->type == PROTOBUF_C_TYPE_STRING);
    *(char **)((char *)r + f->offset) = arena_strdup(a, merchant_id);
    memset(c, 0, sizeof *c);
    c->channel = p_channel(svc, i);
    c->service = p_service(i);
    c->method = methods[i];
    c->request = r;
}

/* The time zone in service i's settings answer (every answer is { settings = 1 } whose
 * time_zone is a string field). NULL when it has none. */
static const char *p_time_zone(const ProtobufCMessage *resp) {
    const ProtobufCMessage *s = pb_get_message_field(resp, "settings");
    return s ? pb_get_string_field(s, "time_zone") : NULL;
}

/* ---- the store ---- */

static Loyalty__V1__GatewayMerchantSettings *record_defaults(arena_t *a) {
    Loyalty__V1__GatewayMerchantSettings *s =
        pb_new(a, &loyalty__v1__gateway_merchant_settings__descriptor);
    s->time_zone = "UTC";
    return s;
}

static Loyalty__V1__GatewayMerchantSettings *record_from_row(arena_t *a, const PGresult *r) {
    Loyalty__V1__GatewayMerchantSettings *s = record_defaults(a);
    if (PQntuples(r) == 1) {
        s->time_zone = db_dup_str(a, r, 0, 0);
        s->currency = db_dup_str(a, r, 0, 1);
        s->locale = db_dup_str(a, r, 0, 2);
        s->version = db_get_int(r, 0, 3);
        s->updated_at = db_get_int(r, 0, 4);
    }
    return s;
}

/* The record, or the defaults (version 0) when the merchant never set it. */
static status_t record_read(db_t *db, arena_t *a, const char *merchant_id,
                            Loyalty__V1__GatewayMerchantSettings **out) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    PGresult *r = NULL;
    status_t st = db_exec(db,
                          "SELECT time_zone, currency, locale, version, "
                          " extract(epoch FROM updated_at)::bigint "
                          "FROM merchant_settings WHERE merchant_id = $1",
                          &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    *out = record_from_row(a, r);
    PQclear(r);
    return status_ok();
}

/* Writes the record as version + 1; when the time zone is new to the services (it changed, or
 * this is the first version), every service's push targets this version. */
static status_t record_write(db_t *db, arena_t *a, const char *merchant_id,
                             const Loyalty__V1__GatewayMerchantSettings *s, bool push,
                             Loyalty__V1__GatewayMerchantSettings **out) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, s->time_zone);
    db_param_text(&p, s->currency);
    db_param_text(&p, s->locale);
    PGresult *r = NULL;
    status_t st = db_exec(
        db,
        "INSERT INTO merchant_settings AS s (merchant_id, time_zone, currency, locale, version) "
        "VALUES ($1, $2, $3, $4, 1) ON CONFLICT (merchant_id) DO UPDATE SET "
        " time_zone = excluded.time_zone, currency = excluded.currency, "
        " locale = excluded.locale, version = s.version + 1, updated_at = now() "
        "RETURNING time_zone, currency, locale, version, extract(epoch FROM updated_at)::bigint",
        &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    *out = record_from_row(a, r);
    PQclear(r);
    if (!push && (*out)->version > 1) {
        return status_ok();
    }
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, pgarray_encode(a, (char **)p_names, P_N));
    db_param_int(&p, (*out)->version);
    return db_exec(db,
                   "INSERT INTO merchant_settings_pushes (merchant_id, service, target_version) "
                   "SELECT $1, unnest($2::text[]), $3 "
                   "ON CONFLICT (merchant_id, service) DO UPDATE SET "
                   " target_version = excluded.target_version, attempts = 0, "
                   " next_attempt_at = now()",
                   &p, NULL);
}

static status_t pushes_read(db_t *db, arena_t *a, const char *merchant_id,
                            Loyalty__V1__GatewayMerchantSettingsPush ***out, size_t *n_out) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    PGresult *r = NULL;
    status_t st =
        db_exec(db,
                "SELECT service, applied_version, "
                " applied_version >= target_version AND NOT resync_pending, attempts, last_error, "
                " CASE WHEN next_attempt_at = 'infinity' THEN 0 "
                "  ELSE extract(epoch FROM next_attempt_at)::bigint END, "
                " coalesce(extract(epoch FROM applied_at)::bigint, 0) "
                "FROM merchant_settings_pushes WHERE merchant_id = $1",
                &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    Loyalty__V1__GatewayMerchantSettingsPush **v = arena_alloc(a, P_N * sizeof *v);
    memset(v, 0, P_N * sizeof *v);
    for (int row = 0; row < PQntuples(r); row++) {
        int i = p_index(db_get_str(r, row, 0));
        if (i < 0) {
            continue; /* a service this gateway no longer pushes to */
        }
        Loyalty__V1__GatewayMerchantSettingsPush *x =
            pb_new(a, &loyalty__v1__gateway_merchant_settings_push__descriptor);
        x->service = (char *)p_names[i];
        x->applied_version = db_get_int(r, row, 1);
        x->in_sync = db_get_bool(r, row, 2);
        x->attempts = (int32_t)db_get_int(r, row, 3);
        x->last_error = db_dup_str(a, r, row, 4);
        x->next_attempt_at = db_get_int(r, row, 5);
        x->applied_at = db_get_int(r, row, 6);
        v[i] = x;
    }
    PQclear(r);
    size_t n = 0;
    for (int i = 0; i < P_N; i++) {
        if (v[i] != NULL) {
            v[n++] = v[i];
        }
    }
    *out = v;
    *n_out = n;
    return status_ok();
}

status_t gw_merchant_time_zone(db_t *db, arena_t *a, const char *merchant_id, const char *fallback,
                               const char **out) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    PGresult *r = NULL;
    status_t st =
        db_exec(db, "SELECT time_zone FROM merchant_settings WHERE merchant_id = $1", &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    *out = PQntuples(r) == 1 ? db_dup_str(a, r, 0, 0) : fallback;
    PQclear(r);
    return status_ok();
}

/* ---- RPCs ---- */

status_t gw_rpc_get_merchant_settings(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                      ProtobufCMessage *resp_msg) {
    (void)req_msg; /* merchant_id only, validated by the runtime */
    Loyalty__V1__GatewayGetMerchantSettingsResponse *resp = (void *)resp_msg;
    status_t st = record_read(ctx->db, ctx->arena, ctx->merchant_id, &resp->settings);
    if (status_is_ok(&st)) {
        st = pushes_read(ctx->db, ctx->arena, ctx->merchant_id, &resp->pushes, &resp->n_pushes);
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
        st = record_read(ctx->db, ctx->arena, ctx->merchant_id, &s);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    /* The record starts with a time zone of the merchant's choosing: pushed to the services, a
     * default would overwrite the zones a merchant set in each of them before the record. */
    if (s->version == 0 && !set_time_zone) {
        return status_make(STATUS_FAILED_PRECONDITION, "TIME_ZONE_REQUIRED",
                           "the merchant's first settings must name time_zone in update_mask");
    }
    bool push = set_time_zone && strcmp(s->time_zone, in.time_zone) != 0;
    fieldmask_apply(&mask, &s->base, &in.base);
    return record_write(ctx->db, ctx->arena, ctx->merchant_id, s, push, &resp->settings);
}

/* ---- the job ---- */

typedef struct push {
    char *merchant_id;
    int service;
    int64_t version;
    int64_t resync;
    int32_t attempts;
    char *time_zone;
} push_t;

/* Takes up to PUSH_BATCH due pushes under a lease of GATEWAY_LEASE_S (longer than any call). */
static status_t pushes_claim(rpc_ctx_t *ctx, int64_t lease_s, push_t *out, int *n_out) {
    db_params_t p;
    db_params_init(&p);
    db_param_int(&p, PUSH_BATCH);
    db_param_int(&p, lease_s);
    PGresult *r = NULL;
    status_t st = db_exec(
        ctx->db,
        "WITH due AS (SELECT merchant_id, service FROM merchant_settings_pushes "
        " WHERE next_attempt_at <= now() AND lease_until <= now() "
        " ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) "
        "UPDATE merchant_settings_pushes x SET lease_until = now() + make_interval(secs => $2) "
        "FROM due JOIN merchant_settings s ON s.merchant_id = due.merchant_id "
        "WHERE (x.merchant_id, x.service) = (due.merchant_id, due.service) "
        "RETURNING x.merchant_id, x.service, s.version, x.resync, x.attempts, s.time_zone",
        &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    int n = 0;
    for (int row = 0; row < PQntuples(r) && n < PUSH_BATCH; row++) {
        int i = p_index(db_get_str(r, row, 1));
        if (i < 0) {
            continue;
        }
        out[n++] = (push_t){.merchant_id = db_dup_str(ctx->arena, r, row, 0),
                            .service = i,
                            .version = db_get_int(r, row, 2),
                            .resync = db_get_int(r, row, 3),
                            .attempts = (int32_t)db_get_int(r, row, 4),
                            .time_zone = db_dup_str(ctx->arena, r, row, 5)};
    }
    PQclear(r);
    *n_out = n;
    return status_ok();
}

/* Records a push's outcome and gives its lease back. A success in sync with the record parks
 * the row (next_attempt_at 'infinity'); a newer target or a resync asked for meanwhile makes it
 * due again at once. A failure waits the backoff, unless a newer version is waiting. */
static status_t push_finish(rpc_ctx_t *ctx, const push_t *x, const status_t *outcome) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, x->merchant_id);
    db_param_text(&p, p_names[x->service]);
    db_param_int(&p, x->version);
    if (status_is_ok(outcome)) {
        db_param_int(&p, x->resync);
        return db_exec(
            ctx->db,
            "UPDATE merchant_settings_pushes SET "
            " applied_version = greatest(applied_version, $3), "
            " resync_pending = resync_pending AND resync <> $4, attempts = 0, last_error = '', "
            " lease_until = '-infinity', applied_at = now(), "
            " next_attempt_at = CASE WHEN greatest(applied_version, $3) >= target_version "
            "  AND NOT (resync_pending AND resync <> $4) THEN 'infinity'::timestamptz "
            "  ELSE now() END "
            "WHERE merchant_id = $1 AND service = $2",
            &p, NULL);
    }
    char *error =
        arena_printf(ctx->arena, "%s: %s", status_code_name(outcome->code), outcome->message);
    db_param_text(&p, error);
    db_param_int(&p, merchant_push_backoff_s(x->attempts + 1));
    return db_exec(ctx->db,
                   "UPDATE merchant_settings_pushes SET attempts = attempts + 1, "
                   " last_error = $4, lease_until = '-infinity', "
                   " next_attempt_at = CASE WHEN target_version > $3 THEN now() "
                   "  ELSE now() + make_interval(secs => $5) END "
                   "WHERE merchant_id = $1 AND service = $2",
                   &p, NULL);
}

static status_t push_due(rpc_ctx_t *ctx, gw_svc_t *svc, int *pushed) {
    push_t due[PUSH_BATCH];
    int n = 0;
    status_t st = pushes_claim(ctx, svc->lease_s, due, &n);
    if (!status_is_ok(&st) || n == 0) {
        return st;
    }
    rpc_call_spec_t calls[PUSH_BATCH];
    for (int i = 0; i < n; i++) {
        char *key = arena_printf(ctx->arena, "merchant-settings:v%lld:r%lld",
                                 (long long)due[i].version, (long long)due[i].resync);
        p_update_call(ctx->arena, svc, due[i].service, due[i].merchant_id, key, due[i].time_zone,
                      &calls[i]);
    }
    rpc_call_many(calls, (size_t)n, ctx->arena, NULL);
    for (int i = 0; i < n; i++) {
        const push_t *x = &due[i];
        if (!status_is_ok(&calls[i].status)) {
            /* The first failure of a push is worth a warning; the retries are not. */
            log_msg(x->attempts == 0 ? LOG_WARN : LOG_DEBUG,
                    "merchant %s: pushing time zone %s (version %lld) to %s failed: %s",
                    x->merchant_id, x->time_zone, (long long)x->version, p_names[x->service],
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

/* Asks for a push under a new key to a service whose copy differs from the record, when its
 * push is otherwise in sync and idle (a push in flight or due will settle it anyway). */
static status_t push_resync(rpc_ctx_t *ctx, const char *merchant_id, int service, int64_t version) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, p_names[service]);
    db_param_int(&p, version);
    return db_exec(ctx->db,
                   "UPDATE merchant_settings_pushes SET resync = resync + 1, "
                   " resync_pending = true, next_attempt_at = now() "
                   "WHERE merchant_id = $1 AND service = $2 AND applied_version >= $3 "
                   " AND target_version <= $3 AND NOT resync_pending AND lease_until <= now()",
                   &p, NULL);
}

/* Reads every service's copy of the merchants not verified for MERCHANT_SETTINGS_VERIFY_S. */
static status_t verify_due(rpc_ctx_t *ctx, gw_svc_t *svc) {
    db_params_t p;
    db_params_init(&p);
    db_param_int(&p, g_verify_s);
    db_param_int(&p, VERIFY_BATCH);
    PGresult *r = NULL;
    status_t st = db_exec(ctx->db,
                          "UPDATE merchant_settings SET verified_at = now() WHERE merchant_id IN ("
                          " SELECT merchant_id FROM merchant_settings "
                          " WHERE verified_at <= now() - make_interval(secs => $1) "
                          " ORDER BY verified_at LIMIT $2 FOR UPDATE SKIP LOCKED) "
                          "RETURNING merchant_id, time_zone, version",
                          &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    for (int row = 0; row < PQntuples(r) && status_is_ok(&st); row++) {
        const char *merchant_id = db_get_str(r, row, 0), *tz = db_get_str(r, row, 1);
        int64_t version = db_get_int(r, row, 2);
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
                    merchant_id, p_names[i], copy, tz);
            st = push_resync(ctx, merchant_id, i, version);
        }
    }
    PQclear(r);
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
        return status_make(STATUS_INVALID_ARGUMENT, "INVALID_CONFIG",
                           "MERCHANT_SETTINGS_VERIFY_S must be 0..%d", VERIFY_MAX_S);
    }
    return status_ok();
}
