/* audit.c -- the list of audited RPCs, the statements that record a call and its changes, and
 * the listing of a schema's trail. */
#include "audit.h"

#include "pb.h"
#include "sql_time.h"

#include <string.h>

/* Configuration changes of every service. Calls of the checkout and of the jobs are not here:
 * they are the business itself, and each leaves its own ledger behind. */
const char *const audit_methods[] = {
    "/loyalty.v1.Gateway/RetrySaga",
    "/loyalty.v1.Gateway/UpdateGatewaySettings",
    "/loyalty.v1.Gateway/UpdateMerchantSettings",
    "/loyalty.v1.CampaignService/SetCampaign",
    "/loyalty.v1.MemberService/UpdateMemberSettings",
    "/loyalty.v1.MemberService/SetTagRules",
    "/loyalty.v1.MemberService/CreateTier",
    "/loyalty.v1.MemberService/UpdateTier",
    "/loyalty.v1.MemberService/CreateMembershipPlan",
    "/loyalty.v1.MemberService/UpdateMembershipPlan",
    "/loyalty.v1.MemberService/AssignTier",
    "/loyalty.v1.PointsService/UpdateSettings",
    "/loyalty.v1.PointsService/CreateCampaign",
    "/loyalty.v1.PointsService/EndCampaign",
    "/loyalty.v1.PointsService/Adjust",
    "/loyalty.v1.WalletService/UpdateSettings",
    "/loyalty.v1.WalletService/CreateTopUpPlan",
    "/loyalty.v1.WalletService/UpdateTopUpPlan",
    "/loyalty.v1.ReferralService/SetReferralProgram",
    "/loyalty.v1.PromoService/CreatePromotion",
    "/loyalty.v1.PromoService/UpdatePromotion",
    "/loyalty.v1.PromoService/PausePromotion",
    "/loyalty.v1.PromoService/ResumePromotion",
    "/loyalty.v1.PromoService/GeneratePromoCodes",
    "/loyalty.v1.PromoService/CreateCouponTemplate",
    "/loyalty.v1.PromoService/SetCouponTemplateActive",
    "/loyalty.v1.PromoService/UpdatePromoSettings",
    NULL,
};

bool audit_is_audited(const char *path) {
    for (int i = 0; audit_methods[i]; i++) {
        if (strcmp(audit_methods[i], path) == 0) {
            return true;
        }
    }
    return false;
}

status_t audit_begin(db_t *db, const char *merchant_id, const char *credential_id,
                     const char *via_credential_id, const char *rpc, const char *idempotency_key,
                     const char *request_id) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, credential_id);
    db_param_text(&p, rpc);
    db_param_text(&p, idempotency_key ? idempotency_key : "");
    db_param_text(&p, request_id);
    db_param_text(&p, via_credential_id ? via_credential_id : "");
    /* The CALL row's id is drawn first, so that the row and the setting the triggers copy
     * (loyalty.audit_call) carry the same one. */
    return db_exec(db,
                   "WITH ctx AS (SELECT set_config('loyalty.audit_call',"
                   " nextval(pg_get_serial_sequence('audit_log', 'id'))::text, true) AS call,"
                   " set_config('loyalty.audit_merchant', $1, true),"
                   " set_config('loyalty.audit_credential', $2, true),"
                   " set_config('loyalty.audit_rpc', $3, true),"
                   " set_config('loyalty.audit_idempotency_key', $4, true),"
                   " set_config('loyalty.audit_request_id', $5, true),"
                   " set_config('loyalty.audit_via', $6, true))"
                   " INSERT INTO audit_log (merchant_id, credential_id, rpc, idempotency_key,"
                   " request_id, op, id, call_id, via_credential_id) SELECT $1, $2, $3, $4, $5,"
                   " 'CALL', call::bigint, call::bigint, $6 FROM ctx",
                   &p, NULL);
}

status_t audit_record(db_t *db, const char *merchant_id, const char *table_name, const char *op,
                      const char *before_json, const char *after_json) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, table_name);
    db_param_text(&p, op);
    if (before_json) {
        db_param_text(&p, before_json);
    } else {
        db_param_null(&p);
    }
    if (after_json) {
        db_param_text(&p, after_json);
    } else {
        db_param_null(&p);
    }
    return db_exec(db,
                   "INSERT INTO audit_log (merchant_id, credential_id, rpc, idempotency_key,"
                   " request_id, table_name, op, before, after, call_id, via_credential_id)"
                   " SELECT $1, current_setting('loyalty.audit_credential', true),"
                   " current_setting('loyalty.audit_rpc', true),"
                   " current_setting('loyalty.audit_idempotency_key', true),"
                   " current_setting('loyalty.audit_request_id', true), $2, $3, $4::jsonb,"
                   " $5::jsonb, nullif(current_setting('loyalty.audit_call', true), '')::bigint,"
                   " coalesce(current_setting('loyalty.audit_via', true), '')"
                   " WHERE audit_active() AND current_setting('loyalty.audit_merchant', true) = $1",
                   &p, NULL);
}

