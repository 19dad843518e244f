/* test_member_profile.c -- member-svc profiles over real gRPC against real PostgreSQL and
 * Redis: create/get/update, errors and their reasons, idempotency, merchant isolation,
 * concurrency, and the runtime's behaviour as seen from outside (health, auth, deadlines,
 * message limits, unknown methods, graceful shutdown, Redis outage). */
#include "grpc/health/v1/health.pb-c.h"
#include "member_it.h"

#include <criterion/criterion.h>
#include <libpq-fe.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(member_profile, .init = member_it_setup, .fini = member_it_teardown, .timeout = 120);

static status_t get_member_by_id(const char *addr, const char *merchant, const char *id,
                                 Loyalty__V1__Member **out) {
    Loyalty__V1__GetMemberRequest req = LOYALTY__V1__GET_MEMBER_REQUEST__INIT;
    req.merchant_id = (char *)merchant;
    req.lookup_case = LOYALTY__V1__GET_MEMBER_REQUEST__LOOKUP_MEMBER_ID;
    req.member_id = (char *)id;
    ProtobufCMessage *resp = NULL;
    status_t st = rpc_call(rpc_channel_get(addr), &loyalty__v1__member_service__descriptor,
                           "GetMember", &req.base, &arena, &resp, NULL);
    if (out) {
        *out = status_is_ok(&st) ? ((Loyalty__V1__GetMemberResponse *)resp)->member : NULL;
    }
    return st;
}

static status_t update_name(const char *addr, const char *merchant, const char *id,
                            const char *name, const rpc_call_opts_t *opts,
                            Loyalty__V1__Member **out) {
    Loyalty__V1__MemberProfile profile = LOYALTY__V1__MEMBER_PROFILE__INIT;
    profile.name = (char *)name;
    char *mask[] = {"name"};
    Loyalty__V1__UpdateMemberRequest req = LOYALTY__V1__UPDATE_MEMBER_REQUEST__INIT;
    req.merchant_id = (char *)merchant;
    req.idempotency_key = (char *)harness_key();
    req.member_id = (char *)id;
    req.profile = &profile;
    req.update_mask = HARNESS_MASK_OF(mask, 1);
    ProtobufCMessage *resp = NULL;
    status_t st = rpc_call(rpc_channel_get(addr), &loyalty__v1__member_service__descriptor,
                           "UpdateMember", &req.base, &arena, &resp, opts);
    if (out) {
        *out = status_is_ok(&st) ? ((Loyalty__V1__UpdateMemberResponse *)resp)->member : NULL;
    }
    return st;
}

