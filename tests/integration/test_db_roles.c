/* test_db_roles.c -- the database roles of deploy/postgres/roles.sql (README "Database roles"):
 * migrations applied by the owner role with `--migrate`, member-svc serving as its own role
 * (DB_MIGRATE_ON_START=0), and that role unable to read wallet.* or to change any schema. */
#include "harness.h"
#include "loyalty/v1/member.pb-c.h"
#include "member_client.h"

#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <unistd.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static svc_proc_t member;
static arena_t arena;
static char dsn_base[700];

static void setup(void) {
    harness_init();
    arena_init(&arena);
    memset(&member, 0, sizeof member);
}

static void teardown(void) {
    if (member.pid > 0) {
        cr_expect_eq(harness_stop(&member), 0, "member-svc did not exit cleanly");
    }
    arena_free(&arena);
    harness_fini();
}

TestSuite(db_roles, .init = setup, .fini = teardown, .timeout = 300);

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* The test database's DSN as `role`. */
static const char *dsn_as(const char *role) {
    char *s = arena_alloc(&arena, strlen(dsn_base) + 64);
    sprintf(s, "%s user=%s", dsn_base, role);
    return s;
}

/* Runs SQL as the test's superuser; the result's status must be `want`. */
static void exec_as(const char *dsn, const char *sql, ExecStatusType want, const char *sqlstate) {
    PGconn *pg = PQconnectdb(dsn);
    cr_assert_eq(PQstatus(pg), CONNECTION_OK, "%s", PQerrorMessage(pg));
    PGresult *r = PQexec(pg, sql);
    cr_assert_eq(PQresultStatus(r), want, "%s: %s", sql, PQresultErrorMessage(r));
    if (sqlstate) {
        const char *got = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        cr_assert_str_eq(got ? got : "", sqlstate, "%s: %s", sql, PQresultErrorMessage(r));
    }
    PQclear(r);
    PQfinish(pg);
}

static void migrate_as_owner(const char *service) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "LOYALTY_PG_DSN='%s' '%s/%s/%s' --migrate >>'%s/%s-migrate.log' 2>&1",
             dsn_as("loyalty_owner"), LOYALTY_TEST_BUILD_DIR, service, service,
             LOYALTY_TEST_BUILD_DIR, service);
    int rc = system(cmd);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "%s --migrate as the owner failed (%d)",
              service, rc);
}

Test(db_roles, member_svc_role_cannot_read_wallet) {
    /* Goal: with roles.sql the services run as roles limited to their schema: member-svc
     * serves as loyalty_member, which reads nothing of wallet.* and changes no schema. */
    snprintf(dsn_base, sizeof dsn_base, "%s", harness_private_database());
    char path[1024];
    snprintf(path, sizeof path, "%s/deploy/postgres/roles.sql", LOYALTY_TEST_SOURCE_DIR);
    const char *roles = read_file(path);
    exec_as(dsn_base, roles, PGRES_COMMAND_OK, NULL);
    exec_as(dsn_base, roles, PGRES_COMMAND_OK, NULL); /* idempotent */
    migrate_as_owner("member-svc");
    migrate_as_owner("wallet-svc");
    exec_as(dsn_base, roles, PGRES_COMMAND_OK, NULL); /* after an upgrade, as README says */

    char dsn_env[800];
    snprintf(dsn_env, sizeof dsn_env, "LOYALTY_PG_DSN=%s", dsn_as("loyalty_member"));
    const char *env[] = {dsn_env, "DB_MIGRATE_ON_START=0", NULL};
    harness_start(&member, "member-svc", env);

    /* It works as its own role: a member is created (tables, idempotency keys, outbox). */
    const char *m = harness_merchant("roles");
    (void)member_create_id(member.addr, &arena, m, &(member_spec_t){.name = "Role Test"});

    const char *as_member = dsn_as("loyalty_member");
    exec_as(as_member, "SELECT count(*) FROM member.members", PGRES_TUPLES_OK, NULL);
    /* The role's planner costs, for sessions that cannot set them (through PgBouncer): any other
     * value divides by zero. */
    exec_as(as_member, "SELECT 1 / (current_setting('random_page_cost') = '1.1')::int",
            PGRES_TUPLES_OK, NULL);
    /* 42501: insufficient_privilege. */
    exec_as(as_member, "SELECT * FROM wallet.accounts LIMIT 1", PGRES_FATAL_ERROR, "42501");
    exec_as(as_member, "SELECT * FROM wallet.schema_migrations LIMIT 1", PGRES_FATAL_ERROR,
            "42501");
    exec_as(as_member, "CREATE TABLE member.intruder (id int)", PGRES_FATAL_ERROR, "42501");
    exec_as(as_member, "CREATE SCHEMA intruder", PGRES_FATAL_ERROR, "42501");
    exec_as(as_member, "DROP TABLE member.members", PGRES_FATAL_ERROR, "42501");
    /* The audit trail: the role adds to it, and may neither change nor remove a row. */
    exec_as(as_member, "SELECT count(*) FROM member.audit_log", PGRES_TUPLES_OK, NULL);
    exec_as(as_member, "DELETE FROM member.audit_log", PGRES_FATAL_ERROR, "42501");
    exec_as(as_member, "UPDATE member.audit_log SET rpc = ''", PGRES_FATAL_ERROR, "42501");
    exec_as(dsn_as("loyalty_wallet"), "SELECT * FROM member.members LIMIT 1", PGRES_FATAL_ERROR,
            "42501");
    exec_as(dsn_as("loyalty_wallet"), "SELECT count(*) FROM wallet.accounts", PGRES_TUPLES_OK,
            NULL);
}

