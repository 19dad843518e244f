/* test_gateway_observe.c -- what an operator sees of the suite with every real service: a
 * storefront's W3C traceparent reaches every participant of a checkout with the same trace id,
 * each hop a child span (read from the services' own log files); ListSagas without a
 * merchant lists the sagas of every merchant, filtered by state and age, paged; and checkouts
 * move the gateway's saga counters on /metrics by exactly one per finished saga, whether a
 * request or the recovery job finished it. */
#include "gateway_it.h"

TestSuite(gateway_observe, .init = it_setup, .fini = it_teardown, .timeout = 300);

#define S_COMPLETED LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_COMPLETED
#define S_ATTENTION LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_NEEDS_ATTENTION
#define S_CANCELLED LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_CANCELLED

/* The storefront's trace: its span is the parent of the gateway's. */
#define STOREFRONT_TRACE "4bf92f3577b34da6a3ce929d0e0e4736"
#define STOREFRONT_SPAN "00f067aa0ba902b7"
#define STOREFRONT_TRACEPARENT "00-" STOREFRONT_TRACE "-" STOREFRONT_SPAN "-01"

/* A gateway call with the storefront's trace context as metadata. */
static status_t gw_traced(const char *method, const void *req, void *resp_out) {
    rpc_call_opts_t opts = {.timeout_ms = 20000, .extra_count = 2};
    opts.extra_keys[0] = "traceparent";
    opts.extra_values[0] = STOREFRONT_TRACEPARENT;
    opts.extra_keys[1] = "tracestate";
    opts.extra_values[1] = "shop=t61rcWkgMzE";
    return rpc_call(rpc_channel_get(procs[SVC_GATEWAY].addr), svc_desc[SVC_GATEWAY], method,
                    (const ProtobufCMessage *)req, &arena, (ProtobufCMessage **)resp_out, &opts);
}

/* The value of "key":"..." in a JSON log line, copied into out ("" when absent). */
static void json_field(const char *line, const char *key, char *out, size_t cap) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\":\"", key);
    out[0] = '\0';
    const char *p = strstr(line, pattern);
    if (p == NULL) {
        return;
    }
    p += strlen(pattern);
    size_t n = strcspn(p, "\"");
    n = n < cap - 1 ? n : cap - 1;
    memcpy(out, p, n);
    out[n] = '\0';
}

typedef struct trace_seen {
    int lines;               /* lines of the storefront's trace */
    int access_lines;        /* of them, access lines (with "status") */
    int parent_storefront;   /* of them, with the storefront's span as parent */
    int own_span_storefront; /* of them, claiming the storefront's span as their own */
    int no_parent;           /* of them, without a parent span */
} trace_seen_t;

/* Counts the lines of a service's log in the storefront's trace. */
static trace_seen_t read_trace(const char *log_path) {
    trace_seen_t seen = {0};
    FILE *f = fopen(log_path, "r");
    cr_assert(f != NULL, "cannot read %s", log_path);
    char line[8192], value[128];
    while (fgets(line, sizeof line, f)) {
        json_field(line, "trace_id", value, sizeof value);
        if (strcmp(value, STOREFRONT_TRACE) != 0) {
            continue;
        }
        seen.lines++;
        seen.access_lines += strstr(line, "\"status\":\"") != NULL;
        json_field(line, "parent_span_id", value, sizeof value);
        seen.parent_storefront += strcmp(value, STOREFRONT_SPAN) == 0;
        seen.no_parent += value[0] == '\0';
        json_field(line, "span_id", value, sizeof value);
        seen.own_span_storefront += strcmp(value, STOREFRONT_SPAN) == 0;
    }
    fclose(f);
    return seen;
}

