/* test_audit_relay.c -- relayed calls in the audit trail (README "Audit trail"): a change an
 * admin makes through Gateway.Relay is recorded by the participant as the admin's (the call's
 * CALL row and the rows it changed), with the gateway's service credential as the one it came
 * through; only the service credential may say whom it acts for (metadata
 * loyalty-on-behalf-of): an admin that sends it is refused and nothing is recorded, and a
 * malformed value is refused too. */
#include "credentials_it.h"
#include "loyalty/v1/audit.pb-c.h"

#include <libpq-fe.h>

#define SERVICE_TOKEN "audit-relay-svc-token-3b9e"
#define ADMIN_TOKEN "audit-relay-admin-token-c1d7"

static void relay_setup(void) {
    it_cred_setup(SERVICE_TOKEN);
}

TestSuite(audit_relay, .init = relay_setup, .fini = it_cred_teardown, .timeout = 600);

static void start_with_admin(const char *m) {
    it_cred_start_with_admin("audit-relay", m, ADMIN_TOKEN);
}

/* A call with `token`, and `behalf` in loyalty-on-behalf-of when not NULL. */
static status_t call_as(int svc, const char *token, const char *behalf, const char *method,
                        const void *req, void *resp) {
    rpc_call_opts_t opts = {.timeout_ms = 20000, .auth_token = token};
    if (behalf != NULL) {
        opts.extra_keys[0] = "loyalty-on-behalf-of";
        opts.extra_values[0] = behalf;
        opts.extra_count = 1;
    }
    return rpc_call(rpc_channel_get(procs[svc].addr), svc_desc[svc], method,
                    (const ProtobufCMessage *)req, &arena, (ProtobufCMessage **)resp, &opts);
}

/* SetTagRules for `m` with one rule "orders_count >= threshold -> regular", under `key`. */
static Loyalty__V1__MemberSetTagRulesRequest *tag_rules(const char *m, int64_t threshold,
                                                        const char *key) {
    Loyalty__V1__MemberTagRule *rule = arena_alloc(&arena, sizeof *rule);
    loyalty__v1__member_tag_rule__init(rule);
    rule->tag = "regular";
    rule->metric = LOYALTY__V1__MEMBER_TAG_METRIC__MEMBER_TAG_METRIC_ORDERS_COUNT;
    rule->op = LOYALTY__V1__MEMBER_TAG_OPERATOR__MEMBER_TAG_OPERATOR_GTE;
    rule->threshold = threshold;
    Loyalty__V1__MemberTagRule **rules = arena_alloc(&arena, sizeof *rules);
    rules[0] = rule;
    Loyalty__V1__MemberSetTagRulesRequest *r = arena_alloc(&arena, sizeof *r);
    loyalty__v1__member_set_tag_rules_request__init(r);
    r->merchant_id = (char *)m;
    r->idempotency_key = (char *)key;
    r->rules = rules;
    r->n_rules = 1;
    return r;
}

/* member-svc's trail of `m` (listed with the service credential). */
static Loyalty__V1__AuditListAuditLogResponse *member_trail(const char *m) {
    Loyalty__V1__AuditListAuditLogRequest r = LOYALTY__V1__AUDIT_LIST_AUDIT_LOG_REQUEST__INIT;
    r.merchant_id = (char *)m;
    rpc_call_opts_t opts = {.timeout_ms = 20000, .auth_token = SERVICE_TOKEN};
    Loyalty__V1__AuditListAuditLogResponse *out = NULL;
    assert_ok(rpc_call(rpc_channel_get(procs[SVC_MEMBER].addr),
                       &loyalty__v1__audit_service__descriptor, "ListAuditLog", &r.base, &arena,
                       (ProtobufCMessage **)&out, &opts));
    return out;
}

/* The trail's entry of the call made with idempotency key `key`; NULL when none. */
static const Loyalty__V1__AuditEntry *
entry_with_key(const Loyalty__V1__AuditListAuditLogResponse *l, const char *key) {
    const Loyalty__V1__AuditEntry *found = NULL;
    for (size_t i = 0; i < l->n_entries; i++) {
        if (strcmp(l->entries[i]->idempotency_key, key) == 0) {
            cr_assert_null(found, "the call of %s is recorded twice", key);
            found = l->entries[i];
        }
    }
    return found;
}