Test(member_profile, create_get_update_round_trip) {
    /* Goal: the profile of docs/domain.md#members-and-tiers survives create, get (cold and cached)
     * and update. */
    harness_start(&svc, "member-svc", NULL);
    const char *m = harness_merchant("rt");
    Loyalty__V1__MemberProfile profile = LOYALTY__V1__MEMBER_PROFILE__INIT;
    Loyalty__V1__Address address = LOYALTY__V1__ADDRESS__INIT;
    address.line1 = "1 Orchard Road";
    address.city = "Singapore";
    address.country_code = "SG";
    char *interests[] = {"running", "coffee"};
    char *tags[] = {"VIP", "early-adopter"};
    Loyalty__V1__MemberProfile__CustomAttributesEntry attr1 =
        LOYALTY__V1__MEMBER_PROFILE__CUSTOM_ATTRIBUTES_ENTRY__INIT;
    attr1.key = "shoe_size";
    attr1.value = "42";
    Loyalty__V1__MemberProfile__CustomAttributesEntry attr2 =
        LOYALTY__V1__MEMBER_PROFILE__CUSTOM_ATTRIBUTES_ENTRY__INIT;
    attr2.key = "favourite_store";
    attr2.value = "Orchard \"Flagship\", level 2";
    Loyalty__V1__MemberProfile__CustomAttributesEntry *attrs[] = {&attr1, &attr2};
    profile.name = "Tan Mei Ling";
    profile.phone = "+65 9123-4567";
    profile.email = "MeiLing@Example.SG";
    profile.birthday = "1992-02-29";
    profile.gender = LOYALTY__V1__GENDER__GENDER_FEMALE;
    profile.address = &address;
    profile.occupation = "architect";
    profile.interests = interests;
    profile.n_interests = 2;
    profile.tags = tags;
    profile.n_tags = 2;
    profile.custom_attributes = attrs;
    profile.n_custom_attributes = 2;
    Loyalty__V1__CreateMemberRequest req = LOYALTY__V1__CREATE_MEMBER_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)harness_key();
    req.profile = &profile;
    req.external_id = "pos-000123";
    ProtobufCMessage *resp = NULL;
    status_t st = rpc_call(rpc_channel_get(svc.addr), &loyalty__v1__member_service__descriptor,
                           "CreateMember", &req.base, &arena, &resp, NULL);
    assert_status(st, STATUS_OK, "");
    Loyalty__V1__Member *created = ((Loyalty__V1__CreateMemberResponse *)resp)->member;
    cr_assert(strncmp(created->id, "mbr_", 4) == 0);
    cr_assert_str_eq(created->merchant_id, m);
    cr_assert_str_eq(created->external_id, "pos-000123");
    cr_assert_str_eq(created->profile->phone, "+6591234567");
    cr_assert_str_eq(created->profile->email, "meiling@example.sg");
    cr_assert_str_eq(created->profile->birthday, "1992-02-29");
    cr_assert_eq(created->profile->gender, LOYALTY__V1__GENDER__GENDER_FEMALE);
    cr_assert_str_eq(created->profile->address->country_code, "SG");
    cr_assert_eq(created->profile->n_interests, 2);
    cr_assert_str_eq(created->profile->tags[0], "vip");
    cr_assert_eq(created->profile->n_custom_attributes, 2);
    /* Attributes come back in key order. */
    cr_assert_str_eq(created->profile->custom_attributes[0]->key, "favourite_store");
    cr_assert_str_eq(created->profile->custom_attributes[0]->value,
                     "Orchard \"Flagship\", level 2");
    cr_assert_eq(created->version, 1);
    cr_assert(created->created_at > 1700000000);

    for (int pass = 0; pass < 2; pass++) { /* cold read, then the cached copy */
        Loyalty__V1__Member *got = NULL;
        assert_status(get_member_by_id(svc.addr, m, created->id, &got), STATUS_OK, "");
        cr_assert(protobuf_c_message_get_packed_size(&got->base) ==
                  protobuf_c_message_get_packed_size(&created->base));
        cr_assert_str_eq(got->profile->name, "Tan Mei Ling");
    }

    Loyalty__V1__Member *updated = NULL;
    assert_status(update_name(svc.addr, m, created->id, "Tan Mei Ling (Mrs)", NULL, &updated),
                  STATUS_OK, "");
    cr_assert_str_eq(updated->profile->name, "Tan Mei Ling (Mrs)");
    cr_assert_str_eq(updated->profile->phone, "+6591234567", "fields outside the mask are kept");
    cr_assert_eq(updated->version, 2);
    Loyalty__V1__Member *after = NULL;
    assert_status(get_member_by_id(svc.addr, m, created->id, &after), STATUS_OK, "");
    cr_assert_str_eq(after->profile->name, "Tan Mei Ling (Mrs)", "the cache was invalidated");

    /* Lookups by phone (any formatting), e-mail (any case) and external id. */
    Loyalty__V1__GetMemberRequest by = LOYALTY__V1__GET_MEMBER_REQUEST__INIT;
    by.merchant_id = (char *)m;
    by.lookup_case = LOYALTY__V1__GET_MEMBER_REQUEST__LOOKUP_PHONE;
    by.phone = "+65 (9123) 4567";
    st = rpc_call(rpc_channel_get(svc.addr), &loyalty__v1__member_service__descriptor, "GetMember",
                  &by.base, &arena, &resp, NULL);
    assert_status(st, STATUS_OK, "");
    cr_assert_str_eq(((Loyalty__V1__GetMemberResponse *)resp)->member->id, created->id);
    by.lookup_case = LOYALTY__V1__GET_MEMBER_REQUEST__LOOKUP_EMAIL;
    by.email = "MEILING@example.sg";
    st = rpc_call(rpc_channel_get(svc.addr), &loyalty__v1__member_service__descriptor, "GetMember",
                  &by.base, &arena, &resp, NULL);
    assert_status(st, STATUS_OK, "");
    by.lookup_case = LOYALTY__V1__GET_MEMBER_REQUEST__LOOKUP_EXTERNAL_ID;
    by.external_id = "pos-000123";
    st = rpc_call(rpc_channel_get(svc.addr), &loyalty__v1__member_service__descriptor, "GetMember",
                  &by.base, &arena, &resp, NULL);
    assert_status(st, STATUS_OK, "");
}

