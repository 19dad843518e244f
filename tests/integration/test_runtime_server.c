/* test_runtime_server.c -- the shared server seen from outside, with member-svc as the vehicle:
 * NOT_SERVING while PostgreSQL is unreachable and UNAVAILABLE calls, NOT_SERVING during the
 * shutdown drain, recovery after PostgreSQL drops every connection, and the request path's
 * refusal of strings with NUL bytes or invalid UTF-8. */
#include "harness.h"
#include "loyalty/v1/member.pb-c.h"
#include "member_client.h"

#include <criterion/criterion.h>
#include <libpq-fe.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static arena_t arena;

static void setup(void) {
    harness_init();
    arena_init(&arena);
}

static void teardown(void) {
    arena_free(&arena);
    harness_fini();
}

TestSuite(runtime_server, .init = setup, .fini = teardown, .timeout = 120);

static status_t get_by_phone(const char *addr, const char *merchant, const char *phone) {
    Loyalty__V1__GetMemberRequest req = LOYALTY__V1__GET_MEMBER_REQUEST__INIT;
    req.merchant_id = (char *)merchant;
    req.lookup_case = LOYALTY__V1__GET_MEMBER_REQUEST__LOOKUP_PHONE;
    req.phone = (char *)phone;
    return rpc_call(rpc_channel_get(addr), &loyalty__v1__member_service__descriptor, "GetMember",
                    &req.base, &arena, NULL, NULL);
}

Test(runtime_server, not_serving_until_postgresql_is_reachable) {
    /* Goal: with PostgreSQL unreachable the server listens but reports NOT_SERVING and answers
     * RPCs UNAVAILABLE; it never crashes and exits 0 on SIGTERM. */
    int port = harness_free_port();
    int dead_pg = harness_free_port();
    char listen[64], dsn[160], log_path[256];
    snprintf(listen, sizeof listen, "LISTEN_ADDR=127.0.0.1:%d", port);
    snprintf(dsn, sizeof dsn, "LOYALTY_PG_DSN=host=127.0.0.1 port=%d dbname=x user=x", dead_pg);
    snprintf(log_path, sizeof log_path, "/tmp/loyalty-nopg-%d.log", (int)getpid());
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        freopen(log_path, "w", stdout);
        putenv(listen);
        putenv(dsn);
        execl(LOYALTY_TEST_BUILD_DIR "/member-svc/member-svc", "member-svc", (char *)NULL);
        _exit(127);
    }
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    sleep(2);
    cr_assert_not(harness_is_serving(addr), "must not be SERVING without PostgreSQL");
    status_t st = get_by_phone(addr, "m", "+6591234567");
    cr_assert_eq(st.code, STATUS_UNAVAILABLE, "got %s", status_code_name(st.code));
    cr_assert_str_eq(st.reason, "STARTING");
    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d", status);
    unlink(log_path);
}

Test(runtime_server, not_serving_during_shutdown_drain) {
    /* Goal: after SIGTERM, health turns NOT_SERVING at once and calls are still answered
     * during SHUTDOWN_DRAIN_MS, so load balancers drain before listeners close. */
    const char *env[] = {"SHUTDOWN_DRAIN_MS=1500", NULL};
    svc_proc_t svc;
    harness_start(&svc, "member-svc", env);
    harness_signal_term(&svc);
    usleep(300 * 1000);
    cr_assert_not(harness_is_serving(svc.addr), "NOT_SERVING while draining");
    status_t st = get_by_phone(svc.addr, harness_merchant("drain"), "+6591234567");
    cr_assert_eq(st.code, STATUS_NOT_FOUND, "still answering during the drain: %s",
                 status_code_name(st.code));
    cr_assert_eq(harness_wait(&svc), 0);
}

