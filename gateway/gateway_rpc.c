/* gateway_rpc.c -- the Gateway service table, idempotent start/resume of sagas, input checks,
 * the operators' RPCs (sagas, settings) and the recovery job. */
#include "gateway_rpc.h"

#include "audit.h"
#include "cursor.h"
#include "fieldmask.h"
#include "gateway_merchant.h"
#include "gateway_store.h"
#include "jsonw.h"
#include "log.h"
#include "loyalty/v1/gateway.pb-c.h"
#include "pb.h"
#include "validate.h"

#include <string.h>

/* The oldest age ListSagas filters by: ten years, far beyond any saga's life. */
#define GW_LIST_AGE_MAX_S 315360000

/* ---- checks ---- */

status_t gw_check_id(const char *field, const char *value, size_t max) {
    return validate_token(field, value, max);
}

status_t gw_check_key(const char *value) {
    return validate_idempotency_key(value);
}

status_t gw_check_optional_key(const char *value) {
    return value[0] ? validate_idempotency_key(value) : status_ok();
}

status_t gw_check_payment_ref(const char *field, const char *value, bool required) {
    size_t n = strlen(value);
    if (n == 0) {
        return required ? status_invalid_field(field, "required") : status_ok();
    }
    if (n > GW_PAYMENT_REF_MAX) {
        return status_invalid_field(field, "at most %d characters", GW_PAYMENT_REF_MAX);
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)value[i];
        if (c < 0x21 || c > 0x7e) {
            return status_invalid_field(field, "only printable ASCII is allowed");
        }
    }
    return status_ok();
}

/* ---- starting and resuming ---- */

