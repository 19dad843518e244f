/* audit.c -- the list of audited RPCs and the statement that opens a call's audit record. */
#include "audit.h"

#include <string.h>

/* Configuration changes of every service. Calls of the checkout and of the jobs are not here:
 * they are the business itself, and each leaves its own ledger behind. */
const char *const audit_methods[] = {
    "/loyalty.v1.Gateway/RetrySaga",
    "/loyalty.v1.Gateway/UpdateGatewaySettings",
    "/loyalty.v1.CampaignService/SetCampaign",
    "/loyalty.v1.MemberService/UpdateMemberSettings",
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

status_t audit_begin(db_t *db, const char *merchant_id, const char *credential_id, const char *rpc,
                     const char *idempotency_key, const char *request_id) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, credential_id);
    db_param_text(&p, rpc);
    db_param_text(&p, idempotency_key ? idempotency_key : "");
    db_param_text(&p, request_id);
    return db_exec(db,
                   "WITH ctx AS (SELECT set_config('loyalty.audit_merchant', $1, true),"
                   " set_config('loyalty.audit_credential', $2, true),"
                   " set_config('loyalty.audit_rpc', $3, true),"
                   " set_config('loyalty.audit_idempotency_key', $4, true),"
                   " set_config('loyalty.audit_request_id', $5, true))"
                   " INSERT INTO audit_log (merchant_id, credential_id, rpc, idempotency_key,"
                   " request_id, op) SELECT $1, $2, $3, $4, $5, 'CALL' FROM ctx",
                   &p, NULL);
}
