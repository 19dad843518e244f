/* test_db_roles_checkout.c -- the whole suite on the database roles of deploy/postgres/roles.sql
 * (README "Database roles"), as scripts/up and the Kubernetes manifests run it: the owner role
 * migrates the six schemas, then each service serves as its own role (loyalty_<schema>,
 * DB_MIGRATE_ON_START=0), which may touch its own schema only. A merchant is set up and a
 * checkout with points, wallet money, a promotion and referral rewards completes, with saga
 * steps committed asynchronously and events published: nothing any service does needs more
 * than its role grants. */
#include "gateway_it.h"

#include <sys/wait.h>

TestSuite(db_roles_checkout, .init = it_setup, .fini = it_teardown, .timeout = 600);

static char base_dsn[560];

static void exec_sql(const char *dsn, const char *sql) {
    PGconn *pg = PQconnectdb(dsn);
    cr_assert_eq(PQstatus(pg), CONNECTION_OK, "%s", PQerrorMessage(pg));
    PGresult *r = PQexec(pg, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(pg);
}

static void apply_roles(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/deploy/postgres/roles.sql", LOYALTY_TEST_SOURCE_DIR);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    static char sql[65536];
    size_t n = fread(sql, 1, sizeof sql - 1, f);
    fclose(f);
    sql[n] = '\0';
    exec_sql(base_dsn, sql);
}

static void migrate_as_owner(const char *service) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "LOYALTY_PG_DSN='%s user=loyalty_owner' '%s/%s/%s' --migrate >>'%s/%s-migrate.log' "
             "2>&1",
             base_dsn, LOYALTY_TEST_BUILD_DIR, service, service, LOYALTY_TEST_BUILD_DIR, service);
    int rc = system(cmd);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "%s --migrate as the owner failed (%d)",
              service, rc);
}

static const char *const schemas[SVC_N] = {"member",   "points", "wallet",
                                           "referral", "promo",  "gateway"};

/* The six services, each connected as its own role; the gateway pointed at the other five. */
static void start_as_roles(void) {
    static char dsn_env[SVC_N][sizeof pg_env];
    for (int i = 0; i < SVC_N; i++) {
        snprintf(dsn_env[i], sizeof dsn_env[i], "LOYALTY_PG_DSN=%s user=loyalty_%s", base_dsn,
                 schemas[i]);
    }
    for (int i = 0; i < SVC_GATEWAY; i++) {
        const char *env[] = {dsn_env[i], "DB_MIGRATE_ON_START=0", NULL};
        harness_start(&procs[i], svc_names[i], env);
    }
    /* gw_env() starts from svc_env()'s DSN: the gateway's role. */
    memcpy(pg_env, dsn_env[SVC_GATEWAY], sizeof pg_env);
    participant_env[0] = pg_env;
    gw_extra_env[0] = "DB_MIGRATE_ON_START=0";
    gw_extra_env[1] = NULL;
    static const char *env[HARNESS_ENV_MAX + 1];
    gw_env(env);
    harness_start(&procs[SVC_GATEWAY], "gateway", env);
}

Test(db_roles_checkout, a_checkout_with_every_service_as_its_own_role) {
    snprintf(base_dsn, sizeof base_dsn, "%s", harness_private_database());
    apply_roles();
    for (int i = 0; i < SVC_N; i++) {
        migrate_as_owner(svc_names[i]);
    }
    apply_roles(); /* after the migrations, as README says */
    start_as_roles();

    shop_t s;
    open_shop(&s, "roles-checkout");
    const char *b = new_buyer(&s, 5000, 5000);
    Loyalty__V1__GatewayCart *cart = shirt_cart();
    static char *codes[] = {"SAVE10"};
    cart->codes = codes;
    cart->n_codes = 1;
    Loyalty__V1__GatewayCheckout *co = NULL;
    assert_ok(begin_checkout(s.m, "roles-order", "roles-order", b, cart, pay(1000, 500), &co));
    Loyalty__V1__GatewayCheckout *done = NULL;
    assert_ok(complete_checkout(s.m, co->checkout_id, "pay-roles", &done));
    cr_assert_gt(done->result->points_spent, 0);
    cr_assert_gt(done->result->wallet_captured_cents, 0);
    cr_assert_gt(done->result->n_referral_rewards, 0, "no referral rewards");
    assert_ledgers_clean(s.m);

    /* The services really are connected as the six roles. */
    PGconn *pg = PQconnectdb(base_dsn);
    PGresult *r = PQexec(pg, "SELECT count(DISTINCT usename) FROM pg_stat_activity "
                             "WHERE datname = current_database() AND usename IN ('loyalty_member', "
                             "'loyalty_points', 'loyalty_wallet', 'loyalty_referral', "
                             "'loyalty_promo', 'loyalty_gateway')");
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
    cr_assert_str_eq(PQgetvalue(r, 0, 0), "6", "the services are not connected as their roles");
    PQclear(r);
    PQfinish(pg);

    /* Events of every service reach the stream: the outbox publishers work as the roles. */
    char sql[200];
    bool published = false;
    const char *params[1] = {s.m};
    for (int i = 0; i < 600 && !published; i++) {
        published = true;
        for (int k = 0; k < SVC_N && published; k++) {
            snprintf(sql, sizeof sql,
                     "SELECT 1 FROM %s.outbox WHERE merchant_id = $1 AND published_at IS NULL",
                     schemas[k]);
            PGconn *pc = PQconnectdb(base_dsn);
            PGresult *pr = PQexecParams(pc, sql, 1, NULL, params, NULL, NULL, 0);
            published = PQresultStatus(pr) == PGRES_TUPLES_OK && PQntuples(pr) == 0;
            PQclear(pr);
            PQfinish(pc);
        }
        if (!published) {
            sleep_ms(50);
        }
    }
    cr_assert(published, "events of merchant %s still unpublished after 30 s", s.m);
}
