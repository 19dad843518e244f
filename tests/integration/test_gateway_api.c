/* test_gateway_api.c -- the gateway on its own, over real gRPC against real PostgreSQL: input
 * validation, settings, lookups of unknown sagas, and how it fails when its participants are
 * unreachable (cleanly, within the deadline, with nothing logged as started). */
#include "harness.h"
#include "loyalty/v1/gateway.pb-c.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static svc_proc_t gw;
static arena_t arena;
static char dead_addr[64];
static char env_member[96], env_points[96], env_wallet[96], env_referral[96], env_promo[96];

static int dead_fd = -1;

/* A port bound but never listening: connections are refused, and no other process can take
 * it while the test runs (a merely free port could be reused by a parallel test). */
static int closed_port(void) {
    dead_fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(dead_fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(bind(dead_fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    socklen_t len = sizeof sa;
    cr_assert(getsockname(dead_fd, (struct sockaddr *)&sa, &len) == 0);
    return ntohs(sa.sin_port);
}

static void setup(void) {
    harness_init();
    arena_init(&arena);
    /* Every participant address points at a port nobody listens on. */
    snprintf(dead_addr, sizeof dead_addr, "127.0.0.1:%d", closed_port());
    snprintf(env_member, sizeof env_member, "MEMBER_SVC_ADDR=%s", dead_addr);
    snprintf(env_points, sizeof env_points, "POINTS_SVC_ADDR=%s", dead_addr);
    snprintf(env_wallet, sizeof env_wallet, "WALLET_SVC_ADDR=%s", dead_addr);
    snprintf(env_referral, sizeof env_referral, "REFERRAL_SVC_ADDR=%s", dead_addr);
    snprintf(env_promo, sizeof env_promo, "PROMO_SVC_ADDR=%s", dead_addr);
    const char *env[] = {env_member,          env_points, env_wallet,
                         env_referral,        env_promo,  "RPC_CLIENT_TIMEOUT_MS=1000",
                         "GATEWAY_LEASE_S=3", NULL};
    harness_start(&gw, "gateway", env);
}

static void teardown(void) {
    if (gw.pid > 0) {
        cr_expect_eq(harness_stop(&gw), 0, "gateway did not exit cleanly; see %s", gw.log_path);
    }
    arena_free(&arena);
    harness_fini();
    if (dead_fd >= 0) {
        close(dead_fd);
    }
}

TestSuite(gateway_api, .init = setup, .fini = teardown, .timeout = 120);

static status_t call(const char *method, const ProtobufCMessage *req, ProtobufCMessage **resp) {
    return rpc_call(rpc_channel_get(gw.addr), &loyalty__v1__gateway__descriptor, method, req,
                    &arena, resp, NULL);
}

static Loyalty__V1__GatewayCartLine line1 = LOYALTY__V1__GATEWAY_CART_LINE__INIT;
static Loyalty__V1__GatewayCartLine *lines[] = {&line1};

static Loyalty__V1__GatewayBeginCheckoutRequest begin_request(const char *m) {
    line1.line_id = "l1";
    line1.sku = "sku-1";
    line1.quantity = 2;
    line1.unit_price_cents = 1250;
    static Loyalty__V1__GatewayCart cart = LOYALTY__V1__GATEWAY_CART__INIT;
    cart.lines = lines;
    cart.n_lines = 1;
    Loyalty__V1__GatewayBeginCheckoutRequest r = LOYALTY__V1__GATEWAY_BEGIN_CHECKOUT_REQUEST__INIT;
    r.merchant_id = (char *)m;
    r.idempotency_key = (char *)harness_key();
    r.order_id = "order-1";
    r.member_id = "mbr_1";
    r.cart = &cart;
    return r;
}

Test(gateway_api, validation_names_the_field) {
    /* Goal: bad input is INVALID_ARGUMENT naming the field, before anything is called. */
    const char *m = harness_merchant("gv");
    ProtobufCMessage *resp = NULL;
    Loyalty__V1__GatewayBeginCheckoutRequest r = begin_request(m);
    r.order_id = "";
    assert_status(call("BeginCheckout", &r.base, &resp), STATUS_INVALID_ARGUMENT,
                  "INVALID_ORDER_ID");
    r = begin_request(m);
    r.idempotency_key = "";
    assert_status(call("BeginCheckout", &r.base, &resp), STATUS_INVALID_ARGUMENT,
                  "INVALID_IDEMPOTENCY_KEY");
    r = begin_request(m);
    line1.quantity = 0;
    assert_status(call("BeginCheckout", &r.base, &resp), STATUS_INVALID_ARGUMENT,
                  "INVALID_CART_LINES_QUANTITY");
    r = begin_request(m);
    r.cart->n_lines = 0;
    assert_status(call("BeginCheckout", &r.base, &resp), STATUS_INVALID_ARGUMENT,
                  "INVALID_CART_LINES");
    r = begin_request(m);
    line1.kind = LOYALTY__V1__GATEWAY_LINE_KIND__GATEWAY_LINE_KIND_WALLET_TOPUP;
    assert_status(call("BeginCheckout", &r.base, &resp), STATUS_INVALID_ARGUMENT,
                  "INVALID_CART_LINES_QUANTITY");
    line1.kind = 0;
    r = begin_request(m);
    Loyalty__V1__GatewayPaymentChoice pay = LOYALTY__V1__GATEWAY_PAYMENT_CHOICE__INIT;
    pay.wallet_cents = -1;
    r.payment = &pay;
    assert_status(call("BeginCheckout", &r.base, &resp), STATUS_INVALID_ARGUMENT,
                  "INVALID_PAYMENT_WALLET_CENTS");
    Loyalty__V1__GatewayRefundOrderRequest rf = LOYALTY__V1__GATEWAY_REFUND_ORDER_REQUEST__INIT;
    rf.merchant_id = (char *)m;
    rf.idempotency_key = (char *)harness_key();
    rf.order_id = "o-1";
    assert_status(call("RefundOrder", &rf.base, &resp), STATUS_INVALID_ARGUMENT, "INVALID_WHAT");
    rf.what_case = LOYALTY__V1__GATEWAY_REFUND_ORDER_REQUEST__WHAT_AMOUNT_CENTS;
    rf.amount_cents = 0;
    assert_status(call("RefundOrder", &rf.base, &resp), STATUS_INVALID_ARGUMENT,
                  "INVALID_AMOUNT_CENTS");
    Loyalty__V1__GatewayTopUpWalletRequest tu = LOYALTY__V1__GATEWAY_TOP_UP_WALLET_REQUEST__INIT;
    tu.merchant_id = (char *)m;
    tu.idempotency_key = (char *)harness_key();
    tu.member_id = "mbr_1";
    tu.paid_cents = 1000;
    assert_status(call("TopUpWallet", &tu.base, &resp), STATUS_INVALID_ARGUMENT,
                  "INVALID_PAYMENT_REF");
}

Test(gateway_api, unknown_things_are_not_found) {
    const char *m = harness_merchant("gn");
    ProtobufCMessage *resp = NULL;
    Loyalty__V1__GatewayGetCheckoutRequest g = LOYALTY__V1__GATEWAY_GET_CHECKOUT_REQUEST__INIT;
    g.merchant_id = (char *)m;
    g.target_case = LOYALTY__V1__GATEWAY_GET_CHECKOUT_REQUEST__TARGET_CHECKOUT_ID;
    g.checkout_id = "chk_nope";
    assert_status(call("GetCheckout", &g.base, &resp), STATUS_NOT_FOUND, "CHECKOUT_NOT_FOUND");
    g.target_case = LOYALTY__V1__GATEWAY_GET_CHECKOUT_REQUEST__TARGET_ORDER_ID;
    g.order_id = "order-nope";
    assert_status(call("GetCheckout", &g.base, &resp), STATUS_NOT_FOUND, "CHECKOUT_NOT_FOUND");
    Loyalty__V1__GatewayCompleteCheckoutRequest c =
        LOYALTY__V1__GATEWAY_COMPLETE_CHECKOUT_REQUEST__INIT;
    c.merchant_id = (char *)m;
    c.checkout_id = "chk_nope";
    assert_status(call("CompleteCheckout", &c.base, &resp), STATUS_NOT_FOUND, "CHECKOUT_NOT_FOUND");
    Loyalty__V1__GatewayRefundOrderRequest rf = LOYALTY__V1__GATEWAY_REFUND_ORDER_REQUEST__INIT;
    rf.merchant_id = (char *)m;
    rf.idempotency_key = (char *)harness_key();
    rf.order_id = "order-nope";
    rf.what_case = LOYALTY__V1__GATEWAY_REFUND_ORDER_REQUEST__WHAT_AMOUNT_CENTS;
    rf.amount_cents = 100;
    assert_status(call("RefundOrder", &rf.base, &resp), STATUS_NOT_FOUND, "ORDER_NOT_FOUND");
    Loyalty__V1__GatewayGetSagaRequest gs = LOYALTY__V1__GATEWAY_GET_SAGA_REQUEST__INIT;
    gs.merchant_id = (char *)m;
    gs.saga_id = "chk_nope";
    assert_status(call("GetSaga", &gs.base, &resp), STATUS_NOT_FOUND, "SAGA_NOT_FOUND");
    Loyalty__V1__GatewayRetrySagaRequest rs = LOYALTY__V1__GATEWAY_RETRY_SAGA_REQUEST__INIT;
    rs.merchant_id = (char *)m;
    rs.idempotency_key = (char *)harness_key();
    rs.saga_id = "chk_nope";
    assert_status(call("RetrySaga", &rs.base, &resp), STATUS_NOT_FOUND, "SAGA_NOT_FOUND");
    Loyalty__V1__GatewayListSagasRequest ls = LOYALTY__V1__GATEWAY_LIST_SAGAS_REQUEST__INIT;
    ls.merchant_id = (char *)m;
    assert_status(call("ListSagas", &ls.base, &resp), STATUS_OK, "");
    cr_assert_eq(((Loyalty__V1__GatewayListSagasResponse *)resp)->n_sagas, 0);
}

Test(gateway_api, settings_round_trip) {
    const char *m = harness_merchant("gs");
    ProtobufCMessage *resp = NULL;
    Loyalty__V1__GatewayGetSettingsRequest g = LOYALTY__V1__GATEWAY_GET_SETTINGS_REQUEST__INIT;
    g.merchant_id = (char *)m;
    assert_status(call("GetGatewaySettings", &g.base, &resp), STATUS_OK, "");
    cr_assert_eq(
        ((Loyalty__V1__GatewayGetSettingsResponse *)resp)->settings->n_welcome_coupon_template_ids,
        0, "defaults: no welcome pack");
    char *ids[11] = {"tpl_a", "tpl_b", "t3", "t4", "t5", "t6", "t7", "t8", "t9", "t10", "t11"};
    Loyalty__V1__GatewaySettings s = LOYALTY__V1__GATEWAY_SETTINGS__INIT;
    s.welcome_coupon_template_ids = ids;
    s.n_welcome_coupon_template_ids = 2;
    Loyalty__V1__GatewayUpdateSettingsRequest u =
        LOYALTY__V1__GATEWAY_UPDATE_SETTINGS_REQUEST__INIT;
    u.merchant_id = (char *)m;
    u.idempotency_key = (char *)harness_key();
    u.settings = &s;
    u.update_mask = HARNESS_MASK("welcome_coupon_template_ids");
    assert_status(call("UpdateGatewaySettings", &u.base, &resp), STATUS_OK, "");
    assert_status(call("GetGatewaySettings", &g.base, &resp), STATUS_OK, "");
    Loyalty__V1__GatewaySettings *got = ((Loyalty__V1__GatewayGetSettingsResponse *)resp)->settings;
    cr_assert_eq(got->n_welcome_coupon_template_ids, 2);
    cr_assert_str_eq(got->welcome_coupon_template_ids[1], "tpl_b");
    s.n_welcome_coupon_template_ids = 11;
    u.idempotency_key = (char *)harness_key();
    assert_status(call("UpdateGatewaySettings", &u.base, &resp), STATUS_INVALID_ARGUMENT,
                  "INVALID_SETTINGS_WELCOME_COUPON_TEMPLATE_IDS");
    s.n_welcome_coupon_template_ids = 10;
    assert_status(call("UpdateGatewaySettings", &u.base, &resp), STATUS_OK, ""); /* at the limit */
}

Test(gateway_api, unreachable_participants_fail_cleanly) {
    /* Goal: with every participant down a Begin fails within the deadline (calls wait for
     * their service until RPC_CLIENT_TIMEOUT_MS, then DEADLINE_EXCEEDED; UNAVAILABLE when the
     * connection is refused at once) and leaves no saga (nothing was reserved, so nothing is
     * logged), and a retry does the same. */
    const char *m = harness_merchant("gu");
    Loyalty__V1__GatewayBeginCheckoutRequest r = begin_request(m);
    ProtobufCMessage *resp = NULL;
    time_t start = time(NULL);
    status_t st = call("BeginCheckout", &r.base, &resp);
    cr_assert(st.code == STATUS_DEADLINE_EXCEEDED || st.code == STATUS_UNAVAILABLE, "got %s %s",
              status_code_name(st.code), st.message);
    cr_assert(time(NULL) - start < 4, "failed within one client timeout, not retried");
    st = call("BeginCheckout", &r.base, &resp);
    cr_assert(st.code == STATUS_DEADLINE_EXCEEDED || st.code == STATUS_UNAVAILABLE);
    Loyalty__V1__GatewayListSagasRequest ls = LOYALTY__V1__GATEWAY_LIST_SAGAS_REQUEST__INIT;
    ls.merchant_id = (char *)m;
    assert_status(call("ListSagas", &ls.base, &resp), STATUS_OK, "");
    cr_assert_eq(((Loyalty__V1__GatewayListSagasResponse *)resp)->n_sagas, 0);
    Loyalty__V1__GatewayGetMemberOverviewRequest ov =
        LOYALTY__V1__GATEWAY_GET_MEMBER_OVERVIEW_REQUEST__INIT;
    ov.merchant_id = (char *)m;
    ov.member_id = "mbr_1";
    st = call("GetMemberOverview", &ov.base, &resp);
    cr_assert(st.code == STATUS_DEADLINE_EXCEEDED || st.code == STATUS_UNAVAILABLE);
}