/* The owner's side of the next test: once member-svc is connected as its role (and so waiting
 * for its migrations), apply them. */
static int owner_rc = -1;

static void *owner_main(void *arg) {
    (void)arg;
    PGconn *pg = PQconnectdb(dsn_base);
    bool connected = false;
    for (int i = 0; i < 600 && !connected && PQstatus(pg) == CONNECTION_OK; i++) {
        PGresult *r = PQexec(pg, "SELECT 1 FROM pg_stat_activity WHERE usename = 'loyalty_member'"
                                 " AND datname = current_database()");
        connected = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0;
        PQclear(r);
        if (!connected) {
            usleep(100 * 1000);
        }
    }
    PQfinish(pg);
    if (connected) {
        char cmd[2048];
        snprintf(cmd, sizeof cmd,
                 "LOYALTY_PG_DSN='%s user=loyalty_owner' '%s/member-svc/member-svc' --migrate "
                 ">/dev/null 2>&1",
                 dsn_base, LOYALTY_TEST_BUILD_DIR);
        owner_rc = system(cmd);
    }
    return NULL;
}

Test(db_roles, a_service_that_may_not_migrate_waits_for_the_owner) {
    /* Goal: with DB_MIGRATE_ON_START=0 a service does not serve until the owner has applied its
     * migrations, then serves without a restart. */
    snprintf(dsn_base, sizeof dsn_base, "%s", harness_private_database());
    char path[1024];
    snprintf(path, sizeof path, "%s/deploy/postgres/roles.sql", LOYALTY_TEST_SOURCE_DIR);
    exec_as(dsn_base, read_file(path), PGRES_COMMAND_OK, NULL);
    migrate_as_owner("wallet-svc"); /* another schema's migrations do not count */
    pthread_t owner;
    cr_assert_eq(pthread_create(&owner, NULL, owner_main, NULL), 0);
    char dsn_env[800];
    snprintf(dsn_env, sizeof dsn_env, "LOYALTY_PG_DSN=%s", dsn_as("loyalty_member"));
    const char *env[] = {dsn_env, "DB_MIGRATE_ON_START=0", NULL};
    harness_start(&member, "member-svc", env); /* returns once SERVING */
    pthread_join(owner, NULL);
    cr_assert(WIFEXITED(owner_rc) && WEXITSTATUS(owner_rc) == 0, "the owner's --migrate: %d",
              owner_rc);
    cr_assert(harness_file_contains(member.log_path, "(run --migrate as the owner)"),
              "member-svc waited for the migrations (%s)", member.log_path);
}
