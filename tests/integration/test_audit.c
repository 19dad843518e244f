/* test_audit.c -- the audit trail of configuration changes (README "Audit trail"): a row per
 * audited call with who, which merchant, RPC, idempotency key and request id, and a row per
 * changed row with exactly the fields that changed, written in the call's transaction; replays,
 * failures and other calls write nothing; the table refuses updates and deletes. */
#include "credentials.h"
#include "harness.h"
#include "loyalty/v1/member.pb-c.h"

#include <criterion/criterion.h>
#include <libpq-fe.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TOK_ADMIN "audit-admin-token-3f9a"

static svc_proc_t member;
static arena_t arena;
static char cred_path[128];

static void setup(void) {
    harness_init();
    arena_init(&arena);
    memset(&member, 0, sizeof member);
}

static void teardown(void) {
    if (member.pid > 0) {
        cr_expect_eq(harness_stop(&member), 0, "member-svc did not exit cleanly");
    }
    if (cred_path[0]) {
        unlink(cred_path);
    }
    arena_free(&arena);
    harness_fini();
}

TestSuite(audit, .init = setup, .fini = teardown, .timeout = 300);

static status_t call_member(const char *method, const void *req, void *resp,
                            const char *request_id) {
    rpc_call_opts_t opts = {.timeout_ms = 20000, .auth_token = TOK_ADMIN, .request_id = request_id};
    return rpc_call(rpc_channel_get(member.addr), &loyalty__v1__member_service__descriptor, method,
                    (const ProtobufCMessage *)req, &arena, (ProtobufCMessage **)resp, &opts);
}