Test(gateway_observe, traceparent_reaches_every_participant_of_a_checkout) {
    /* Goal: a checkout (Begin then Complete) sent with the storefront's traceparent is logged
     * under the same trace id by the gateway and by all five participants; the gateway's calls
     * are children of the storefront's span, the participants' children of the gateway's
     * outgoing calls (never of the storefront's span), and nobody reuses a span id. */
    stack_start();
    shop_t s;
    open_shop(&s, "trace");
    const char *b = new_buyer(&s, 5000, 3000);
    Loyalty__V1__PromoCoupon *coupon = issue_coupon(s.m, b, s.five_off->id);
    Loyalty__V1__GatewayCart *cart = shirt_cart();
    cart->codes[cart->n_codes++] = "SAVE10";
    cart->coupon_ids[cart->n_coupon_ids++] = coupon->id;

    Loyalty__V1__GatewayBeginCheckoutRequest br = LOYALTY__V1__GATEWAY_BEGIN_CHECKOUT_REQUEST__INIT;
    br.merchant_id = (char *)s.m;
    br.idempotency_key = (char *)harness_key();
    br.order_id = "order-traced";
    br.member_id = (char *)b;
    br.cart = cart;
    br.payment = pay(2000, 3000);
    Loyalty__V1__GatewayBeginCheckoutResponse *begun = NULL;
    assert_ok(gw_traced("BeginCheckout", &br, &begun));
    Loyalty__V1__GatewayCompleteCheckoutRequest cr =
        LOYALTY__V1__GATEWAY_COMPLETE_CHECKOUT_REQUEST__INIT;
    cr.merchant_id = (char *)s.m;
    cr.checkout_id = begun->checkout->checkout_id;
    cr.payment_ref = "psp-traced";
    Loyalty__V1__GatewayCompleteCheckoutResponse *done = NULL;
    assert_ok(gw_traced("CompleteCheckout", &cr, &done));
    cr_assert_eq(done->checkout->state, S_COMPLETED, "state %d", done->checkout->state);

    trace_seen_t gw_seen = read_trace(procs[SVC_GATEWAY].log_path);
    cr_assert_geq(gw_seen.access_lines, 2, "Begin and Complete logged in the trace; see %s",
                  procs[SVC_GATEWAY].log_path);
    cr_assert_eq(gw_seen.parent_storefront, gw_seen.lines,
                 "every gateway line of the trace is a child of the storefront's span");
    cr_assert_eq(gw_seen.own_span_storefront, 0);
    for (int i = 0; i < SVC_GATEWAY; i++) {
        trace_seen_t seen = read_trace(procs[i].log_path);
        cr_assert_geq(seen.access_lines, 1, "%s has no call in the storefront's trace; see %s",
                      svc_names[i], procs[i].log_path);
        cr_assert_eq(seen.parent_storefront, 0,
                     "%s: a parent span is the storefront's, not the gateway's call", svc_names[i]);
        cr_assert_eq(seen.no_parent, 0, "%s: a line of the trace without a parent span",
                     svc_names[i]);
        cr_assert_eq(seen.own_span_storefront, 0, "%s", svc_names[i]);
    }
}