Test(member_profile, errors_name_the_field_and_reason) {
    /* Goal: bad input is INVALID_ARGUMENT naming the field; absent members are NOT_FOUND. */
    harness_start(&svc, "member-svc", NULL);
    const char *m = harness_merchant("err");
    status_t st = get_member_by_id(svc.addr, m, "mbr_01HZZZZZZZZZZZZZZZZZZZZZZZ", NULL);
    assert_status(st, STATUS_NOT_FOUND, "MEMBER_NOT_FOUND");

    st = member_create_at(svc.addr, &arena, m,
                          &(member_spec_t){.name = "Bad Mail", .email = "not-an-email"}, NULL);
    assert_status(st, STATUS_INVALID_ARGUMENT, "INVALID_PROFILE_EMAIL");
    cr_assert(strncmp(st.message, "profile.email:", 14) == 0, "message: %s", st.message);

    st = member_create_at(svc.addr, &arena, m,
                          &(member_spec_t){.name = "Bad Phone", .phone = "12345"}, NULL);
    assert_status(st, STATUS_INVALID_ARGUMENT, "INVALID_PROFILE_PHONE");

    st = member_create_at(svc.addr, &arena, m, &(member_spec_t){.name = ""}, NULL);
    assert_status(st, STATUS_INVALID_ARGUMENT, "INVALID_PROFILE_NAME");

    char long_name[102];
    memset(long_name, 'x', 101);
    long_name[101] = '\0';
    st = member_create_at(svc.addr, &arena, m, &(member_spec_t){.name = long_name}, NULL);
    assert_status(st, STATUS_INVALID_ARGUMENT, "INVALID_PROFILE_NAME");
    long_name[100] = '\0'; /* exactly the maximum is fine */
    st = member_create_at(svc.addr, &arena, m, &(member_spec_t){.name = long_name}, NULL);
    assert_status(st, STATUS_OK, "");

    st = member_create_at(svc.addr, &arena, "", &(member_spec_t){.name = "No Merchant"}, NULL);
    assert_status(st, STATUS_INVALID_ARGUMENT, "INVALID_MERCHANT_ID");
    st = member_create_at(svc.addr, &arena, m, &(member_spec_t){.name = "No Key", .key = ""}, NULL);
    assert_status(st, STATUS_INVALID_ARGUMENT, "INVALID_IDEMPOTENCY_KEY");

    Loyalty__V1__GetMemberRequest none = LOYALTY__V1__GET_MEMBER_REQUEST__INIT;
    none.merchant_id = (char *)m;
    st = rpc_call(rpc_channel_get(svc.addr), &loyalty__v1__member_service__descriptor, "GetMember",
                  &none.base, &arena, NULL, NULL);
    assert_status(st, STATUS_INVALID_ARGUMENT, "INVALID_LOOKUP");

    Loyalty__V1__Member *mem = NULL;
    assert_status(member_create_at(svc.addr, &arena, m, &(member_spec_t){.name = "Ok"}, &mem),
                  STATUS_OK, "");
    Loyalty__V1__UpdateMemberRequest up = LOYALTY__V1__UPDATE_MEMBER_REQUEST__INIT;
    up.merchant_id = (char *)m;
    up.idempotency_key = (char *)harness_key();
    up.member_id = mem->id;
    st = rpc_call(rpc_channel_get(svc.addr), &loyalty__v1__member_service__descriptor,
                  "UpdateMember", &up.base, &arena, NULL, NULL);
    assert_status(st, STATUS_INVALID_ARGUMENT, "UPDATE_MASK_REQUIRED");
    char *mask[] = {"name"};
    up.update_mask = HARNESS_MASK_OF(mask, 1);
    up._expected_version_case =
        LOYALTY__V1__UPDATE_MEMBER_REQUEST___EXPECTED_VERSION_EXPECTED_VERSION;
    up.expected_version = 7;
    Loyalty__V1__MemberProfile p = LOYALTY__V1__MEMBER_PROFILE__INIT;
    p.name = "New";
    up.profile = &p;
    st = rpc_call(rpc_channel_get(svc.addr), &loyalty__v1__member_service__descriptor,
                  "UpdateMember", &up.base, &arena, NULL, NULL);
    assert_status(st, STATUS_ABORTED, "VERSION_MISMATCH");
}