Test(runtime_server, recovers_after_postgresql_drops_connections) {
    /* Goal: when PostgreSQL terminates every connection of the service (restart, failover),
     * the next calls reconnect and succeed; none of them fails. */
    svc_proc_t svc;
    /* On a database of its own, so that dropping its connections leaves the other tests'
     * services (running in parallel, with the same application_name) alone. */
    static char pg_env[600];
    const char *dsn = harness_private_database();
    snprintf(pg_env, sizeof pg_env, "LOYALTY_PG_DSN=%s", dsn);
    const char *env[] = {pg_env, NULL};
    harness_start(&svc, "member-svc", env);
    const char *m = harness_merchant("reconn");
    Loyalty__V1__MemberProfile profile = LOYALTY__V1__MEMBER_PROFILE__INIT;
    profile.name = "Reconnect";
    profile.phone = "+6597770001";
    Loyalty__V1__CreateMemberRequest req = LOYALTY__V1__CREATE_MEMBER_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)harness_key();
    req.profile = &profile;
    status_t st = rpc_call(rpc_channel_get(svc.addr), &loyalty__v1__member_service__descriptor,
                           "CreateMember", &req.base, &arena, NULL, NULL);
    cr_assert(status_is_ok(&st), "%s", st.message);
    for (int i = 0; i < 20; i++) { /* open connections on several workers */
        cr_assert_eq(get_by_phone(svc.addr, m, "+6597770001").code, STATUS_OK);
    }
    PGconn *pg = PQconnectdb(dsn);
    cr_assert_eq(PQstatus(pg), CONNECTION_OK);
    PGresult *r = PQexec(pg, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                             "WHERE application_name = 'member-svc' AND datname = "
                             "current_database() AND pid <> pg_backend_pid()");
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK);
    PQclear(r);
    PQfinish(pg);
    for (int i = 0; i < 40; i++) {
        st = get_by_phone(svc.addr, m, "+6597770001");
        cr_assert_eq(st.code, STATUS_OK, "call %d after the drop: %s %s", i,
                     status_code_name(st.code), st.message);
    }
    req.idempotency_key = (char *)harness_key();
    profile.phone = "+6597770002";
    st = rpc_call(rpc_channel_get(svc.addr), &loyalty__v1__member_service__descriptor,
                  "CreateMember", &req.base, &arena, NULL, NULL);
    cr_assert(status_is_ok(&st), "a write after the drop: %s", st.message);
    cr_assert_eq(harness_stop(&svc), 0);
}

/* protobuf-c packs a string with strlen, so a NUL cannot be sent through a string field. An
 * unknown field is packed verbatim, though: one with the string field's number puts any bytes
 * on the wire, and the server reads them as that field. `data` needs room for n + 1 bytes. */
static ProtobufCMessageUnknownField raw_string(unsigned field, uint8_t *data, const char *s,
                                               size_t n) {
    cr_assert(n < 128);
    data[0] = (uint8_t)n; /* the length prefix travels in the unknown field's data */
    memcpy(data + 1, s, n);
    return (ProtobufCMessageUnknownField){.tag = field,
                                          .wire_type = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED,
                                          .len = n + 1,
                                          .data = data};
}