/* Runs one SQL statement with $1 (a saga id) on the test's database. */
static void sql(const char *stmt, const char *arg) {
    PGconn *c = PQconnectdb(test_dsn());
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    const char *params[1] = {arg};
    PGresult *r = PQexecParams(c, stmt, 1, NULL, params, NULL, NULL, 0);
    cr_assert(PQresultStatus(r) == PGRES_COMMAND_OK, "%s: %s", stmt, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

static Loyalty__V1__GatewayListSagasResponse *
list_sagas(const char *m, int state, int64_t older_than_s, int page_size, const char *cursor) {
    Loyalty__V1__GatewayListSagasRequest r = LOYALTY__V1__GATEWAY_LIST_SAGAS_REQUEST__INIT;
    Loyalty__V1__PageRequest page = LOYALTY__V1__PAGE_REQUEST__INIT;
    page.page_size = page_size;
    page.cursor = (char *)(cursor ? cursor : "");
    r.merchant_id = (char *)m;
    r.state = state;
    r.older_than_s = older_than_s;
    r.page = &page;
    Loyalty__V1__GatewayListSagasResponse *resp = NULL;
    assert_ok(gw("ListSagas", &r, &resp));
    return resp;
}

static bool listed(const Loyalty__V1__GatewayListSagasResponse *l, const char *m, const char *id) {
    for (size_t i = 0; i < l->n_sagas; i++) {
        if (strcmp(l->sagas[i]->id, id) == 0) {
            cr_assert_str_eq(l->sagas[i]->merchant_id, m, "saga %s listed with its merchant", id);
            return true;
        }
    }
    return false;
}

Test(gateway_observe, list_sagas_across_merchants_by_state_and_age) {
    /* Goal: without merchant_id ListSagas lists the sagas of every merchant, each with its
     * merchant; state and older_than_s narrow it to "what is stuck", pages walk it all once;
     * with a merchant it stays that merchant's. The test has a database of its own, so the
     * sagas are exactly these. */
    stack_start();
    const char *ma = harness_merchant("opsa");
    const char *mb = harness_merchant("opsb");
    set_points_rules(ma, 0, 0, 0);
    set_points_rules(mb, 0, 0, 0);
    const char *ids[4], *merchants[4];
    for (int i = 0; i < 4; i++) {
        merchants[i] = i < 2 ? ma : mb;
        Loyalty__V1__GatewayRegistration *reg = NULL;
        assert_ok(register_member(merchants[i], NULL, "Member", NULL, NULL, &reg));
        ids[i] = reg->saga_id;
        cr_assert_eq(wait_saga_final(merchants[i], ids[i], 30)->state, S_COMPLETED);
    }
    /* One of B's is stuck (as a permanent step failure leaves it), one of A's is old. */
    sql("UPDATE gateway.sagas SET state = 7, reason = 'PLAN_INACTIVE' WHERE id = $1", ids[3]);
    sql("UPDATE gateway.sagas SET updated_at = now() - interval '2 hours' WHERE id = $1", ids[0]);

    Loyalty__V1__GatewayListSagasResponse *all = list_sagas("", 0, 0, 100, NULL);
    cr_assert_eq(all->n_sagas, 4);
    for (int i = 0; i < 4; i++) {
        cr_assert(listed(all, merchants[i], ids[i]), "saga %d missing", i);
    }
    cr_assert_str_eq(all->page_info->next_cursor, "");

    Loyalty__V1__GatewayListSagasResponse *stuck = list_sagas("", S_ATTENTION, 0, 100, NULL);
    cr_assert_eq(stuck->n_sagas, 1);
    cr_assert(listed(stuck, mb, ids[3]));
    cr_assert_str_eq(stuck->sagas[0]->reason, "PLAN_INACTIVE");

    Loyalty__V1__GatewayListSagasResponse *old = list_sagas("", 0, 3600, 100, NULL);
    cr_assert_eq(old->n_sagas, 1);
    cr_assert(listed(old, ma, ids[0]));
    cr_assert_eq(list_sagas("", S_ATTENTION, 3600, 100, NULL)->n_sagas, 0);

    /* Pages of one: each saga once, newest first, then an empty cursor. */
    const char *cursor = NULL;
    int seen = 0;
    for (;;) {
        Loyalty__V1__GatewayListSagasResponse *p = list_sagas("", 0, 0, 1, cursor);
        cr_assert_leq(p->n_sagas, 1);
        if (p->n_sagas == 1) {
            cr_assert_str_eq(p->sagas[0]->id, all->sagas[seen]->id, "page %d", seen);
            seen++;
        }
        if (p->page_info->next_cursor[0] == '\0') {
            break;
        }
        cr_assert_lt(seen, 5, "paging does not end");
        cursor = arena_strdup(&arena, p->page_info->next_cursor);
    }
    cr_assert_eq(seen, 4);

    /* With a merchant: only its own, as before. */
    Loyalty__V1__GatewayListSagasResponse *of_b = list_sagas(mb, 0, 0, 100, NULL);
    cr_assert_eq(of_b->n_sagas, 2);
    cr_assert(listed(of_b, mb, ids[2]) && listed(of_b, mb, ids[3]));

    Loyalty__V1__GatewayListSagasRequest bad = LOYALTY__V1__GATEWAY_LIST_SAGAS_REQUEST__INIT;
    bad.merchant_id = "not a merchant!";
    assert_status(gw("ListSagas", &bad, NULL), STATUS_INVALID_ARGUMENT, "INVALID_MERCHANT_ID");
    bad.merchant_id = "";
    bad.older_than_s = -1;
    assert_status(gw("ListSagas", &bad, NULL), STATUS_INVALID_ARGUMENT, "INVALID_OLDER_THAN_S");
}

/* ---- saga counters ---- */

static char *scrape_gateway(void) {
    char *body = NULL;
    int code = harness_http_get(procs[SVC_GATEWAY].metrics_port, "/metrics", &body);
    cr_assert_eq(code, 200, "GET /metrics of the gateway answered %d", code);
    return body;
}

/* The sum of every sample whose line starts with `prefix` (a family and the start of its
 * labels, e.g. `loyalty_saga_step_seconds_count{`). */
static double metric_sum(const char *text, const char *prefix) {
    double sum = 0;
    size_t n = strlen(prefix);
    for (const char *p = text; p != NULL && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, prefix, n) == 0) {
            const char *space = strchr(p, ' ');
            const char *eol = strchr(p, '\n');
            if (space != NULL && (eol == NULL || space < eol)) {
                sum += strtod(space + 1, NULL);
            }
        }
    }
    return sum;
}

#define FINISHED(state) "loyalty_sagas_finished_total{saga_type=\"checkout\",state=\"" state "\"}"
#define GW_HANDLED(method)                                                                         \
    "grpc_server_handled_total{grpc_type=\"unary\",grpc_service=\"loyalty.v1.Gateway\","           \
    "grpc_method=\"" method "\",grpc_code=\"OK\"}"