Test(member_profile, duplicate_phone_and_email_are_refused) {
    /* Goal: phone and e-mail are unique within a merchant, whatever their formatting. */
    harness_start(&svc, "member-svc", NULL);
    const char *m = harness_merchant("dup");
    assert_status(member_create_at(
                      svc.addr, &arena, m,
                      &(member_spec_t){.name = "First", .phone = "+6581112222", .email = "a@b.co"},
                      NULL),
                  STATUS_OK, "");
    assert_status(member_create_at(svc.addr, &arena, m,
                                   &(member_spec_t){.name = "Second", .phone = "+65 8111 2222"},
                                   NULL),
                  STATUS_ALREADY_EXISTS, "PHONE_TAKEN");
    assert_status(member_create_at(svc.addr, &arena, m,
                                   &(member_spec_t){.name = "Third", .email = "A@B.CO"}, NULL),
                  STATUS_ALREADY_EXISTS, "EMAIL_TAKEN");
}

Test(member_profile, idempotent_retry_creates_once) {
    /* Goal: a retried CreateMember returns the same member and creates one; the same key with
     * another request is ALREADY_EXISTS (docs/architecture.md#idempotency-keys). */
    harness_start(&svc, "member-svc", NULL);
    const char *m = harness_merchant("idem");
    const char *key = harness_key();
    Loyalty__V1__Member *a = NULL, *b = NULL;
    assert_status(
        member_create_at(svc.addr, &arena, m,
                         &(member_spec_t){.name = "Once", .phone = "+6590000001", .key = key}, &a),
        STATUS_OK, "");
    assert_status(
        member_create_at(svc.addr, &arena, m,
                         &(member_spec_t){.name = "Once", .phone = "+6590000001", .key = key}, &b),
        STATUS_OK, "");
    cr_assert_str_eq(a->id, b->id);
    cr_assert_eq(a->created_at, b->created_at);
    assert_status(member_create_at(
                      svc.addr, &arena, m,
                      &(member_spec_t){.name = "Other", .phone = "+6590000002", .key = key}, NULL),
                  STATUS_ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED");
    /* Exactly one member holds the phone, and the second phone was never written. */
    PGconn *pg = PQconnectdb(harness_pg_dsn());
    cr_assert_eq(PQstatus(pg), CONNECTION_OK);
    const char *params[] = {m};
    PGresult *r = PQexecParams(pg, "SELECT count(*) FROM member.members WHERE merchant_id = $1", 1,
                               NULL, params, NULL, NULL, 0);
    cr_assert_str_eq(PQgetvalue(r, 0, 0), "1");
    PQclear(r);
    PQfinish(pg);
}

Test(member_profile, merchants_are_isolated) {
    /* Goal: nothing of one merchant is visible to or changed by a request for another. */
    harness_start(&svc, "member-svc", NULL);
    const char *m1 = harness_merchant("iso1");
    const char *m2 = harness_merchant("iso2");
    Loyalty__V1__Member *a = NULL;
    assert_status(member_create_at(
                      svc.addr, &arena, m1,
                      &(member_spec_t){.name = "Mine", .phone = "+6591110000", .email = "x@y.co"},
                      &a),
                  STATUS_OK, "");
    assert_status(get_member_by_id(svc.addr, m1, a->id, NULL), STATUS_OK, "");
    assert_status(get_member_by_id(svc.addr, m2, a->id, NULL), STATUS_NOT_FOUND,
                  "MEMBER_NOT_FOUND");
    assert_status(update_name(svc.addr, m2, a->id, "Stolen", NULL, NULL), STATUS_NOT_FOUND,
                  "MEMBER_NOT_FOUND");
    /* The same phone and e-mail are free in another merchant. */
    assert_status(member_create_at(
                      svc.addr, &arena, m2,
                      &(member_spec_t){.name = "Theirs", .phone = "+6591110000", .email = "x@y.co"},
                      NULL),
                  STATUS_OK, "");
    Loyalty__V1__Member *still = NULL;
    assert_status(get_member_by_id(svc.addr, m1, a->id, &still), STATUS_OK, "");
    cr_assert_str_eq(still->profile->name, "Mine");
}

#define PARALLEL_CLIENTS 50

typedef struct client_arg {
    const char *addr;
    const char *merchant;
    int index;
    int failures;
    char id[64];
} client_arg_t;

static void *parallel_client(void *p) {
    client_arg_t *c = p;
    arena_t a;
    arena_init(&a);
    char name[32], phone[32], key[32];
    snprintf(name, sizeof name, "Client %d", c->index);
    snprintf(phone, sizeof phone, "+6580%06d", c->index);
    snprintf(key, sizeof key, "par-%d", c->index);
    Loyalty__V1__MemberProfile profile = LOYALTY__V1__MEMBER_PROFILE__INIT;
    profile.name = name;
    profile.phone = phone;
    Loyalty__V1__CreateMemberRequest req = LOYALTY__V1__CREATE_MEMBER_REQUEST__INIT;
    req.merchant_id = (char *)c->merchant;
    req.idempotency_key = key;
    req.profile = &profile;
    ProtobufCMessage *resp = NULL;
    status_t st = rpc_call(rpc_channel_get(c->addr), &loyalty__v1__member_service__descriptor,
                           "CreateMember", &req.base, &a, &resp, NULL);
    if (!status_is_ok(&st)) {
        c->failures++;
    } else {
        Loyalty__V1__Member *m = ((Loyalty__V1__CreateMemberResponse *)resp)->member;
        snprintf(c->id, sizeof c->id, "%s", m->id);
        for (int i = 0; i < 10; i++) {
            Loyalty__V1__GetMemberRequest g = LOYALTY__V1__GET_MEMBER_REQUEST__INIT;
            g.merchant_id = (char *)c->merchant;
            g.lookup_case = LOYALTY__V1__GET_MEMBER_REQUEST__LOOKUP_MEMBER_ID;
            g.member_id = c->id;
            st = rpc_call(rpc_channel_get(c->addr), &loyalty__v1__member_service__descriptor,
                          "GetMember", &g.base, &a, &resp, NULL);
            if (!status_is_ok(&st) ||
                strcmp(((Loyalty__V1__GetMemberResponse *)resp)->member->profile->name, name)) {
                c->failures++;
            }
        }
    }
    arena_free(&a);
    return NULL;
}

Test(member_profile, fifty_parallel_clients_create_and_read) {
    /* Goal: 50 concurrent clients each create a member and read it back 10 times; every call
     * succeeds and every member is distinct. */
    harness_start(&svc, "member-svc", NULL);
    const char *m = harness_merchant("par");
    pthread_t threads[PARALLEL_CLIENTS];
    client_arg_t args[PARALLEL_CLIENTS];
    for (int i = 0; i < PARALLEL_CLIENTS; i++) {
        args[i] = (client_arg_t){.addr = svc.addr, .merchant = m, .index = i};
        cr_assert_eq(pthread_create(&threads[i], NULL, parallel_client, &args[i]), 0);
    }
    for (int i = 0; i < PARALLEL_CLIENTS; i++) {
        pthread_join(threads[i], NULL);
    }
    for (int i = 0; i < PARALLEL_CLIENTS; i++) {
        cr_assert_eq(args[i].failures, 0, "client %d had %d failures", i, args[i].failures);
        for (int k = 0; k < i; k++) {
            cr_assert(strcmp(args[i].id, args[k].id) != 0);
        }
    }
}

Test(member_profile, health_and_protocol_errors) {
    /* Goal: Health answers SERVING for "" and the service name and NOT_FOUND for others;
     * unknown methods are UNIMPLEMENTED, undecodable requests INVALID_ARGUMENT, oversize
     * messages RESOURCE_EXHAUSTED; the request id reaches the JSON log. */
    const char *env[] = {"RPC_MAX_MESSAGE_BYTES=4096", NULL};
    harness_start(&svc, "member-svc", env);
    Grpc__Health__V1__HealthCheckRequest hreq = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    const char *names[] = {"", "loyalty.v1.MemberService"};
    for (int i = 0; i < 2; i++) {
        hreq.service = (char *)names[i];
        status_t st = rpc_call(rpc_channel_get(svc.addr), &grpc__health__v1__health__descriptor,
                               "Check", &hreq.base, &arena, &resp, NULL);
        assert_status(st, STATUS_OK, "");
        cr_assert_eq(((Grpc__Health__V1__HealthCheckResponse *)resp)->status,
                     GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
    }
    hreq.service = "loyalty.v1.Nope";
    assert_status(rpc_call(rpc_channel_get(svc.addr), &grpc__health__v1__health__descriptor,
                           "Check", &hreq.base, &arena, &resp, NULL),
                  STATUS_NOT_FOUND, "UNKNOWN_SERVICE");

    ProtobufCServiceDescriptor unknown = loyalty__v1__member_service__descriptor;
    unknown.name = "loyalty.v1.NoSuchService";
    Loyalty__V1__GetMemberRequest g = LOYALTY__V1__GET_MEMBER_REQUEST__INIT;
    status_t st =
        rpc_call(rpc_channel_get(svc.addr), &unknown, "GetMember", &g.base, &arena, NULL, NULL);
    cr_assert_eq(st.code, STATUS_UNIMPLEMENTED, "got %s", status_code_name(st.code));
    /* Health/Watch is served now (a stream): tests/python/test_probes.py watches it. */

    /* A HealthCheckResponse {status = 1} puts a varint where GetMemberRequest has a string. */
    ProtobufCServiceDescriptor wrong = loyalty__v1__member_service__descriptor;
    Grpc__Health__V1__HealthCheckResponse garbage = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    garbage.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
    st =
        rpc_call(rpc_channel_get(svc.addr), &wrong, "GetMember", &garbage.base, &arena, NULL, NULL);
    assert_status(st, STATUS_INVALID_ARGUMENT, "MALFORMED_REQUEST");

    char big[8192];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    st = member_create_at(svc.addr, &arena, harness_merchant("big"), &(member_spec_t){.name = big},
                          NULL);
    cr_assert_eq(st.code, STATUS_RESOURCE_EXHAUSTED, "got %s", status_code_name(st.code));

    rpc_call_opts_t opts = {.request_id = "req-trace-4711"};
    g.merchant_id = "trace";
    g.lookup_case = LOYALTY__V1__GET_MEMBER_REQUEST__LOOKUP_MEMBER_ID;
    g.member_id = "mbr_x";
    st = rpc_call(rpc_channel_get(svc.addr), &loyalty__v1__member_service__descriptor, "GetMember",
                  &g.base, &arena, NULL, &opts);
    assert_status(st, STATUS_NOT_FOUND, "MEMBER_NOT_FOUND");
    cr_assert_eq(harness_stop(&svc), 0);
    cr_assert(harness_file_contains(svc.log_path,
                                    "\"rpc\":\"/loyalty.v1.MemberService/GetMember\","
                                    "\"request_id\":\"req-trace-4711\",\"trace_id\":\"") &&
                  harness_file_contains(svc.log_path,
                                        "\"merchant_id\":\"trace\",\"status\":\"NOT_FOUND\""),
              "access log line missing in %s", svc.log_path);
}

Test(member_profile, bearer_token_is_required_when_configured) {
    /* Goal: with LOYALTY_AUTH_TOKEN set, RPCs need the exact bearer token; Health does not. */
    const char *env[] = {"LOYALTY_AUTH_TOKEN=s3cret-token", NULL};
    harness_start(&svc, "member-svc", env);
    const char *m = harness_merchant("auth");
    rpc_call_opts_t none = {.auth_token = ""};
    rpc_call_opts_t wrong = {.auth_token = "s3cret-tokeX"};
    rpc_call_opts_t longer = {.auth_token = "s3cret-token2"};
    rpc_call_opts_t right = {.auth_token = "s3cret-token"};
    assert_status(update_name(svc.addr, m, "mbr_x", "n", &none, NULL), STATUS_UNAUTHENTICATED,
                  "UNAUTHENTICATED");
    assert_status(update_name(svc.addr, m, "mbr_x", "n", &wrong, NULL), STATUS_UNAUTHENTICATED,
                  "UNAUTHENTICATED");
    assert_status(update_name(svc.addr, m, "mbr_x", "n", &longer, NULL), STATUS_UNAUTHENTICATED,
                  "UNAUTHENTICATED");
    assert_status(update_name(svc.addr, m, "mbr_x", "n", &right, NULL), STATUS_NOT_FOUND,
                  "MEMBER_NOT_FOUND");
    cr_assert(harness_is_serving(svc.addr), "health needs no token");
    cr_assert_eq(harness_stop(&svc), 0);
    cr_assert(!harness_file_contains(svc.log_path, "s3cret"), "the token must never be logged");
}

/* Holds a row lock on a member from outside the service, so that an update of it blocks. */
static PGconn *lock_member(const char *merchant, const char *id) {
    PGconn *pg = PQconnectdb(harness_pg_dsn());
    cr_assert_eq(PQstatus(pg), CONNECTION_OK);
    PQclear(PQexec(pg, "BEGIN"));
    const char *params[] = {merchant, id};
    PGresult *r = PQexecParams(pg,
                               "SELECT 1 FROM member.members WHERE merchant_id = $1 AND id = $2 "
                               "FOR UPDATE",
                               2, NULL, params, NULL, NULL, 0);
    cr_assert_eq(PQntuples(r), 1);
    PQclear(r);
    return pg;
}

typedef struct slow_update {
    const char *addr, *merchant, *id;
    status_t st;
    int64_t timeout_ms;
} slow_update_t;

static void *slow_update_main(void *p) {
    slow_update_t *u = p;
    arena_t a;
    arena_init(&a);
    Loyalty__V1__MemberProfile profile = LOYALTY__V1__MEMBER_PROFILE__INIT;
    profile.name = "After Shutdown Began";
    char *mask[] = {"name"};
    Loyalty__V1__UpdateMemberRequest req = LOYALTY__V1__UPDATE_MEMBER_REQUEST__INIT;
    req.merchant_id = (char *)u->merchant;
    req.idempotency_key = "slow-update";
    req.member_id = (char *)u->id;
    req.profile = &profile;
    req.update_mask = HARNESS_MASK_OF(mask, 1);
    rpc_call_opts_t opts = {.timeout_ms = u->timeout_ms};
    u->st = rpc_call(rpc_channel_get(u->addr), &loyalty__v1__member_service__descriptor,
                     "UpdateMember", &req.base, &a, NULL, &opts);
    arena_free(&a);
    return NULL;
}

Test(member_profile, sigterm_lets_in_flight_call_finish) {
    /* Goal: SIGTERM while a call is in flight: health turns NOT_SERVING, the call completes
     * OK and the process exits 0. The call is held in flight by a row lock taken outside. */
    harness_start(&svc, "member-svc", NULL);
    const char *m = harness_merchant("term");
    Loyalty__V1__Member *mem = NULL;
    assert_status(member_create_at(svc.addr, &arena, m, &(member_spec_t){.name = "Before"}, &mem),
                  STATUS_OK, "");
    PGconn *lock = lock_member(m, mem->id);
    slow_update_t u = {.addr = svc.addr, .merchant = m, .id = mem->id, .timeout_ms = 20000};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, slow_update_main, &u), 0);
    /* Wait until the update is waiting on the lock (seen from PostgreSQL), however slow the
     * machine: the SIGTERM must find the call in flight. */
    bool waiting = false;
    for (int i = 0; i < 600 && !waiting; i++) { /* up to 60 s */
        /* pg_stat_activity is a snapshot per transaction and `lock` is inside one: clear it */
        PGresult *r = PQexec(lock, "SELECT pg_stat_clear_snapshot(); "
                                   "SELECT count(*) FROM pg_stat_activity "
                                   "WHERE pg_backend_pid() = ANY (pg_blocking_pids(pid))");
        waiting = PQresultStatus(r) == PGRES_TUPLES_OK && atoi(PQgetvalue(r, 0, 0)) > 0;
        PQclear(r);
        if (!waiting) {
            usleep(100 * 1000);
        }
    }
    cr_assert(waiting, "the update never reached the lock");
    harness_signal_term(&svc);
    usleep(500 * 1000);
    PQclear(PQexec(lock, "COMMIT"));
    PQfinish(lock);
    pthread_join(t, NULL);
    assert_status(u.st, STATUS_OK, "");
    cr_assert_eq(harness_wait(&svc), 0, "exit status after SIGTERM");
    cr_assert(harness_file_contains(svc.log_path, "received SIGTERM"));
}