/* The calls of one page (newest first), each joined with the rows it changed in their order
 * (none: one row of NULLs). A row recorded before call_id existed (lib/migrations/006) is
 * matched to its call by the request id, RPC and key it shares with it. */
// clang-format off
static const char list_sql[] =
    "WITH calls AS (SELECT id, at, call_id, credential_id, rpc, idempotency_key, request_id,"
    " via_credential_id"
    " FROM audit_log WHERE merchant_id = $1 AND op = 'CALL' AND at >= to_timestamp($2)"
    " AND (NOT $3 OR (at, id) < (timestamptz 'epoch' + ($4::bigint / 1000000) * interval '1 s'"
    " + ($4::bigint % 1000000) * interval '1 microsecond', $5::bigint))"
    " ORDER BY at DESC, id DESC LIMIT $6)"
    " SELECT c.id, " SQL_EPOCH_US("c.at") ", c.credential_id, c.rpc,"
    " c.idempotency_key, c.request_id, r.table_name, r.op, r.before::text, r.after::text,"
    " c.via_credential_id"
    " FROM calls c LEFT JOIN LATERAL ("
    "  SELECT w.id, w.table_name, w.op, w.before, w.after FROM audit_log w"
    "  WHERE w.merchant_id = $1 AND w.call_id = c.id AND w.op <> 'CALL'"
    "  UNION ALL"
    "  SELECT w.id, w.table_name, w.op, w.before, w.after FROM audit_log w"
    "  WHERE c.call_id IS NULL AND w.merchant_id = $1 AND w.call_id IS NULL AND w.op <> 'CALL'"
    "  AND w.request_id = c.request_id AND w.rpc = c.rpc"
    "  AND w.idempotency_key = c.idempotency_key AND w.id > c.id) r ON true"
    " ORDER BY c.at DESC, c.id DESC, r.id";
// clang-format on

status_t audit_list(db_t *db, arena_t *a, const char *service, const char *merchant_id,
                    int64_t since_at, audit_position_t after, int limit,
                    Loyalty__V1__AuditEntry ***entries, size_t *n_entries) {
    *entries = NULL;
    *n_entries = 0;
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_int(&p, since_at);
    db_param_bool(&p, after.set);
    db_param_int(&p, after.at_us);
    db_param_int(&p, after.id);
    db_param_int(&p, limit);
    PGresult *r = NULL;
    status_t st = db_exec(db, list_sql, &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    int rows = PQntuples(r);
    Loyalty__V1__AuditEntry **out = arena_alloc(a, ((size_t)rows + 1) * sizeof *out);
    /* Each call's changes are consecutive rows; count them first to size the arrays. */
    size_t n = 0;
    for (int i = 0; i < rows;) {
        int first = i;
        int64_t id = db_get_int(r, i, 0);
        while (i < rows && db_get_int(r, i, 0) == id) {
            i++;
        }
        Loyalty__V1__AuditEntry *e = pb_new(a, &loyalty__v1__audit_entry__descriptor);
        e->id = id;
        e->recorded_at_us = db_get_int(r, first, 1);
        e->recorded_at = e->recorded_at_us / 1000000;
        e->service = (char *)service;
        e->merchant_id = arena_strdup(a, merchant_id);
        e->credential_id = arena_strdup(a, db_get_str(r, first, 2));
        e->rpc = arena_strdup(a, db_get_str(r, first, 3));
        e->idempotency_key = arena_strdup(a, db_get_str(r, first, 4));
        e->request_id = arena_strdup(a, db_get_str(r, first, 5));
        e->via_credential_id = arena_strdup(a, db_get_str(r, first, 10));
        size_t changes = db_is_null(r, first, 7) ? 0 : (size_t)(i - first);
        e->changes = arena_alloc(a, (changes + 1) * sizeof *e->changes);
        for (size_t k = 0; k < changes; k++) {
            int row = first + (int)k;
            Loyalty__V1__AuditChange *c = pb_new(a, &loyalty__v1__audit_change__descriptor);
            c->table = arena_strdup(a, db_get_str(r, row, 6));
            c->op = arena_strdup(a, db_get_str(r, row, 7));
            c->before_json = arena_strdup(a, db_is_null(r, row, 8) ? "" : db_get_str(r, row, 8));
            c->after_json = arena_strdup(a, db_is_null(r, row, 9) ? "" : db_get_str(r, row, 9));
            e->changes[k] = c;
        }
        e->n_changes = changes;
        out[n++] = e;
    }
    PQclear(r);
    *entries = out;
    *n_entries = n;
    return status_ok();
}

bool audit_entry_before(const Loyalty__V1__AuditEntry *a, const Loyalty__V1__AuditEntry *b) {
    if (a->recorded_at_us != b->recorded_at_us) {
        return a->recorded_at_us > b->recorded_at_us;
    }
    int c = strcmp(a->service, b->service);
    if (c != 0) {
        return c > 0;
    }
    return a->id > b->id;
}