status_t gw_resume_by_key(gw_saga_t *x) {
    char *id = NULL;
    bool same = false;
    status_t st = gw_store_find_by_key(x->ctx->db, x->a, x->merchant_id, x->idempotency_key,
                                       x->hash_input, x->hash_len, &id, &same);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (!same) {
        return status_make(STATUS_ALREADY_EXISTS, REASON_IDEMPOTENCY_KEY_REUSED,
                           "idempotency key already used for a different request");
    }
    bool auto_complete = x->auto_complete;
    st = gw_saga_open(x, x->ctx, x->svc, x->merchant_id, id);
    if (!status_is_ok(&st)) {
        return st;
    }
    x->auto_complete = auto_complete;
    bool unfinished =
        x->state == GW_BEGINNING || x->state == GW_COMPLETING || x->state == GW_CANCELLING;
    if (!unfinished) {
        return status_ok();
    }
    st = gw_saga_claim(x);
    if (st.code == STATUS_ABORTED && x->state != GW_BEGINNING) {
        return status_ok(); /* someone is driving it forward: answer what we know */
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    if (x->state != GW_BEGINNING && x->state != GW_COMPLETING && x->state != GW_CANCELLING) {
        return gw_saga_unclaim(x); /* it finished meanwhile: nothing to write */
    }
    return gw_drive(x);
}

status_t gw_start(gw_saga_t *x) {
    status_t st = gw_drive(x);
    if (st.code == STATUS_ALREADY_EXISTS && strcmp(st.reason, "SAGA_EXISTS") == 0) {
        return gw_resume_by_key(x);
    }
    return st;
}

/* ---- operators: sagas ---- */

status_t gw_rpc_get_saga(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                         ProtobufCMessage *resp_msg) {
    const Loyalty__V1__GatewayGetSagaRequest *req = (const void *)req_msg;
    Loyalty__V1__GatewayGetSagaResponse *resp = (void *)resp_msg;
    status_t st = gw_check_id("saga_id", req->saga_id, ID_MAX);
    if (!status_is_ok(&st)) {
        return st;
    }
    gw_saga_t *x = arena_alloc(ctx->arena, sizeof *x);
    st = gw_saga_open(x, ctx, gw_svc(ctx), ctx->merchant_id, req->saga_id);
    if (!status_is_ok(&st)) {
        return st;
    }
    Loyalty__V1__GatewaySaga *g = pb_new(ctx->arena, &loyalty__v1__gateway_saga__descriptor);
    g->id = x->id;
    g->merchant_id = x->merchant_id;
    g->kind = (Loyalty__V1__GatewaySagaKind)x->kind;
    g->state = (Loyalty__V1__GatewaySagaState)x->state;
    g->reason = x->reason;
    if (x->error.code != STATUS_OK) {
        Loyalty__V1__GatewayError *e = pb_new(ctx->arena, &loyalty__v1__gateway_error__descriptor);
        e->code = (char *)status_code_name(x->error.code);
        e->reason = x->error.reason;
        e->message = x->error.message;
        g->error = e;
    }
    g->member_id = x->member_id;
    g->order_id = x->order_id;
    g->attempts = x->attempts;
    g->next_attempt_at = x->next_attempt_at;
    g->created_at = x->created_at;
    g->updated_at = x->updated_at;
    g->steps = gw_steps_view(x, &g->n_steps);
    resp->saga = g;
    return status_ok();
}

status_t gw_rpc_list_sagas(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                           ProtobufCMessage *resp_msg) {
    const Loyalty__V1__GatewayListSagasRequest *req = (const void *)req_msg;
    Loyalty__V1__GatewayListSagasResponse *resp = (void *)resp_msg;
    int32_t size = 0;
    status_t st = cursor_page_size("page.page_size", req->page ? req->page->page_size : 0,
                                   PAGE_SIZE_MAX, &size);
    char *key = NULL, *after = NULL;
    if (status_is_ok(&st)) {
        st = cursor_decode(ctx->arena, "page.cursor", req->page ? req->page->cursor : "", &key,
                           &after);
    }
    if (status_is_ok(&st) && (req->state < 0 || req->state > GW_NEEDS_ATTENTION)) {
        st = status_invalid_field("state", "unknown state");
    }
    if (status_is_ok(&st) && (req->kind < 0 || req->kind > GW_KIND_MAX)) {
        st = status_invalid_field("kind", "unknown kind");
    }
    if (status_is_ok(&st) && (req->older_than_s < 0 || req->older_than_s > GW_LIST_AGE_MAX_S)) {
        st = status_invalid_field("older_than_s", "between 0 and %d", GW_LIST_AGE_MAX_S);
    }
    /* ListSagas is RPC_READ_ANY_MERCHANT: "" is the operators' view across merchants,
     * anything else must be a valid merchant id, which the access line then names. */
    if (status_is_ok(&st) && req->merchant_id[0]) {
        st = validate_merchant_id(req->merchant_id);
        ctx->merchant_id = req->merchant_id;
    }
    if (status_is_ok(&st)) {
        st = gw_store_list(ctx->db, ctx->arena, req->merchant_id, req->state, req->kind,
                           req->older_than_s, after, size + 1, &resp->sagas, &resp->n_sagas);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    resp->page_info = pb_new(ctx->arena, &loyalty__v1__page_info__descriptor);
    if (resp->n_sagas > (size_t)size) {
        resp->n_sagas = (size_t)size;
        resp->page_info->next_cursor =
            cursor_encode(ctx->arena, "", resp->sagas[resp->n_sagas - 1]->id);
    }
    return status_ok();
}

/* The saga log has no audit trigger (a saga's row changes at every step of every checkout):
 * RetrySaga records what it changed itself, the saga's state and error before and after, and
 * how many failed steps it put back to be called again. */
static status_t gw_audit_retry(rpc_ctx_t *ctx, const gw_saga_t *x, int state,
                               int64_t steps_retried) {
    const ProtobufCEnumValue *from = protobuf_c_enum_descriptor_get_value(
        &loyalty__v1__gateway_saga_state__descriptor, x->state);
    const ProtobufCEnumValue *to =
        protobuf_c_enum_descriptor_get_value(&loyalty__v1__gateway_saga_state__descriptor, state);
    char before[512], after[512];
    jsonw_t w;
    jsonw_begin(&w, before, sizeof before);
    jsonw_str(&w, "id", x->id);
    jsonw_str(&w, "state", from ? from->name : "");
    jsonw_str(&w, "error_reason", x->error.reason);
    jsonw_int(&w, "failed_steps", steps_retried);
    jsonw_end(&w);
    jsonw_begin(&w, after, sizeof after);
    jsonw_str(&w, "id", x->id);
    jsonw_str(&w, "state", to ? to->name : "");
    jsonw_str(&w, "error_reason", "");
    jsonw_int(&w, "failed_steps", 0);
    jsonw_end(&w);
    return audit_record(ctx->db, ctx->merchant_id, "sagas", "UPDATE", before, after);
}

status_t gw_rpc_retry_saga(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                           ProtobufCMessage *resp_msg) {
    const Loyalty__V1__GatewayRetrySagaRequest *req = (const void *)req_msg;
    status_t st = gw_check_id("saga_id", req->saga_id, ID_MAX);
    gw_saga_t *x = arena_alloc(ctx->arena, sizeof *x);
    if (status_is_ok(&st)) {
        st = gw_saga_open(x, ctx, gw_svc(ctx), ctx->merchant_id, req->saga_id);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    /* A saga stopped while compensating goes back to compensating; else forward. */
    bool compensating = false;
    for (int i = 0; i < x->n_steps; i++) {
        compensating |= x->steps[i].state == GW_FAILED && x->steps[i].direction == GW_COMPENSATE;
    }
    int state = compensating ? GW_CANCELLING : GW_COMPLETING;
    int64_t steps_retried = 0;
    st = gw_store_retry(ctx->db, ctx->merchant_id, req->saga_id, state,
                        compensating ? GW_COMPENSATE : GW_FORWARD, &steps_retried);
    if (status_is_ok(&st)) {
        st = gw_audit_retry(ctx, x, state, steps_retried);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    Loyalty__V1__GatewayGetSagaRequest get = LOYALTY__V1__GATEWAY_GET_SAGA_REQUEST__INIT;
    get.merchant_id = (char *)ctx->merchant_id;
    get.saga_id = req->saga_id;
    Loyalty__V1__GatewayGetSagaResponse got = LOYALTY__V1__GATEWAY_GET_SAGA_RESPONSE__INIT;
    st = gw_rpc_get_saga(ctx, &get.base, &got.base);
    ((Loyalty__V1__GatewayRetrySagaResponse *)resp_msg)->saga = got.saga;
    return st;
}

/* ---- settings ---- */

status_t gw_rpc_get_settings(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                             ProtobufCMessage *resp_msg) {
    (void)req_msg;
    Loyalty__V1__GatewayGetSettingsResponse *resp = (void *)resp_msg;
    return gw_store_get_settings(ctx->db, ctx->arena, ctx->merchant_id, &resp->settings);
}

/* Every field but updated_at. */
static const char *const settings_updatable[] = {"welcome_coupon_template_ids", NULL};

status_t gw_rpc_update_settings(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                ProtobufCMessage *resp_msg) {
    const Loyalty__V1__GatewayUpdateSettingsRequest *req = (const void *)req_msg;
    Loyalty__V1__GatewayUpdateSettingsResponse *resp = (void *)resp_msg;
    fieldmask_t mask;
    status_t mst = fieldmask_parse(req->update_mask, &loyalty__v1__gateway_settings__descriptor,
                                   settings_updatable, &mask);
    if (!status_is_ok(&mst)) {
        return mst;
    }
    if (req->settings == NULL) {
        return status_invalid_field("settings", "required");
    }
    /* The settings as they are, under the lock every update takes, with the named fields
     * changed. */
    Loyalty__V1__GatewaySettings *s = NULL;
    mst = db_lock_named(ctx->db, "gateway.settings", ctx->merchant_id);
    if (status_is_ok(&mst)) {
        mst = gw_store_get_settings(ctx->db, ctx->arena, ctx->merchant_id, &s);
    }
    if (!status_is_ok(&mst)) {
        return mst;
    }
    fieldmask_apply(&mask, &s->base, &req->settings->base);
    if (s->n_welcome_coupon_template_ids > GW_WELCOME_TEMPLATES_MAX) {
        return status_invalid_field("settings.welcome_coupon_template_ids", "at most %d",
                                    GW_WELCOME_TEMPLATES_MAX);
    }
    for (size_t i = 0; i < s->n_welcome_coupon_template_ids; i++) {
        status_t st = gw_check_id("settings.welcome_coupon_template_ids",
                                  s->welcome_coupon_template_ids[i], ID_MAX);
        if (!status_is_ok(&st)) {
            return st;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(s->welcome_coupon_template_ids[i], s->welcome_coupon_template_ids[j]) == 0) {
                return status_invalid_field("settings.welcome_coupon_template_ids",
                                            "%s appears twice", s->welcome_coupon_template_ids[i]);
            }
        }
    }
    return gw_store_put_settings(ctx->db, ctx->arena, ctx->merchant_id, s, &resp->settings);
}

/* ---- the recovery job ---- */

typedef struct release_tx {
    gw_saga_t *x;
    rpc_ctx_t *ctx;
    gw_svc_t *svc;
    bool found;
} release_tx_t;

/* Takes one merchant with due held referral rewards and creates its REFERRAL_RELEASE saga. */
static status_t release_start_tx(db_t *db, void *arg) {
    release_tx_t *t = arg;
    char *merchant_id = NULL;
    status_t st = gw_store_take_referral_due(db, t->ctx->arena, &merchant_id, &t->found);
    if (!status_is_ok(&st) || !t->found) {
        return st;
    }
    Loyalty__V1__GatewayGetSettingsRequest *req =
        pb_new(t->ctx->arena, &loyalty__v1__gateway_get_settings_request__descriptor);
    req->merchant_id = merchant_id;
    char *key = arena_printf(t->ctx->arena, "referral-release:%lld:%s", (long long)t->ctx->now_s,
                             merchant_id);
    gw_saga_init(t->x, t->ctx, t->svc, merchant_id, GW_KIND_REFERRAL_RELEASE, key, "", "",
                 "ReferralRelease", &req->base);
    gw_saga_set_state(t->x, GW_COMPLETING);
    t->x->in_request = false;
    return gw_flush(t->x);
}

static void release_held_rewards(rpc_ctx_t *ctx, gw_svc_t *svc) {
    for (int i = 0; i < 10; i++) {
        release_tx_t t = {.x = arena_alloc(ctx->arena, sizeof(gw_saga_t)), .ctx = ctx, .svc = svc};
        status_t st = db_tx(ctx->db, release_start_tx, &t);
        if (!status_is_ok(&st) || !t.found) {
            if (!status_is_ok(&st)) {
                log_msg(LOG_WARN, "referral release: %s", st.message);
            }
            return;
        }
        st = gw_drive(t.x);
        if (!status_is_ok(&st)) {
            log_msg(LOG_WARN, "referral release saga %s: %s", t.x->id, st.message);
        }
    }
}

status_t gw_job_recover(rpc_ctx_t *ctx) {
    gw_svc_t *svc = ctx->service_state;
    if (ctx->now_s < svc->next_recovery_at) {
        return status_ok();
    }
    svc->next_recovery_at = ctx->now_s + svc->recovery_interval_s;
    int driven = 0;
    status_t st = gw_recover_some(ctx, svc, 200, &driven);
    if (driven > 0) {
        log_msg(LOG_INFO, "recovery pass drove %d sagas", driven);
    }
    release_held_rewards(ctx, svc);
    gw_report_sagas(ctx);
    return st;
}

/* ---- the table ---- */

static const rpc_method_t gateway_methods[] = {
    /* RPC_READ: they call other services and write the saga log themselves, in several
     * transactions; the saga log is their idempotency record (gateway.proto IDEMPOTENCY). */
    {"RegisterMember", gw_rpc_register_member, RPC_READ},
    {"GetMemberOverview", gw_rpc_get_member_overview, RPC_READ},
    {"QuoteCheckout", gw_rpc_quote_checkout, RPC_READ},
    {"BeginCheckout", gw_rpc_begin_checkout, RPC_READ},
    {"CompleteCheckout", gw_rpc_complete_checkout, RPC_READ},
    {"CancelCheckout", gw_rpc_cancel_checkout, RPC_READ},
    {"Checkout", gw_rpc_checkout, RPC_READ},
    {"GetCheckout", gw_rpc_get_checkout, RPC_READ},
    {"RefundOrder", gw_rpc_refund_order, RPC_READ},
    {"TopUpWallet", gw_rpc_top_up_wallet, RPC_READ},
    {"RedeemReward", gw_rpc_redeem_reward, RPC_READ},
    {"CheckIn", gw_rpc_check_in, RPC_READ},
    {"GetSaga", gw_rpc_get_saga, RPC_READ},
    {"ListSagas", gw_rpc_list_sagas, RPC_READ_ANY_MERCHANT},
    {"RetrySaga", gw_rpc_retry_saga, RPC_MUTATE},
    {"GetGatewaySettings", gw_rpc_get_settings, RPC_READ},
    {"UpdateGatewaySettings", gw_rpc_update_settings, RPC_MUTATE},
    /* The merchant settings record (gateway_rpc_merchant.c); admin only. */
    {"GetMerchantSettings", gw_rpc_get_merchant_settings, RPC_READ},
    {"UpdateMerchantSettings", gw_rpc_update_merchant_settings, RPC_MUTATE},
    {"ListAuditLog", gw_rpc_list_audit_log, RPC_READ},
    /* Operators' views for loyaltyctl (gateway_rpc_admin.c); admin only, as they are not in
     * gateway_storefront_methods. CheckHealth names no merchant for the operators' view. */
    {"CheckHealth", gw_rpc_check_health, RPC_READ_ANY_MERCHANT},
    {"VerifyLedgers", gw_rpc_verify_ledgers, RPC_READ},
    {"GetMemberDetail", gw_rpc_get_member_detail, RPC_READ},
    /* The participants' configuration RPCs for admin tools (gateway_rpc_relay.c); RPC_READ: the
     * participant runs the inner request's own transaction and idempotency key. */
    {"Relay", gw_rpc_relay, RPC_READ},
    {NULL, NULL, RPC_READ},
};

const rpc_service_t gateway_service = {&loyalty__v1__gateway__descriptor, gateway_methods, NULL};

/* A storefront credential (README "Credentials") may register, show, quote, check out, refund,
 * top up, redeem and check in for its merchants; sagas, settings, campaigns and the operators'
 * views (CheckHealth, VerifyLedgers, GetMemberDetail) are for admins. */
const char *const gateway_storefront_methods[] = {
    "/loyalty.v1.Gateway/RegisterMember",
    "/loyalty.v1.Gateway/GetMemberOverview",
    "/loyalty.v1.Gateway/QuoteCheckout",
    "/loyalty.v1.Gateway/BeginCheckout",
    "/loyalty.v1.Gateway/CompleteCheckout",
    "/loyalty.v1.Gateway/CancelCheckout",
    "/loyalty.v1.Gateway/Checkout",
    "/loyalty.v1.Gateway/GetCheckout",
    "/loyalty.v1.Gateway/RefundOrder",
    "/loyalty.v1.Gateway/TopUpWallet",
    "/loyalty.v1.Gateway/RedeemReward",
    "/loyalty.v1.Gateway/CheckIn",
    NULL,
};