Test(runtime_server, strings_with_nul_or_invalid_utf8_are_refused) {
    /* Goal: a string is never cut at an embedded NUL: "<m>\0x" is not merchant <m>, a name
     * "Bo\0b" is not stored as "Bo", keys "K\0a" and "K\0b" do not collide; invalid UTF-8 is
     * refused too. Each is INVALID_ARGUMENT INVALID_<FIELD>, and nothing is written. */
    svc_proc_t svc;
    harness_start(&svc, "member-svc", NULL);
    const char *m = harness_merchant("nul");
    Loyalty__V1__MemberProfile profile = LOYALTY__V1__MEMBER_PROFILE__INIT;
    profile.name = "Bob";
    profile.phone = "+6597780001";
    Loyalty__V1__CreateMemberRequest create = LOYALTY__V1__CREATE_MEMBER_REQUEST__INIT;
    create.merchant_id = (char *)m;
    create.idempotency_key = (char *)harness_key();
    create.profile = &profile;
    Loyalty__V1__CreateMemberResponse *created = NULL;
    status_t st = member_call_at(svc.addr, &arena, "CreateMember", &create, &created);
    cr_assert(status_is_ok(&st), "%s", st.message);

    /* GetMember{merchant_id: "<m>\0x", member_id: <m's member>} */
    uint8_t buf[4][160];
    char bad[80];
    size_t bad_len = (size_t)snprintf(bad, sizeof bad, "%s", m);
    memcpy(bad + bad_len, "\0x", 2);
    bad_len += 2;
    ProtobufCMessageUnknownField merchant = raw_string(1, buf[0], bad, bad_len);
    Loyalty__V1__GetMemberRequest get = LOYALTY__V1__GET_MEMBER_REQUEST__INIT;
    get.lookup_case = LOYALTY__V1__GET_MEMBER_REQUEST__LOOKUP_MEMBER_ID;
    get.member_id = created->member->id;
    get.base.n_unknown_fields = 1;
    get.base.unknown_fields = &merchant;
    st = rpc_call(rpc_channel_get(svc.addr), &loyalty__v1__member_service__descriptor, "GetMember",
                  &get.base, &arena, NULL, NULL);
    cr_assert_eq(st.code, STATUS_INVALID_ARGUMENT, "got %s", status_code_name(st.code));
    cr_assert_str_eq(st.reason, "INVALID_MERCHANT_ID");

    /* CreateMember with name "Bo\0b": refused, and no member with its phone exists after. */
    Loyalty__V1__MemberProfile nul_profile = LOYALTY__V1__MEMBER_PROFILE__INIT;
    nul_profile.phone = "+6597780002";
    ProtobufCMessageUnknownField name = raw_string(1, buf[1], "Bo\0b", 4);
    nul_profile.base.n_unknown_fields = 1;
    nul_profile.base.unknown_fields = &name;
    create.profile = &nul_profile;
    create.idempotency_key = (char *)harness_key();
    st = member_call_at(svc.addr, &arena, "CreateMember", &create, NULL);
    cr_assert_eq(st.code, STATUS_INVALID_ARGUMENT, "got %s", status_code_name(st.code));
    cr_assert_str_eq(st.reason, "INVALID_PROFILE_NAME");
    st = get_by_phone(svc.addr, m, "+6597780002");
    cr_assert_eq(st.code, STATUS_NOT_FOUND, "nothing written: %s", status_code_name(st.code));

    /* Idempotency key "K\0a": refused rather than read as "K". */
    profile.phone = "+6597780003";
    create.profile = &profile;
    create.idempotency_key = "";
    ProtobufCMessageUnknownField key = raw_string(2, buf[2], "K\0a", 3);
    create.base.n_unknown_fields = 1;
    create.base.unknown_fields = &key;
    st = member_call_at(svc.addr, &arena, "CreateMember", &create, NULL);
    cr_assert_str_eq(st.reason, "INVALID_IDEMPOTENCY_KEY");
    create.base.n_unknown_fields = 0;
    create.base.unknown_fields = NULL;
    st = get_by_phone(svc.addr, m, "+6597780003");
    cr_assert_eq(st.code, STATUS_NOT_FOUND, "nothing written: %s", status_code_name(st.code));

    /* Invalid UTF-8 (an overlong "/") in a field no handler validates as text. */
    get.base.n_unknown_fields = 0;
    get.base.unknown_fields = NULL;
    get.merchant_id = (char *)m;
    get.lookup_case = LOYALTY__V1__GET_MEMBER_REQUEST__LOOKUP_EXTERNAL_ID;
    get.external_id = "ext-\xc0\xaf";
    st = rpc_call(rpc_channel_get(svc.addr), &loyalty__v1__member_service__descriptor, "GetMember",
                  &get.base, &arena, NULL, NULL);
    cr_assert_eq(st.code, STATUS_INVALID_ARGUMENT, "got %s", status_code_name(st.code));
    cr_assert_str_eq(st.reason, "INVALID_EXTERNAL_ID");
    cr_assert_eq(harness_stop(&svc), 0);
}