Test(gateway_observe, checkouts_move_the_saga_counters_by_exactly_one_each) {
    /* Goal: on the gateway's /metrics, a Checkout() moves
     * loyalty_sagas_finished_total{checkout,completed} by one, a checkout cancelled by the
     * storefront and one expired by the recovery job move {checkout,cancelled} by one each
     * (once per saga, whichever executor finished it), nothing moves needs_attention, and the
     * RPC, recovery and step series move with them. */
    gw_extra_env[0] = "CHECKOUT_TTL_S=2"; /* a RESERVED checkout expires after 2 s */
    stack_start();
    shop_t s;
    open_shop(&s, "count");
    const char *b = new_buyer(&s, 5000, 3000);
    char *before = scrape_gateway();

    /* One checkout in one call: completed. */
    Loyalty__V1__GatewayCheckoutRequest r = LOYALTY__V1__GATEWAY_CHECKOUT_REQUEST__INIT;
    r.merchant_id = (char *)s.m;
    r.idempotency_key = (char *)harness_key();
    r.order_id = "order-counted";
    r.member_id = (char *)b;
    r.cart = shirt_cart();
    r.payment = pay(1000, 1000);
    r.payment_ref = "psp-counted";
    Loyalty__V1__GatewayCheckoutResponse *resp = NULL;
    assert_ok(gw("Checkout", &r, &resp));
    cr_assert_eq(resp->checkout->state, S_COMPLETED, "state %d", resp->checkout->state);
    assert_ok(gw("Checkout", &r, &resp)); /* the same request again: answered, not counted */

    /* Begun, then cancelled by the storefront. */
    Loyalty__V1__GatewayCheckout *co = NULL;
    assert_ok(begin_checkout(s.m, NULL, "order-cancelled", b, shirt_cart(), pay(0, 0), &co));
    Loyalty__V1__GatewayCancelCheckoutRequest c =
        LOYALTY__V1__GATEWAY_CANCEL_CHECKOUT_REQUEST__INIT;
    c.merchant_id = (char *)s.m;
    c.checkout_id = co->checkout_id;
    Loyalty__V1__GatewayCancelCheckoutResponse *cresp = NULL;
    status_t cancel = gw("CancelCheckout", &c, &cresp);
    for (int i = 0; i < 100 && cancel.code == STATUS_ABORTED; i++) {
        sleep_ms(100); /* the recovery job was expiring it at that moment (a slow machine) */
        cancel = gw("CancelCheckout", &c, &cresp);
    }
    assert_ok(cancel);
    cr_assert_eq(cresp->checkout->state, S_CANCELLED);
    assert_ok(gw("CancelCheckout", &c, &cresp)); /* again: the same answer, not counted */

    /* Begun and left: the recovery job expires it. */
    assert_ok(begin_checkout(s.m, NULL, "order-expired", b, shirt_cart(), pay(0, 0), &co));
    Loyalty__V1__GatewaySaga *saga = wait_saga_final(s.m, co->checkout_id, 60);
    cr_assert_eq(saga->state, S_CANCELLED, "expired by the recovery job, state %d", saga->state);
    cr_assert_str_eq(saga->reason, "EXPIRED");

    /* The job counts after its write commits, so GetSaga may see CANCELLED a moment before the
     * counter moves: poll for it (generously), then check every delta exactly. */
    double cancelled_before = harness_metric(before, FINISHED("cancelled"));
    char *after = NULL;
    for (int i = 0; i < 600; i++) {
        free(after);
        after = scrape_gateway();
        if (harness_metric(after, FINISHED("cancelled")) - cancelled_before >= 2) {
            break;
        }
        sleep_ms(50);
    }
    struct {
        const char *series;
        double delta;
    } want[] = {
        {FINISHED("completed"), 1},       {FINISHED("cancelled"), 2},
        {FINISHED("needs_attention"), 0}, {GW_HANDLED("Checkout"), 2},
        {GW_HANDLED("BeginCheckout"), 2}, {GW_HANDLED("CancelCheckout"), 2},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        double d = harness_metric(after, want[i].series) - harness_metric(before, want[i].series);
        cr_assert_eq(d, want[i].delta, "%s moved by %g, want %g\n%s", want[i].series, d,
                     want[i].delta, after);
    }
    cr_assert(harness_metric(after, "loyalty_saga_recovery_resumed_total") -
                      harness_metric(before, "loyalty_saga_recovery_resumed_total") >=
                  1,
              "the expiry was the recovery job's\n%s", after);
    cr_assert(metric_sum(after, "loyalty_saga_step_seconds_count{") -
                      metric_sum(before, "loyalty_saga_step_seconds_count{") >=
                  3,
              "the checkouts' steps were timed\n%s", after);
    cr_assert(metric_sum(after, "grpc_client_handled_total{grpc_type=\"unary\","
                                "grpc_service=\"loyalty.v1.PointsService\"") -
                      metric_sum(before, "grpc_client_handled_total{grpc_type=\"unary\","
                                         "grpc_service=\"loyalty.v1.PointsService\"") >=
                  1,
              "the gateway's calls to points-svc were counted\n%s", after);
    free(before);
    free(after);
}
