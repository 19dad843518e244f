/* test_credentials.c -- per-merchant credentials with roles (README "Credentials"), through the
 * six real services: every RPC of the gateway and of one participant (member-svc) called with
 * no token, a wrong token, a storefront and an admin credential of merchant A for A and for B,
 * an admin of every merchant and the service token; the views across merchants; and a rotation
 * of a token while two clients keep calling, without one failed call. */
#include "credentials.h"
#include "gateway_it.h"
#include "loyalty/v1/audit.pb-c.h"
#include "loyalty/v1/campaign.pb-c.h"
#include "pb.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#define SERVICE_TOKEN "svc-token-9d2c"
#define TOK_SHOP_A "storefront-a-token-71f0"
#define TOK_ADMIN_A "admin-a-token-5b1e"
#define TOK_OPS "ops-every-merchant-token-c4a9"
#define TOK_WRONG "storefront-a-token-71f1"

static char cred_dir[64];
static char cred_path[128];
static char cred_env[192];
static const char *merchant_a, *merchant_b;

static void hex_digest(const char *token, char *hex) {
    uint8_t d[CRED_DIGEST_BYTES];
    cred_digest(token, strlen(token), d);
    for (int i = 0; i < CRED_DIGEST_BYTES; i++) {
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    }
}

/* Replaces the credential file at once (write aside, rename), as a Secret update does. */
static void write_credentials(const char *text) {
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.tmp", cred_path);
    FILE *f = fopen(tmp, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(rename(tmp, cred_path), 0);
}

/* One line of the file for `token`, appended to buf. */
static void cred_line(char *buf, size_t cap, const char *id, const char *role,
                      const char *merchants, const char *token) {
    char hex[2 * CRED_DIGEST_BYTES + 1];
    hex_digest(token, hex);
    size_t n = strlen(buf);
    snprintf(buf + n, cap - n, "%-16s %-10s %-40s %s\n", id, role, merchants, hex);
}

static void base_credentials(char *buf, size_t cap) {
    snprintf(buf, cap, "# test credentials\n");
    cred_line(buf, cap, "shopA-web", "storefront", merchant_a, TOK_SHOP_A);
    cred_line(buf, cap, "adminA", "admin", merchant_a, TOK_ADMIN_A);
    cred_line(buf, cap, "ops", "admin", "*", TOK_OPS);
}

/* The six services with the credential file and the shared token as the service credential. */
static void creds_stack_start(void) {
    merchant_a = harness_merchant("credA");
    merchant_b = harness_merchant("credB");
    snprintf(cred_dir, sizeof cred_dir, "/tmp/loyalty-creds-XXXXXX");
    cr_assert_not_null(mkdtemp(cred_dir));
    snprintf(cred_path, sizeof cred_path, "%s/credentials", cred_dir);
    char text[4096];
    base_credentials(text, sizeof text);
    write_credentials(text);
    snprintf(cred_env, sizeof cred_env, "LOYALTY_CREDENTIALS_FILE=%s", cred_path);
    stack_start_with((const char *[]){"LOYALTY_AUTH_TOKEN=" SERVICE_TOKEN, cred_env, NULL});
}

static void creds_teardown(void) {
    it_teardown();
    gw_extra_env[0] = NULL;
    if (cred_path[0]) {
        unlink(cred_path);
        rmdir(cred_dir);
    }
}

TestSuite(credentials, .init = it_setup, .fini = creds_teardown, .timeout = 600);

/* A request of `method`'s input type naming `merchant` (and a fresh idempotency key when it
 * takes one); everything else empty: the calls are about who may call, not what. */
static ProtobufCMessage *request_for(arena_t *a, const ProtobufCMethodDescriptor *md,
                                     const char *merchant) {
    ProtobufCMessage *req = pb_new(a, md->input);
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(md->input, "merchant_id");
    cr_assert_not_null(f, "%s has no merchant_id", md->input->name);
    *(const char **)((char *)req + f->offset) = merchant;
    f = protobuf_c_message_descriptor_get_field_by_name(md->input, "idempotency_key");
    if (f) {
        *(const char **)((char *)req + f->offset) = harness_key();
    }
    return req;
}

static status_t call_as(int svc, const ProtobufCServiceDescriptor *sd, const char *method,
                        const ProtobufCMessage *req, const char *token, arena_t *a) {
    rpc_call_opts_t opts = {.timeout_ms = 30000, .auth_token = token};
    return rpc_call(rpc_channel_get(procs[svc].addr), sd, method, req, a, NULL, &opts);
}

typedef enum expect { ALLOWED, UNAUTH, ROLE_DENIED, MERCHANT_DENIED } expect_t;

static void check_outcome(status_t st, expect_t want, const char *what) {
    switch (want) {
    case ALLOWED:
        /* Past the credential check: the handler's own answer (mostly INVALID_ARGUMENT for
         * these empty requests), never an authentication or permission failure. */
        cr_assert(st.code != STATUS_UNAUTHENTICATED && st.code != STATUS_PERMISSION_DENIED,
                  "%s: want the call let through, got %s %s (%s)", what, status_code_name(st.code),
                  st.reason, st.message);
        break;
    case UNAUTH:
        cr_assert_eq(st.code, STATUS_UNAUTHENTICATED, "%s: got %s %s", what,
                     status_code_name(st.code), st.reason);
        break;
    case ROLE_DENIED:
    case MERCHANT_DENIED: {
        const char *reason = want == ROLE_DENIED ? "ROLE_NOT_ALLOWED" : "MERCHANT_NOT_ALLOWED";
        cr_assert_eq(st.code, STATUS_PERMISSION_DENIED, "%s: got %s %s (%s)", what,
                     status_code_name(st.code), st.reason, st.message);
        cr_assert_str_eq(st.reason, reason, "%s: %s", what, st.message);
        /* Nothing about the merchant itself: the same message whether it exists or not. */
        cr_assert_null(strstr(st.message, merchant_b), "%s: %s", what, st.message);
        break;
    }
    }
}

static bool is_storefront(const ProtobufCServiceDescriptor *sd, const char *method) {
    if (sd != &loyalty__v1__gateway__descriptor) {
        return false;
    }
    static const char *const storefront[] = {"RegisterMember",
                                             "GetMemberOverview",
                                             "QuoteCheckout",
                                             "BeginCheckout",
                                             "CompleteCheckout",
                                             "CancelCheckout",
                                             "Checkout",
                                             "GetCheckout",
                                             "RefundOrder",
                                             "TopUpWallet",
                                             "RedeemReward",
                                             "CheckIn",
                                             NULL};
    for (int i = 0; storefront[i]; i++) {
        if (strcmp(storefront[i], method) == 0) {
            return true;
        }
    }
    return false;
}

/* Every RPC of `sd` (served by procs[svc]) × every kind of caller. */
static int check_matrix(int svc, const ProtobufCServiceDescriptor *sd) {
    int calls = 0;
    for (unsigned i = 0; i < sd->n_methods; i++) {
        const ProtobufCMethodDescriptor *md = &sd->methods[i];
        bool storefront = is_storefront(sd, md->name);
        struct {
            const char *caller;
            const char *token;
            const char *merchant;
            expect_t want;
        } cells[] = {
            {"no token", "", merchant_a, UNAUTH},
            {"wrong token", TOK_WRONG, merchant_a, UNAUTH},
            {"storefront of A for A", TOK_SHOP_A, merchant_a, storefront ? ALLOWED : ROLE_DENIED},
            {"storefront of A for B", TOK_SHOP_A, merchant_b,
             storefront ? MERCHANT_DENIED : ROLE_DENIED},
            {"admin of A for A", TOK_ADMIN_A, merchant_a, ALLOWED},
            {"admin of A for B", TOK_ADMIN_A, merchant_b, MERCHANT_DENIED},
            {"admin * for B", TOK_OPS, merchant_b, ALLOWED},
            {"service for B", SERVICE_TOKEN, merchant_b, ALLOWED},
        };
        for (size_t c = 0; c < sizeof cells / sizeof cells[0]; c++) {
            arena_t a;
            arena_init(&a);
            char what[160];
            snprintf(what, sizeof what, "%s/%s, %s", sd->name, md->name, cells[c].caller);
            ProtobufCMessage *req = request_for(&a, md, cells[c].merchant);
            status_t st = call_as(svc, sd, md->name, req, cells[c].token, &a);
            check_outcome(st, cells[c].want, what);
            arena_free(&a);
            calls++;
        }
    }
    return calls;
}

Test(credentials, every_rpc_of_the_gateway_and_member_svc_by_every_caller) {
    /* Goal: the roles and merchant scopes hold on every RPC of the gateway (both its services)
     * and, called directly, of a participant; the logs name the credential, never the token. */
    creds_stack_start();
    int calls = check_matrix(SVC_GATEWAY, &loyalty__v1__gateway__descriptor);
    calls += check_matrix(SVC_GATEWAY, &loyalty__v1__campaign_service__descriptor);
    calls += check_matrix(SVC_MEMBER, &loyalty__v1__member_service__descriptor);
    /* The audit trail every service serves (lib/audit_rpc.c). */
    calls += check_matrix(SVC_GATEWAY, &loyalty__v1__audit_service__descriptor);
    calls += check_matrix(SVC_MEMBER, &loyalty__v1__audit_service__descriptor);
    cr_assert_geq(calls, 8 * (18 + 4 + 23 + 2), "every method was called");

    /* The view across merchants: an admin of every merchant only. */
    struct {
        const char *token;
        expect_t want;
    } across[] = {
        {TOK_OPS, ALLOWED},
        {TOK_ADMIN_A, MERCHANT_DENIED},
        {SERVICE_TOKEN, ROLE_DENIED},
        {TOK_SHOP_A, ROLE_DENIED},
        {"", UNAUTH},
    };
    for (size_t i = 0; i < sizeof across / sizeof across[0]; i++) {
        Loyalty__V1__GatewayListSagasRequest r = LOYALTY__V1__GATEWAY_LIST_SAGAS_REQUEST__INIT;
        r.merchant_id = "";
        status_t st = call_as(SVC_GATEWAY, &loyalty__v1__gateway__descriptor, "ListSagas", &r.base,
                              across[i].token, &arena);
        check_outcome(st, across[i].want, "ListSagas across merchants");
        if (across[i].want == ALLOWED) {
            assert_ok(st);
        }
        /* loyaltyctl health: the same operators' view. */
        Loyalty__V1__GatewayCheckHealthRequest h = LOYALTY__V1__GATEWAY_CHECK_HEALTH_REQUEST__INIT;
        h.merchant_id = "";
        st = call_as(SVC_GATEWAY, &loyalty__v1__gateway__descriptor, "CheckHealth", &h.base,
                     across[i].token, &arena);
        check_outcome(st, across[i].want, "CheckHealth across merchants");
        if (across[i].want == ALLOWED) {
            assert_ok(st);
        }
    }

    /* A storefront of A really works for A end to end (the gateway calls the participants
     * with the service token): a registration, then its overview. */
    Loyalty__V1__GatewayRegisterMemberRequest reg =
        LOYALTY__V1__GATEWAY_REGISTER_MEMBER_REQUEST__INIT;
    Loyalty__V1__MemberProfile profile = LOYALTY__V1__MEMBER_PROFILE__INIT;
    profile.name = "Ada";
    reg.merchant_id = (char *)merchant_a;
    reg.idempotency_key = (char *)harness_key();
    reg.profile = &profile;
    Loyalty__V1__GatewayRegisterMemberResponse *reg_resp = NULL;
    rpc_call_opts_t shop = {.timeout_ms = 30000, .auth_token = TOK_SHOP_A};
    assert_ok(rpc_call(rpc_channel_get(procs[SVC_GATEWAY].addr), &loyalty__v1__gateway__descriptor,
                       "RegisterMember", &reg.base, &arena, (ProtobufCMessage **)&reg_resp, &shop));
    cr_assert_not_null(reg_resp->registration);
    cr_assert_not_null(reg_resp->registration->member);

    /* The access log names the credential id and never holds a token. */
    bool named = false;
    for (int i = 0; i < 300 && !named; i++) {
        named = harness_file_contains(procs[SVC_GATEWAY].log_path, "\"credential\":\"shopA-web\"");
        if (!named) {
            sleep_ms(100);
        }
    }
    cr_assert(named, "the gateway's log names the credential (%s)", procs[SVC_GATEWAY].log_path);
    const char *tokens[] = {TOK_SHOP_A, TOK_ADMIN_A, TOK_OPS, TOK_WRONG, SERVICE_TOKEN};
    for (size_t i = 0; i < sizeof tokens / sizeof tokens[0]; i++) {
        cr_assert_not(harness_file_contains(procs[SVC_GATEWAY].log_path, tokens[i]));
        cr_assert_not(harness_file_contains(procs[SVC_MEMBER].log_path, tokens[i]));
    }
}

/* ---- rotation under load ---- */

typedef struct client {
    const char *token;
    atomic_bool stop;
    atomic_long ok;
    atomic_long failed;
    status_t first_failure;
    pthread_t thread;
} client_t;

/* An admin's calls for merchant A, on the gateway and on member-svc, until told to stop. */
static void *client_main(void *arg) {
    client_t *c = arg;
    while (!atomic_load(&c->stop)) {
        arena_t a;
        arena_init(&a);
        Loyalty__V1__GatewayGetSettingsRequest g = LOYALTY__V1__GATEWAY_GET_SETTINGS_REQUEST__INIT;
        g.merchant_id = (char *)merchant_a;
        status_t st = call_as(SVC_GATEWAY, &loyalty__v1__gateway__descriptor, "GetGatewaySettings",
                              &g.base, c->token, &a);
        if (status_is_ok(&st)) {
            Loyalty__V1__MemberListTiersRequest t = LOYALTY__V1__MEMBER_LIST_TIERS_REQUEST__INIT;
            t.merchant_id = (char *)merchant_a;
            st = call_as(SVC_MEMBER, &loyalty__v1__member_service__descriptor, "ListTiers", &t.base,
                         c->token, &a);
        }
        arena_free(&a);
        if (status_is_ok(&st)) {
            atomic_fetch_add(&c->ok, 1);
        } else if (atomic_fetch_add(&c->failed, 1) == 0) {
            c->first_failure = st;
        }
    }
    rpc_client_thread_cleanup();
    return NULL;
}

static void client_start(client_t *c, const char *token) {
    c->token = token;
    atomic_store(&c->stop, false);
    atomic_store(&c->ok, 0);
    atomic_store(&c->failed, 0);
    cr_assert_eq(pthread_create(&c->thread, NULL, client_main, c), 0);
}

static void client_stop(client_t *c) {
    atomic_store(&c->stop, true);
    pthread_join(c->thread, NULL);
}

/* Waits (bounded, polling) until `client` has made `n` more good calls. */
static void client_wait_calls(client_t *c, long n) {
    long until = atomic_load(&c->ok) + n;
    for (int i = 0; i < 6000 && atomic_load(&c->ok) < until && atomic_load(&c->failed) == 0; i++) {
        sleep_ms(10);
    }
}

/* True once both the gateway and member-svc answer `token` as `accepted` says. */
static bool token_state_is(const char *token, bool accepted) {
    for (int svc = 0; svc < SVC_N; svc++) {
        if (svc != SVC_GATEWAY && svc != SVC_MEMBER) {
            continue;
        }
        Loyalty__V1__MemberListTiersRequest t = LOYALTY__V1__MEMBER_LIST_TIERS_REQUEST__INIT;
        Loyalty__V1__GatewayGetSettingsRequest g = LOYALTY__V1__GATEWAY_GET_SETTINGS_REQUEST__INIT;
        t.merchant_id = g.merchant_id = (char *)merchant_a;
        status_t st = svc == SVC_MEMBER ? call_as(svc, &loyalty__v1__member_service__descriptor,
                                                  "ListTiers", &t.base, token, &arena)
                                        : call_as(svc, &loyalty__v1__gateway__descriptor,
                                                  "GetGatewaySettings", &g.base, token, &arena);
        if (status_is_ok(&st) != accepted) {
            return false;
        }
    }
    return true;
}

static void wait_token_state(const char *token, bool accepted) {
    bool done = false;
    for (int i = 0; i < 600 && !done; i++) {
        done = token_state_is(token, accepted);
        if (!done) {
            sleep_ms(100);
        }
    }
    cr_assert(done, "token %s not %s within 60 s", token, accepted ? "accepted" : "refused");
}

Test(credentials, rotation_under_load_fails_no_call) {
    /* Goal: README's rotation (add the new token, roll the clients, remove the old one) while
     * clients keep calling the gateway and member-svc: not one call fails, and afterwards the
     * old token is refused. SIGHUP re-reads the file and does not stop a service. */
    creds_stack_start();
    const char *old_token = TOK_ADMIN_A;
    const char *new_token = "admin-a-rotated-token-0e77";
    client_t old_client = {0}, new_client = {0};
    client_start(&old_client, old_token);
    client_wait_calls(&old_client, 20);

    /* 1. add the new token; SIGHUP to every service (the watcher would see it too). */
    char text[4096];
    base_credentials(text, sizeof text);
    cred_line(text, sizeof text, "adminA-2", "admin", merchant_a, new_token);
    write_credentials(text);
    for (int i = 0; i < SVC_N; i++) {
        kill(procs[i].pid, SIGHUP);
    }
    wait_token_state(new_token, true);

    /* 2. roll the clients: the new one starts, both run, then the old one stops. */
    client_start(&new_client, new_token);
    client_wait_calls(&new_client, 20);
    client_wait_calls(&old_client, 20);
    client_stop(&old_client);

    /* 3. remove the old token (by the watcher alone); the new client keeps calling. */
    snprintf(text, sizeof text, "# rotated\n");
    cred_line(text, sizeof text, "shopA-web", "storefront", merchant_a, TOK_SHOP_A);
    cred_line(text, sizeof text, "adminA-2", "admin", merchant_a, new_token);
    cred_line(text, sizeof text, "ops", "admin", "*", TOK_OPS);
    write_credentials(text);
    wait_token_state(old_token, false);
    client_wait_calls(&new_client, 20);
    client_stop(&new_client);

    cr_assert_eq(atomic_load(&old_client.failed), 0, "old client: %s %s",
                 old_client.first_failure.reason, old_client.first_failure.message);
    cr_assert_eq(atomic_load(&new_client.failed), 0, "new client: %s %s",
                 new_client.first_failure.reason, new_client.first_failure.message);
    cr_assert_geq(atomic_load(&old_client.ok), 40);
    cr_assert_geq(atomic_load(&new_client.ok), 40);
    for (int i = 0; i < SVC_N; i++) {
        cr_assert(harness_is_serving(procs[i].addr), "%s survived SIGHUP", svc_names[i]);
    }

    /* A broken file keeps the credentials in force (and is logged). */
    write_credentials("adminA-2 admin * not-a-digest\n");
    bool logged = false;
    for (int i = 0; i < 300 && !logged; i++) {
        logged = harness_file_contains(procs[SVC_MEMBER].log_path, "credential file not loaded");
        if (!logged) {
            sleep_ms(100);
        }
    }
    cr_assert(logged, "the bad file is reported");
    cr_assert(token_state_is(new_token, true), "the last good credentials stay");
}