Test(member_profile, deadline_ends_a_blocked_call) {
    /* Goal: a call stuck behind a lock fails DEADLINE_EXCEEDED at its deadline, not later. */
    harness_start(&svc, "member-svc", NULL);
    const char *m = harness_merchant("dl");
    Loyalty__V1__Member *mem = NULL;
    assert_status(member_create_at(svc.addr, &arena, m, &(member_spec_t){.name = "Locked"}, &mem),
                  STATUS_OK, "");
    PGconn *lock = lock_member(m, mem->id);
    slow_update_t u = {.addr = svc.addr, .merchant = m, .id = mem->id, .timeout_ms = 300};
    slow_update_main(&u);
    cr_assert_eq(u.st.code, STATUS_DEADLINE_EXCEEDED, "got %s", status_code_name(u.st.code));
    PQclear(PQexec(lock, "ROLLBACK"));
    PQfinish(lock);
}

Test(member_profile, redis_outage_degrades_to_postgresql) {
    /* Goal: with Redis stopped the service keeps serving reads and writes from PostgreSQL,
     * and after Redis returns no stale entry is served. */
    redis_proc_t redis;
    harness_redis_start(&redis);
    char url_env[96];
    snprintf(url_env, sizeof url_env, "LOYALTY_REDIS_URL=%s", redis.url);
    const char *env[] = {url_env, NULL};
    harness_start(&svc, "member-svc", env);
    const char *m = harness_merchant("redis");
    Loyalty__V1__Member *mem = NULL, *got = NULL;
    assert_status(member_create_at(svc.addr, &arena, m, &(member_spec_t){.name = "Cached"}, &mem),
                  STATUS_OK, "");
    assert_status(get_member_by_id(svc.addr, m, mem->id, &got), STATUS_OK, ""); /* fills cache */
    harness_redis_stop(&redis);
    for (int i = 0; i < 3; i++) {
        assert_status(get_member_by_id(svc.addr, m, mem->id, &got), STATUS_OK, "");
    }
    assert_status(update_name(svc.addr, m, mem->id, "Changed During Outage", NULL, NULL), STATUS_OK,
                  "");
    assert_status(get_member_by_id(svc.addr, m, mem->id, &got), STATUS_OK, "");
    cr_assert_str_eq(got->profile->name, "Changed During Outage");
    assert_status(
        member_create_at(svc.addr, &arena, m, &(member_spec_t){.name = "New During Outage"}, NULL),
        STATUS_OK, "");
    cr_assert(harness_is_serving(svc.addr));
    harness_redis_restart(&redis);
    usleep(1200 * 1000); /* past the reconnect back-off */
    for (int i = 0; i < 5; i++) {
        assert_status(get_member_by_id(svc.addr, m, mem->id, &got), STATUS_OK, "");
        cr_assert_str_eq(got->profile->name, "Changed During Outage");
    }
    cr_assert_eq(harness_stop(&svc), 0);
    harness_redis_stop(&redis);
    cr_assert(harness_file_contains(svc.log_path, "redis unreachable"));
}