/* The merchant's audit rows as text lines "op|table|credential|rpc|key|request|before|after". */
static int audit_rows(const char *merchant, char lines[][1024], int max) {
    PGconn *pg = PQconnectdb(harness_pg_dsn());
    cr_assert_eq(PQstatus(pg), CONNECTION_OK, "%s", PQerrorMessage(pg));
    const char *params[1] = {merchant};
    PGresult *r = PQexecParams(pg,
                               "SELECT op || '|' || coalesce(table_name, '') || '|' || "
                               "credential_id || '|' || rpc || '|' || idempotency_key || '|' || "
                               "request_id || '|' || coalesce((before - 'updated_at')::text, '') "
                               "|| '|' || coalesce((after - 'updated_at' - 'created_at')::text, "
                               "'') FROM member.audit_log WHERE merchant_id = $1 ORDER BY id",
                               1, NULL, params, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
    int n = PQntuples(r);
    cr_assert_leq(n, max);
    for (int i = 0; i < n; i++) {
        snprintf(lines[i], 1024, "%s", PQgetvalue(r, i, 0));
    }
    PQclear(r);
    PQfinish(pg);
    return n;
}

static void expect_sql_refused(const char *sql) {
    PGconn *pg = PQconnectdb(harness_pg_dsn());
    cr_assert_eq(PQstatus(pg), CONNECTION_OK, "%s", PQerrorMessage(pg));
    PGresult *r = PQexec(pg, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_FATAL_ERROR, "%s was not refused", sql);
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    cr_assert_str_eq(state ? state : "", "LY001", "%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(pg);
}

Test(audit, configuration_changes_are_recorded_exactly_once_with_before_and_after) {
    /* Goal: CreateTier and UpdateTier by an admin credential leave a CALL row with who and
     * which call, and a row of the tier with exactly its changed fields; the replay of a call,
     * a failed call and a call that is no configuration change leave nothing more. */
    const char *m = harness_merchant("audit");
    snprintf(cred_path, sizeof cred_path, "/tmp/loyalty-audit-creds-%d", (int)getpid());
    FILE *f = fopen(cred_path, "w");
    cr_assert_not_null(f);
    uint8_t d[CRED_DIGEST_BYTES];
    cred_digest(TOK_ADMIN, strlen(TOK_ADMIN), d);
    fprintf(f, "audit-admin admin %s ", m);
    for (int i = 0; i < CRED_DIGEST_BYTES; i++) {
        fprintf(f, "%02x", d[i]);
    }
    fprintf(f, "\n");
    cr_assert_eq(fclose(f), 0);
    char cred_env[200];
    snprintf(cred_env, sizeof cred_env, "LOYALTY_CREDENTIALS_FILE=%s", cred_path);
    const char *env[] = {cred_env, "LOYALTY_AUTH_TOKEN=audit-service-token", NULL};
    harness_start(&member, "member-svc", env);

    Loyalty__V1__MemberTier tier = LOYALTY__V1__MEMBER_TIER__INIT;
    tier.name = "Gold";
    tier.rank = 1;
    tier.upgrade_threshold = 100;
    tier.retain_threshold = 50;
    tier.period_months = 12;
    tier.earn_multiplier_bps = 10000;
    Loyalty__V1__MemberCreateTierRequest create = LOYALTY__V1__MEMBER_CREATE_TIER_REQUEST__INIT;
    create.merchant_id = (char *)m;
    create.idempotency_key = "audit-create-1";
    create.tier = &tier;
    Loyalty__V1__MemberCreateTierResponse *created = NULL;
    status_t st = call_member("CreateTier", &create, &created, "req-audit-create");
    cr_assert_eq(st.code, STATUS_OK, "%s: %s", st.reason, st.message);

    Loyalty__V1__MemberTier changed = tier;
    changed.id = created->tier->id;
    changed.name = "Gold+";
    Loyalty__V1__MemberUpdateTierRequest update = LOYALTY__V1__MEMBER_UPDATE_TIER_REQUEST__INIT;
    update.merchant_id = (char *)m;
    update.idempotency_key = "audit-update-1";
    update.tier_id = created->tier->id;
    update.tier = &changed;
    update.update_mask = HARNESS_MASK("name");
    st = call_member("UpdateTier", &update, NULL, "req-audit-update");
    cr_assert_eq(st.code, STATUS_OK, "%s: %s", st.reason, st.message);
    st = call_member("UpdateTier", &update, NULL, "req-audit-replay"); /* a replay */
    cr_assert_eq(st.code, STATUS_OK, "%s: %s", st.reason, st.message);
    update.idempotency_key = "audit-update-2";
    update.tier_id = "tier_unknown";
    st = call_member("UpdateTier", &update, NULL, "req-audit-fail");
    cr_assert_eq(st.code, STATUS_NOT_FOUND, "%s: %s", st.reason, st.message);

    Loyalty__V1__MemberProfile p = LOYALTY__V1__MEMBER_PROFILE__INIT;
    p.name = "Not configuration";
    Loyalty__V1__CreateMemberRequest cm = LOYALTY__V1__CREATE_MEMBER_REQUEST__INIT;
    cm.merchant_id = (char *)m;
    cm.idempotency_key = "audit-member-1";
    cm.profile = &p;
    st = call_member("CreateMember", &cm, NULL, "req-audit-member");
    cr_assert_eq(st.code, STATUS_OK, "%s: %s", st.reason, st.message);

    static char rows[16][1024];
    int n = audit_rows(m, rows, 16);
    /* The first tier also creates the merchant's settings row: a change, recorded as one. */
    cr_assert_eq(n, 5, "CALL + 2 INSERTs for the create, CALL + UPDATE for the update; got %d", n);
    cr_assert_str_eq(rows[0], "CALL||audit-admin|/loyalty.v1.MemberService/CreateTier|"
                              "audit-create-1|req-audit-create||");
    char want[1024];
    snprintf(want, sizeof want,
             "INSERT|tiers|audit-admin|/loyalty.v1.MemberService/CreateTier|audit-create-1|"
             "req-audit-create||{\"id\": \"%s\", \"name\": \"Gold\", \"rank\": 1, "
             "\"merchant_id\": \"%s\", \"discount_bps\": 0, \"period_months\": 12, "
             "\"retain_threshold\": 50, \"upgrade_threshold\": 100, "
             "\"earn_multiplier_bps\": 10000, \"express_spend_cents\": 0, "
             "\"birthday_bonus_points\": 0}",
             created->tier->id, m);
    const char *settings = "INSERT|settings|audit-admin|/loyalty.v1.MemberService/CreateTier|"
                           "audit-create-1|req-audit-create||{";
    cr_assert(strncmp(rows[1], settings, strlen(settings)) == 0, "%s", rows[1]);
    cr_assert_str_eq(rows[2], want);
    cr_assert_str_eq(rows[3], "CALL||audit-admin|/loyalty.v1.MemberService/UpdateTier|"
                              "audit-update-1|req-audit-update||");
    cr_assert_str_eq(rows[4], "UPDATE|tiers|audit-admin|/loyalty.v1.MemberService/UpdateTier|"
                              "audit-update-1|req-audit-update|{\"name\": \"Gold\"}|"
                              "{\"name\": \"Gold+\"}");

    /* scripts/audit lists it. */
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "LOYALTY_PG_DSN='%s' '%s/scripts/audit' --merchant '%s' 2>&1",
             harness_pg_dsn(), LOYALTY_TEST_SOURCE_DIR, m);
    FILE *out = popen(cmd, "r");
    cr_assert_not_null(out);
    static char listing[16384];
    size_t got = fread(listing, 1, sizeof listing - 1, out);
    listing[got] = '\0';
    cr_assert_eq(pclose(out), 0, "scripts/audit failed: %s", listing);
    cr_assert(strstr(listing, "\tmember\taudit-admin\t/loyalty.v1.MemberService/UpdateTier\t"
                              "audit-update-1\treq-audit-update\ttiers\tUPDATE\t") != NULL,
              "%s", listing);
    cr_assert(strstr(listing, "{\"name\": \"Gold+\"") != NULL, "%s", listing);

    /* Append-only, even for the superuser the test connects as. */
    char sql[256];
    snprintf(sql, sizeof sql, "UPDATE member.audit_log SET rpc = 'x' WHERE merchant_id = '%s'", m);
    expect_sql_refused(sql);
    snprintf(sql, sizeof sql, "DELETE FROM member.audit_log WHERE merchant_id = '%s'", m);
    expect_sql_refused(sql);
    expect_sql_refused("TRUNCATE member.audit_log");
}