/* How many of member-svc's audit rows of `m` under key `key` name `credential` through `via`. */
static int audit_rows(const char *m, const char *key, const char *credential, const char *via) {
    PGconn *pg = PQconnectdb(test_dsn());
    cr_assert_eq(PQstatus(pg), CONNECTION_OK, "%s", PQerrorMessage(pg));
    const char *params[4] = {m, key, credential, via};
    PGresult *r = PQexecParams(pg,
                               "SELECT count(*) FROM member.audit_log WHERE merchant_id = $1 "
                               " AND idempotency_key = $2 AND credential_id = $3 "
                               " AND via_credential_id = $4",
                               4, NULL, params, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
    int n = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(pg);
    return n;
}

Test(audit_relay, a_relayed_change_is_recorded_as_the_admins_through_the_gateway) {
    const char *m = harness_merchant("arelay");
    start_with_admin(m);
    /* The admin changes member-svc's tag rules through the gateway. */
    const char *key = harness_key();
    Loyalty__V1__MemberSetTagRulesRequest *inner = tag_rules(m, 5, key);
    Loyalty__V1__GatewayRelayRequest r = LOYALTY__V1__GATEWAY_RELAY_REQUEST__INIT;
    r.merchant_id = (char *)m;
    r.service = "loyalty.v1.MemberService";
    r.method = "SetTagRules";
    r.request.data = pb_pack_arena(&arena, &inner->base, &r.request.len);
    Loyalty__V1__GatewayRelayResponse *out = NULL;
    assert_ok(call_as(SVC_GATEWAY, ADMIN_TOKEN, NULL, "Relay", &r, &out));

    const Loyalty__V1__AuditEntry *e = entry_with_key(member_trail(m), key);
    cr_assert_not_null(e, "the relayed call is not in member-svc's trail");
    cr_assert_str_eq(e->rpc, "/loyalty.v1.MemberService/SetTagRules");
    cr_assert_str_eq(e->credential_id, "shop-admin");
    cr_assert_str_eq(e->via_credential_id, "service");
    cr_assert_gt(e->n_changes, 0);
    /* The CALL row and every changed row carry both; none is the gateway's alone. */
    int rows = audit_rows(m, key, "shop-admin", "service");
    cr_assert_eq(rows, 1 + (int)e->n_changes, "%d rows", rows);
    cr_assert_eq(audit_rows(m, key, "service", ""), 0);

    /* A change the service credential makes for itself is its own, through nobody. */
    const char *own = harness_key();
    assert_ok(call_as(SVC_MEMBER, SERVICE_TOKEN, NULL, "SetTagRules", tag_rules(m, 7, own), NULL));
    e = entry_with_key(member_trail(m), own);
    cr_assert_not_null(e);
    cr_assert_str_eq(e->credential_id, "service");
    cr_assert_str_eq(e->via_credential_id, "");
}

Test(audit_relay, only_the_service_credential_may_act_on_behalf_of_another) {
    const char *m = harness_merchant("arelay");
    start_with_admin(m);
    /* An admin calling member-svc directly and claiming to act for someone else is refused,
     * and nothing of the call is recorded. */
    const char *forged = harness_key();
    assert_status(call_as(SVC_MEMBER, ADMIN_TOKEN, "someone-else", "SetTagRules",
                          tag_rules(m, 5, forged), NULL),
                  STATUS_PERMISSION_DENIED, "ON_BEHALF_OF_NOT_ALLOWED");
    cr_assert_null(entry_with_key(member_trail(m), forged));
    /* Without the claim the same admin's call is its own. */
    const char *plain = harness_key();
    assert_ok(call_as(SVC_MEMBER, ADMIN_TOKEN, NULL, "SetTagRules", tag_rules(m, 6, plain), NULL));
    const Loyalty__V1__AuditEntry *e = entry_with_key(member_trail(m), plain);
    cr_assert_not_null(e);
    cr_assert_str_eq(e->credential_id, "shop-admin");
    cr_assert_str_eq(e->via_credential_id, "");
    /* The service credential's claim must be a credential id. */
    assert_status(call_as(SVC_MEMBER, SERVICE_TOKEN, "not an id!", "SetTagRules",
                          tag_rules(m, 8, harness_key()), NULL),
                  STATUS_INVALID_ARGUMENT, "ON_BEHALF_OF_MALFORMED");
}
