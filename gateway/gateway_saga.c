/* gateway_saga.c -- the saga engine: logged steps with in-request retries and failpoints, the
 * lease, the state driver and the recovery pass. */
#include "gateway_saga.h"

#include "gateway_store.h"
#include "log.h"
#include "metrics.h"
#include "near_cache.h"
#include "pb.h"

#include <assert.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- executors ---- */

/* Metrics of the sagas (docs/architecture.md#metrics); step names come from the flows' code. */
static metrics_family_t saga_step_seconds =
    METRICS_HISTOGRAM("loyalty_saga_step_seconds",
                      "Time (seconds) of one attempt of a saga step's participant calls, by step.",
                      metrics_latency_buckets_s, "step");
static metrics_family_t saga_recovery_runs =
    METRICS_COUNTER("loyalty_saga_recovery_runs_total", "Passes of the saga recovery job.");
static metrics_family_t saga_recovery_resumed = METRICS_COUNTER(
    "loyalty_saga_recovery_resumed_total", "Sagas the recovery job claimed and drove on.");

static metrics_family_t sagas_in_progress =
    METRICS_GAUGE("loyalty_sagas_in_progress",
                  "Unfinished sagas of every merchant by type and state.", "saga_type", "state");
static metrics_family_t sagas_needs_attention = METRICS_GAUGE(
    "loyalty_sagas_needs_attention", "Sagas stopped in NEEDS_ATTENTION, waiting for an operator.");
static metrics_family_t sagas_finished = METRICS_COUNTER(
    "loyalty_sagas_finished_total",
    "Sagas that reached a terminal state (completed, cancelled, needs_attention), by type and "
    "state; a saga RetrySaga resumes from needs_attention counts again when it ends.",
    "saga_type", "state");
static metrics_family_t sagas_oldest_age =
    METRICS_GAUGE("loyalty_sagas_oldest_in_progress_age_seconds",
                  "Age (seconds) of the oldest unfinished saga by type; 0 when none.", "saga_type");

/* Label values of the proto's kinds and unfinished states (GW_KIND_*, GW_BEGINNING...). */
_Static_assert(GW_KIND_REFERRAL_RELEASE == GW_KIND_MAX, "GW_KIND_MAX is the last kind");
static const char *const saga_type_names[GW_KIND_MAX + 1] = {
    "unspecified", "registration",  "checkout", "refund",
    "top_up",      "redeem_reward", "check_in", "referral_release"};

static const char *saga_state_name(int state) {
    switch (state) {
    case GW_BEGINNING:
        return "beginning";
    case GW_RESERVED:
        return "reserved";
    case GW_COMPLETING:
        return "completing";
    case GW_CANCELLING:
        return "cancelling";
    default:
        return NULL;
    }
}

/* The label value of a terminal state, NULL for the others. */
static const char *saga_final_state_name(int state) {
    switch (state) {
    case GW_COMPLETED:
        return "completed";
    case GW_CANCELLED:
        return "cancelled";
    case GW_NEEDS_ATTENTION:
        return "needs_attention";
    default:
        return NULL;
    }
}

void gw_report_sagas(rpc_ctx_t *ctx) {
    if (!metrics_enabled()) {
        return;
    }
    PGresult *r = NULL;
    status_t st = gw_store_saga_census(ctx->db, &r);
    if (!status_is_ok(&st)) {
        return; /* the gauges keep their last values; loyalty_db_up says why */
    }
    static const int open_states[] = {GW_BEGINNING, GW_RESERVED, GW_COMPLETING, GW_CANCELLING};
    _Static_assert(sizeof open_states / sizeof *open_states == 4, "a count per open state");
    double counts[GW_KIND_MAX + 1][4] = {{0}};
    double oldest[GW_KIND_MAX + 1] = {0};
    double attention = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        int64_t kind = db_get_int(r, i, 0), state = db_get_int(r, i, 1);
        double n = (double)db_get_int(r, i, 2);
        double age = strtod(db_get_str(r, i, 3), NULL);
        if (state == GW_NEEDS_ATTENTION) {
            attention += n;
            continue;
        }
        if (kind < 1 || kind > GW_KIND_MAX) {
            continue;
        }
        for (int k = 0; k < 4; k++) {
            if (open_states[k] == state) {
                counts[kind][k] = n;
            }
        }
        oldest[kind] = age > oldest[kind] ? age : oldest[kind];
    }
    PQclear(r);
    for (int kind = 1; kind <= GW_KIND_MAX; kind++) { /* every series, 0 included */
        for (int k = 0; k < 4; k++) {
            metrics_set(&sagas_in_progress,
                        (const char *[]){saga_type_names[kind], saga_state_name(open_states[k])},
                        counts[kind][k]);
        }
        metrics_set(&sagas_oldest_age, (const char *[]){saga_type_names[kind]}, oldest[kind]);
        static const int final_states[] = {GW_COMPLETED, GW_CANCELLED, GW_NEEDS_ATTENTION};
        for (int k = 0; k < 3; k++) { /* the counters too, at 0 until a saga finishes */
            (void)metrics_series(
                &sagas_finished,
                (const char *[]){saga_type_names[kind], saga_final_state_name(final_states[k])});
        }
    }
    metrics_set(&sagas_needs_attention, NULL, attention);
}

/* Counts a saga that gw_drive moved from an unfinished state into a terminal one: called only
 * once the terminal state is written under the lease, which one executor holds at a time, so
 * each saga counts once however it got there (a request or the recovery job). */
static void saga_count_finished(const gw_saga_t *x, int state_before) {
    const char *state = saga_final_state_name(x->state);
    if (state == NULL || saga_final_state_name(state_before) != NULL || x->kind < 1 ||
        x->kind > GW_KIND_MAX) {
        return;
    }
    metrics_inc(&sagas_finished, (const char *[]){saga_type_names[x->kind], state});
}

static double saga_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *id_prefix(int kind) {
    switch (kind) {
    case GW_KIND_REGISTRATION:
        return "reg";
    case GW_KIND_CHECKOUT:
        return "chk";
    case GW_KIND_REFUND:
        return "rfd";
    case GW_KIND_TOP_UP:
        return "top";
    case GW_KIND_REDEEM:
        return "rdm";
    case GW_KIND_CHECK_IN:
        return "cin";
    default:
        return "rel";
    }
}

/* A lease token is "<instance>-<sequence number>": room for the instance and any uint64. */
_Static_assert(sizeof(((gw_svc_t *)0)->instance) + 1 + 20 <= sizeof(((gw_saga_t *)0)->lease_token),
               "a lease token holds its instance and sequence number");

static void new_lease_token(gw_saga_t *x) {
    uint64_t n = atomic_fetch_add(&x->svc->lease_seq, 1);
    snprintf(x->lease_token, sizeof x->lease_token, "%s-%llu", x->svc->instance,
             (unsigned long long)n);
}

unsigned char *gw_hash_input(arena_t *a, const char *method, const ProtobufCMessage *request,
                             size_t *len) {
    size_t req_len = 0;
    unsigned char *req = pb_pack_arena(a, request, &req_len);
    size_t m = strlen(method);
    unsigned char *out = arena_alloc(a, m + 1 + req_len + 1);
    memcpy(out, method, m + 1);
    memcpy(out + m + 1, req, req_len);
    *len = m + 1 + req_len;
    return out;
}

void gw_saga_init(gw_saga_t *x, rpc_ctx_t *ctx, gw_svc_t *svc, const char *merchant_id, int kind,
                  const char *idempotency_key, const char *order_id, const char *member_id,
                  const char *method, ProtobufCMessage *request) {
    memset(x, 0, sizeof *x);
    x->ctx = ctx;
    x->a = ctx->arena;
    x->svc = svc;
    snprintf(x->merchant_id, sizeof x->merchant_id, "%s", merchant_id);
    id_generate(id_prefix(kind), x->id);
    x->kind = kind;
    x->state = GW_BEGINNING;
    x->idempotency_key = arena_strdup(x->a, idempotency_key);
    x->order_id = arena_strdup(x->a, order_id ? order_id : "");
    x->member_id = arena_strdup(x->a, member_id ? member_id : "");
    x->request = request;
    x->request_bytes = pb_pack_arena(x->a, request, &x->request_len);
    x->hash_input = gw_hash_input(x->a, method, request, &x->hash_len);
    x->context = pb_new(x->a, &loyalty__v1__gateway_saga_context__descriptor);
    /* Checkouts, refunds and registrations never show the points balance their calls answer. */
    x->context->points_omit_expiring = true;
    x->context->points_batched = true;
    x->context->points_hold_chooses = true;
    x->context->wallet_omit_expiring = true;
    x->error = status_ok();
    x->created_at = ctx->now_s;
    x->in_request = true;
    x->created_here = true;
    x->leased = true; /* the insert takes the lease */
    new_lease_token(x);
}

static void saga_reset(gw_saga_t *x, rpc_ctx_t *ctx, gw_svc_t *svc, const char *merchant_id_in,
                       const char *id_in) {
    /* The arguments may point into x itself (reopening the same saga). */
    char merchant_id[sizeof x->merchant_id], id[sizeof x->id];
    snprintf(merchant_id, sizeof merchant_id, "%s", merchant_id_in);
    snprintf(id, sizeof id, "%s", id_in);
    memset(x, 0, sizeof *x);
    x->ctx = ctx;
    x->a = ctx->arena;
    x->svc = svc;
    snprintf(x->merchant_id, sizeof x->merchant_id, "%s", merchant_id);
    snprintf(x->id, sizeof x->id, "%s", id);
    x->in_request = true;
}

ProtobufCMessage *gw_saga_request(gw_saga_t *x) {
    if (x->request == NULL) {
        const gw_flows_t *f = gw_flows_of(x->kind);
        if (f != NULL && f->request_desc != NULL) {
            x->request = pb_unpack_arena(x->a, f->request_desc, x->request_bytes, x->request_len);
        }
    }
    return x->request;
}

status_t gw_saga_open(gw_saga_t *x, rpc_ctx_t *ctx, gw_svc_t *svc, const char *merchant_id,
                      const char *id) {
    saga_reset(x, ctx, svc, merchant_id, id);
    status_t st = gw_store_load(ctx->db, x);
    if (status_is_ok(&st) && gw_saga_request(x) == NULL) {
        st = status_make(STATUS_DATA_LOSS, REASON_CORRUPT_SAGA, "saga %s has an unreadable request",
                         id);
    }
    return st;
}

/* Claims and reads the saga x names (merchant_id and id set, a fresh lease token); x->leased
 * says whether the lease was taken. */
static status_t claim_and_load(gw_saga_t *x) {
    bool claimed = false;
    status_t st = gw_store_claim_load(x->ctx->db, x, x->lease_token, x->svc->lease_s, &claimed);
    if (status_is_ok(&st) && gw_saga_request(x) == NULL) {
        st = status_make(STATUS_DATA_LOSS, REASON_CORRUPT_SAGA, "saga %s has an unreadable request",
                         x->id);
    }
    x->leased = claimed && status_is_ok(&st);
    return st;
}

status_t gw_saga_open_claimed(gw_saga_t *x, rpc_ctx_t *ctx, gw_svc_t *svc, const char *merchant_id,
                              const char *id) {
    saga_reset(x, ctx, svc, merchant_id, id);
    new_lease_token(x);
    bool lease_free = false;
    status_t st = gw_store_load_claimable(ctx->db, x, &lease_free);
    if (status_is_ok(&st) && gw_saga_request(x) == NULL) {
        st = status_make(STATUS_DATA_LOSS, REASON_CORRUPT_SAGA, "saga %s has an unreadable request",
                         id);
    }
    x->leased = x->claim_pending = lease_free && status_is_ok(&st);
    return st;
}

status_t gw_saga_claim(gw_saga_t *x) {
    /* Reload under the lease: the state may have moved since it was read. */
    bool in_request = x->in_request, auto_complete = x->auto_complete;
    saga_reset(x, x->ctx, x->svc, x->merchant_id, x->id);
    x->in_request = in_request;
    x->auto_complete = auto_complete;
    new_lease_token(x);
    status_t st = claim_and_load(x);
    if (status_is_ok(&st) && !x->leased) {
        return status_make(STATUS_ABORTED, REASON_SAGA_IN_PROGRESS,
                           "saga %s is being driven by another request; retry later", x->id);
    }
    return st;
}

char *gw_step_key(gw_saga_t *x, const char *name) {
    return arena_printf(x->a, "%s:%s", x->id, name);
}

void gw_call_init(gw_call_t *c, rpc_channel_t *ch, const ProtobufCServiceDescriptor *service,
                  const char *method, ProtobufCMessage *request, const char *name_fmt, ...) {
    memset(c, 0, sizeof *c);
    va_list ap;
    va_start(ap, name_fmt);
    vsnprintf(c->name, sizeof c->name, name_fmt, ap);
    va_end(ap);
    c->direction = GW_FORWARD;
    c->ch = ch;
    c->service = service;
    c->method = method;
    c->request = request;
    /* Not OK until a call or the log answers: a flow that stops before running the call (the log
     * could not be written) must never read a response that is not there. */
    c->status =
        status_make(STATUS_UNAVAILABLE, REASON_STEP_NOT_RUN, "step %s was not run", c->name);
}

gw_step_t *gw_find_step(gw_saga_t *x, const char *name) {
    for (int i = 0; i < x->n_steps; i++) {
        if (strcmp(x->steps[i].name, name) == 0) {
            return &x->steps[i];
        }
    }
    return NULL;
}

static const ProtobufCMessageDescriptor *output_of(const gw_call_t *c) {
    const ProtobufCMethodDescriptor *md =
        protobuf_c_service_descriptor_get_method_by_name(c->service, c->method);
    assert(md != NULL);
    return md->output;
}

ProtobufCMessage *gw_step_response(gw_saga_t *x, const char *name,
                                   const ProtobufCMessageDescriptor *desc) {
    gw_step_t *s = gw_find_step(x, name);
    if (s == NULL || s->state != GW_DONE) {
        return NULL;
    }
    return pb_unpack_arena(x->a, desc, s->response, s->response_len);
}

/* A new step record; NULL when the saga already has GW_STEPS_MAX (the flows stay well below:
 * a checkout with every product line has about 40). */
static gw_step_t *add_step(gw_saga_t *x, const char *name, int direction) {
    if (x->n_steps >= GW_STEPS_MAX) {
        log_msg(LOG_ERROR, "saga %s: more than %d steps", x->id, GW_STEPS_MAX);
        return NULL;
    }
    gw_step_t *s = &x->steps[x->n_steps];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    int32_t seq = 0;
    for (int i = 0; i < x->n_steps; i++) {
        seq = x->steps[i].seq > seq ? x->steps[i].seq : seq;
    }
    s->seq = seq + 1;
    s->direction = direction;
    s->state = GW_STARTED;
    s->error = status_ok();
    x->n_steps++;
    assert(s->seq > 0 && x->n_steps <= GW_STEPS_MAX);
    return s;
}

/* ---- failpoints (test only) ---- */

static void failpoint(gw_saga_t *x, gw_fail_when_t when, const char *step) {
    if (!gw_failpoint_matches(&x->svc->failpoint, when, step)) {
        return;
    }
    static const char *const names[] = {"", "before", "sent", "after"};
    _Static_assert(GW_FAIL_AFTER == 3, "a name per failpoint moment");
    log_msg(LOG_WARN, "GATEWAY_FAILPOINT %s:%s reached in saga %s: killing the process",
            names[when], step, x->id);
    kill(getpid(), SIGKILL);
    pause();
}

/* ---- writing the log ---- */

/* A write of the log: one that waited for the disk made the steps before it durable with it;
 * one that did not is itself still to be made durable. */
static status_t written(gw_saga_t *x, status_t st, bool waited) {
    if (status_is_ok(&st)) {
        x->durable_pending = !waited;
    }
    return st;
}

/* A write in the middle of a saga (the log ahead of steps, Begin's insert): with steps that
 * commit without waiting for the disk, it does not wait either. It only has to reach the disk
 * before anyone learns the outcome, and the saga's last write, which waits, takes it along:
 * the WAL is one sequence (docs/architecture.md "Durability of saga steps"). */
status_t gw_flush(gw_saga_t *x) {
    bool wait = !x->svc->steps_commit_async;
    if (!x->persisted) {
        return written(x, gw_store_insert(x->ctx->db, x, x->hash_input, x->hash_len, wait), wait);
    }
    if (!x->leased) {
        return status_make(STATUS_ABORTED, REASON_SAGA_IN_PROGRESS, "the saga's lease was lost");
    }
    return written(x, gw_store_update(x->ctx->db, x, true, wait), wait);
}

typedef struct release_arg {
    gw_saga_t *x;
    PGresult *written; /* the saga's update, sent with the COMMIT */
} release_arg_t;

/* The final flow's writes (the order, its event), then the saga's own update with the COMMIT:
 * one round trip. */
static status_t release_tx(db_t *db, void *arg) {
    release_arg_t *r = arg;
    status_t st = gw_flows_of(r->x->kind)->on_final(r->x, db);
    return status_is_ok(&st) ? gw_store_update_at_commit(db, r->x, &r->written) : st;
}

/* The saga's last write of this run, before the outcome is told: it waits for the disk. */
status_t gw_release(gw_saga_t *x) {
    if (!x->persisted || !x->leased) {
        return status_ok();
    }
    const gw_flows_t *f = gw_flows_of(x->kind);
    if (x->state == GW_COMPLETED && f->on_final != NULL) {
        release_arg_t r = {.x = x};
        status_t st = db_tx(x->ctx->db, release_tx, &r);
        st = gw_store_update_committed(x, st, r.written);
        PQclear(r.written);
        return written(x, st, true);
    }
    return written(x, gw_store_update(x->ctx->db, x, false, true), true);
}

status_t gw_saga_unclaim(gw_saga_t *x) {
    if (!x->persisted || !x->leased) {
        return status_ok();
    }
    x->leased = false;
    if (x->claim_pending) { /* never taken: nothing to give back */
        x->claim_pending = false;
        return status_ok();
    }
    return gw_store_unclaim(x->ctx->db, x->merchant_id, x->id, x->lease_token);
}

/* The saga's life (docs/architecture.md#sagas): what may follow what in memory. RetrySaga moves
 * NEEDS_ATTENTION back to COMPLETING or CANCELLING (in SQL, not here); COMPLETED and CANCELLED
 * are final. */
static bool transition_allowed(int from, int to) {
    if (from == to) {
        return true;
    }
    switch (from) {
    case GW_BEGINNING:
        return to == GW_RESERVED || to == GW_COMPLETING || to == GW_COMPLETED ||
               to == GW_CANCELLING || to == GW_CANCELLED;
    case GW_RESERVED:
        return to == GW_COMPLETING || to == GW_CANCELLING || to == GW_CANCELLED;
    case GW_COMPLETING:
        return to == GW_COMPLETED || to == GW_NEEDS_ATTENTION;
    case GW_CANCELLING:
        return to == GW_CANCELLED || to == GW_NEEDS_ATTENTION;
    case GW_NEEDS_ATTENTION:
        return to == GW_COMPLETING || to == GW_CANCELLING;
    default:
        return false; /* COMPLETED, CANCELLED: final */
    }
}

void gw_saga_set_state(gw_saga_t *x, int state) {
    assert(transition_allowed(x->state, state));
    x->state = state;
}

void gw_set_failure(gw_saga_t *x, int state, const status_t *error) {
    /* A failure is recorded with why, and only into a state that answers with it. */
    assert(error->code != STATUS_OK);
    assert(state == GW_CANCELLING || state == GW_CANCELLED || state == GW_NEEDS_ATTENTION);
    gw_saga_set_state(x, state);
    x->error = *error;
    snprintf(x->reason, sizeof x->reason, "%s",
             error->reason[0] ? error->reason : status_code_name(error->code));
}

status_t gw_saga_error(const gw_saga_t *x) {
    if (x->error.code != STATUS_OK) {
        return x->error;
    }
    return status_make_relayed(STATUS_INTERNAL,
                               x->reason[0] ? x->reason : reason_name(REASON_SAGA_FAILED),
                               "the saga ended without a recorded error");
}

/* ---- steps ---- */

static void sleep_ms(int64_t ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static int severity(const status_t *st) {
    if (status_is_ok(st)) {
        return 0;
    }
    /* not an error: a flow run in resolve mode reached a step that was never started */
    if (strcmp(st->reason, reason_name(REASON_STEP_NOT_STARTED)) == 0) {
        return 1;
    }
    switch (gw_classify(st)) {
    case GW_ERR_TRANSIENT:
        return 2;
    case GW_ERR_LIMITED:
        return 3;
    default:
        return 4;
    }
}

static status_t not_started(const char *name) {
    return status_make(STATUS_FAILED_PRECONDITION, REASON_STEP_NOT_STARTED,
                       "step %s was never started", name);
}

/* A step's outcome from the log, without calling; false when it must be run. */
static bool answer_from_log(gw_saga_t *x, gw_call_t *c, gw_step_t *rec) {
    if (rec != NULL && rec->state == GW_DONE) {
        c->response = pb_unpack_arena(x->a, output_of(c), rec->response, rec->response_len);
        c->status = c->response ? status_ok()
                                : status_make(STATUS_DATA_LOSS, REASON_CORRUPT_STEP,
                                              "step %s has an unreadable response", c->name);
        return true;
    }
    if (rec != NULL && rec->state == GW_FAILED) {
        c->status = rec->error;
        return true;
    }
    if (rec == NULL && x->resolve) {
        c->status = not_started(c->name);
        return true;
    }
    return false;
}

/* Records one call's result in its step; returns true when the step is finished. */
static bool record_result(gw_saga_t *x, gw_call_t *c, gw_step_t *rec) {
    if (status_is_ok(&c->status)) {
        rec->state = GW_DONE;
        rec->response = pb_pack_arena(x->a, c->response, &rec->response_len);
        rec->error = status_ok();
        return true;
    }
    rec->error = c->status;
    gw_error_class_t cls = gw_classify(&c->status);
    if (cls == GW_ERR_PERMANENT ||
        (cls == GW_ERR_LIMITED && rec->attempts >= GW_LIMITED_ATTEMPTS_MAX)) {
        rec->state = GW_FAILED;
        return true;
    }
    return false;
}

/* Calls wait for their service to be reachable until their deadline: after a timeout, trying
 * again within the same request only makes the caller wait longer (the recovery job or the
 * caller's retry takes it from here). */
static bool timed_out(const gw_call_t *calls, int n) {
    for (int i = 0; i < n; i++) {
        if (calls[i].status.code == STATUS_DEADLINE_EXCEEDED) {
            return true;
        }
    }
    return false;
}

/* Every call still to run gets `why` (the reason the group stops before calling it): its status
 * then never claims a response it does not have. Returns `why`. */
static status_t stop_pending(gw_call_t *calls, const bool *run, int n, status_t why) {
    assert(!status_is_ok(&why));
    for (int i = 0; i < n; i++) {
        if (run[i]) {
            calls[i].status = why;
            calls[i].response = NULL;
        }
    }
    return why;
}

/* What must hold of a group once it ran: a call reads OK only with a response to read. */
static void assert_answered(const gw_call_t *calls, int n) {
    for (int i = 0; i < n; i++) {
        assert(!status_is_ok(&calls[i].status) || calls[i].response != NULL);
    }
}

/* The steps' calls say that the saga's next write, on our PostgreSQL cluster, makes them
 * durable (RPC_DURABLE_WITH_HEADER): a participant on the same cluster then commits without
 * waiting for the disk. Nothing is said when the cluster is not known (yet). */
static void step_call_opts(gw_saga_t *x, rpc_call_opts_t *opts) {
    if (!x->svc->steps_commit_async) {
        return;
    }
    const char *cluster = db_cluster_id(x->ctx->db);
    if (cluster[0] == '\0') {
        return;
    }
    opts->extra_keys[0] = RPC_DURABLE_WITH_HEADER;
    opts->extra_values[0] = cluster;
    opts->extra_count = 1;
    x->durable_pending = true;
}

status_t gw_steps(gw_saga_t *x, gw_call_t *calls, int n) {
    assert(n >= 0 && n <= GW_GROUP_MAX);
    for (int i = 0; i < n; i++) { /* steps change something: reads go through gw_read */
        assert(calls[i].direction == GW_FORWARD || calls[i].direction == GW_COMPENSATE);
    }
    gw_step_t *rec[GW_GROUP_MAX];
    bool run[GW_GROUP_MAX];
    int to_run = 0;
    for (int i = 0; i < n; i++) {
        rec[i] = gw_find_step(x, calls[i].name);
        run[i] = !answer_from_log(x, &calls[i], rec[i]);
        /* A step run without a STARTED record may have run as early as the saga began. */
        int64_t started_at = rec[i] != NULL && rec[i]->started_at > 0 ? rec[i]->started_at
                             : calls[i].rerun_safe                    ? x->created_at
                                                                      : 0;
        if (run[i] && started_at > 0 && x->ctx->now_s - started_at > GW_STEP_REPLAY_MAX_S) {
            /* Participants forget idempotency keys after 30 days: calling again could apply
             * twice, so a step this old is left to an operator. */
            rec[i]->state = GW_FAILED;
            rec[i]->error = calls[i].status =
                status_make(STATUS_FAILED_PRECONDITION, REASON_STEP_TOO_OLD,
                            "step %s started too long ago to be called again", calls[i].name);
            run[i] = false;
        }
        to_run += run[i];
    }
    for (int attempt = 1; to_run > 0; attempt++) {
        for (int i = 0; i < n; i++) {
            if (run[i]) {
                if (rec[i] == NULL) {
                    rec[i] = add_step(x, calls[i].name, calls[i].direction);
                    if (rec[i] == NULL) {
                        return stop_pending(calls, run, n,
                                            status_make(STATUS_INTERNAL, REASON_TOO_MANY_STEPS,
                                                        "the saga has too many steps"));
                    }
                }
                rec[i]->attempts++;
            }
        }
        /* STARTED is durable before any call, unless every call is rerun_safe or
         * undone_by_reference in a saga that is already written (and whose lease is taken). */
        bool write_ahead = !x->persisted || x->claim_pending;
        for (int i = 0; i < n; i++) {
            write_ahead |= run[i] && !calls[i].rerun_safe && !calls[i].undone_by_reference;
        }
        status_t st = write_ahead ? gw_flush(x) : status_ok();
        if (!status_is_ok(&st)) {
            return stop_pending(calls, run, n, st);
        }
        rpc_call_spec_t specs[GW_GROUP_MAX];
        int idx[GW_GROUP_MAX];
        int m = 0;
        for (int i = 0; i < n; i++) {
            if (run[i]) {
                failpoint(x, GW_FAIL_BEFORE, calls[i].name);
                /* Every step is a mutating call with its own key: it may share a batch with
                 * other sagas' steps (batch.proto), their locks taken in member order. */
                specs[m] = (rpc_call_spec_t){.channel = calls[i].ch,
                                             .service = calls[i].service,
                                             .method = calls[i].method,
                                             .request = calls[i].request,
                                             .batch = true,
                                             .lock_key = x->member_id};
                idx[m++] = i;
            }
        }
        rpc_call_opts_t opts = {0};
        step_call_opts(x, &opts);
        double calls_start_s = saga_now_s();
        rpc_call_many(specs, (size_t)m, x->a, &opts);
        double calls_s = saga_now_s() - calls_start_s;
        for (int k = 0; k < m; k++) { /* one group's calls run together: the same time each */
            metrics_observe(&saga_step_seconds, (const char *[]){calls[idx[k]].name}, calls_s);
        }
        bool flush_after = false;
        for (int k = 0; k < m; k++) {
            gw_call_t *c = &calls[idx[k]];
            c->response = specs[k].response;
            c->status = specs[k].status;
            failpoint(x, GW_FAIL_SENT, c->name);
            if (record_result(x, c, rec[idx[k]])) {
                run[idx[k]] = false;
                to_run--;
                flush_after |= gw_failpoint_matches(&x->svc->failpoint, GW_FAIL_AFTER, c->name) &&
                               status_is_ok(&c->status);
            } else {
                log_msg(LOG_WARN, "saga %s step %s attempt %d: %s %s", x->id, c->name,
                        (int)rec[idx[k]]->attempts, status_code_name(c->status.code),
                        c->status.message);
            }
        }
        if (flush_after) {
            st = gw_flush(x);
            for (int k = 0; k < m && status_is_ok(&st); k++) {
                if (status_is_ok(&calls[idx[k]].status)) {
                    failpoint(x, GW_FAIL_AFTER, calls[idx[k]].name);
                }
            }
        }
        if (to_run == 0 || attempt >= GW_TRANSIENT_ATTEMPTS_IN_REQUEST ||
            rpc_ctx_remaining_ms(x->ctx) <= gw_retry_delay_ms(attempt) || timed_out(calls, n)) {
            break;
        }
        sleep_ms(gw_retry_delay_ms(attempt));
    }
    status_t worst = status_ok();
    int worst_sev = 0;
    for (int i = 0; i < n; i++) {
        bool failed = rec[i] != NULL && rec[i]->state == GW_FAILED;
        if (calls[i].tolerate_refusal && failed) {
            continue;
        }
        /* A step that ended FAILED is final whatever its code (retries exhausted). */
        int sev = failed ? 4 : severity(&calls[i].status);
        if (sev > worst_sev) {
            worst = calls[i].status;
            worst_sev = sev;
        }
    }
    if (worst_sev == 4) {
        x->failed_step = true;
    }
    assert_answered(calls, n);
    return worst;
}

int gw_group_room(const gw_group_t *g) {
    int max = g->max > 0 ? g->max : GW_GROUP_MAX;
    assert(max <= GW_GROUP_CALLS_MAX);
    return max - g->n;
}

gw_call_t *gw_group_add(gw_group_t *g) {
    if (gw_group_room(g) <= 0) {
        return NULL;
    }
    gw_call_t *c = &g->calls[g->n++];
    memset(c, 0, sizeof *c);
    return c;
}

status_t gw_group_run(gw_saga_t *x, gw_group_t *g) {
    status_t st = status_ok();
    for (int i = 0; i < g->n || i == 0; i += GW_GROUP_MAX) {
        int k = g->n - i < GW_GROUP_MAX ? g->n - i : GW_GROUP_MAX;
        st = gw_steps(x, g->calls + i, k);
        if (!status_is_ok(&st)) {
            return st;
        }
    }
    return st;
}

status_t gw_group_read(gw_saga_t *x, gw_group_t *g) {
    assert(g->n <= GW_GROUP_MAX);
    return gw_reads(x, g->calls, g->n);
}

const ProtobufCMessage *gw_answer(const gw_call_t *c) {
    return c != NULL && status_is_ok(&c->status) ? c->response : NULL;
}

status_t gw_step(gw_saga_t *x, gw_call_t *call) {
    return gw_steps(x, call, 1);
}

status_t gw_reads(gw_saga_t *x, gw_call_t *calls, int n) {
    assert(n >= 0 && n <= GW_GROUP_MAX);
    rpc_call_spec_t specs[GW_GROUP_MAX];
    int idx[GW_GROUP_MAX];
    int m = 0;
    status_t worst = status_ok();
    for (int i = 0; i < n; i++) {
        if (answer_from_log(x, &calls[i], gw_find_step(x, calls[i].name))) {
            if (severity(&calls[i].status) > severity(&worst)) {
                worst = calls[i].status;
            }
            continue;
        }
        specs[m] = (rpc_call_spec_t){.channel = calls[i].ch,
                                     .service = calls[i].service,
                                     .method = calls[i].method,
                                     .request = calls[i].request};
        idx[m++] = i;
    }
    if (m == 0) {
        return worst;
    }
    for (int attempt = 1;; attempt++) {
        rpc_call_many(specs, (size_t)m, x->a, NULL);
        bool retry = false;
        for (int k = 0; k < m; k++) {
            gw_call_t *c = &calls[idx[k]];
            c->status = specs[k].status;
            c->response = specs[k].response;
            retry |= !status_is_ok(&c->status) && gw_classify(&c->status) != GW_ERR_PERMANENT &&
                     c->status.code != STATUS_DEADLINE_EXCEEDED;
        }
        if (!retry || attempt >= GW_TRANSIENT_ATTEMPTS_IN_REQUEST ||
            rpc_ctx_remaining_ms(x->ctx) <= gw_retry_delay_ms(attempt)) {
            break;
        }
        sleep_ms(gw_retry_delay_ms(attempt));
    }
    for (int k = 0; k < m; k++) {
        gw_call_t *c = &calls[idx[k]];
        if (status_is_ok(&c->status)) {
            gw_step_t *s = add_step(x, c->name, GW_READ);
            if (s == NULL) {
                return status_make(STATUS_INTERNAL, REASON_TOO_MANY_STEPS,
                                   "the saga has too many steps");
            }
            s->state = GW_DONE;
            s->attempts = 1;
            s->response = pb_pack_arena(x->a, c->response, &s->response_len);
        } else if (severity(&c->status) > severity(&worst)) {
            worst = c->status;
        }
    }
    return worst;
}

/* Logs a read's answer (packed) as a READ step, written with the next flush. */
static status_t log_read(gw_saga_t *x, const gw_call_t *c, int attempts, unsigned char *packed,
                         size_t packed_len) {
    gw_step_t *s = add_step(x, c->name, GW_READ);
    if (s == NULL) {
        return status_make(STATUS_INTERNAL, REASON_TOO_MANY_STEPS, "the saga has too many steps");
    }
    s->state = GW_DONE;
    s->attempts = attempts;
    s->response = packed;
    s->response_len = packed_len;
    return status_ok();
}

static status_t read_called(gw_saga_t *x, gw_call_t *c, const char *cache_key) {
    for (int attempt = 1;; attempt++) {
        uint64_t epoch = near_cache_epoch(); /* before the read: see near_cache_put */
        ProtobufCMessage *resp = NULL;
        c->status = rpc_call(c->ch, c->service, c->method, c->request, x->a, &resp, NULL);
        c->response = resp;
        if (status_is_ok(&c->status)) {
            size_t len = 0;
            unsigned char *packed = pb_pack_arena(x->a, resp, &len);
            if (cache_key != NULL) {
                near_cache_put(cache_key, packed, len, epoch, 0);
            }
            return log_read(x, c, attempt, packed, len);
        }
        if (gw_classify(&c->status) == GW_ERR_PERMANENT ||
            c->status.code == STATUS_DEADLINE_EXCEEDED ||
            attempt >= GW_TRANSIENT_ATTEMPTS_IN_REQUEST ||
            rpc_ctx_remaining_ms(x->ctx) <= gw_retry_delay_ms(attempt)) {
            return c->status;
        }
        sleep_ms(gw_retry_delay_ms(attempt));
    }
}

status_t gw_read(gw_saga_t *x, gw_call_t *c) {
    if (answer_from_log(x, c, gw_find_step(x, c->name))) {
        return c->status;
    }
    return read_called(x, c, NULL);
}

status_t gw_read_near(gw_saga_t *x, gw_call_t *c, const char *cache_key) {
    if (answer_from_log(x, c, gw_find_step(x, c->name))) {
        return c->status;
    }
    unsigned char *packed = NULL;
    size_t len = 0;
    if (near_cache_get(cache_key, x->a, &packed, &len)) {
        c->response = pb_unpack_arena(x->a, output_of(c), packed, len);
        if (c->response != NULL) {
            c->status = status_ok();
            return log_read(x, c, 0, packed, len);
        }
    }
    return read_called(x, c, cache_key);
}

/* ---- driving ---- */

const gw_flows_t *gw_flows_of(int kind) {
    switch (kind) {
    case GW_KIND_REGISTRATION:
        return &gw_registration_flows;
    case GW_KIND_CHECKOUT:
        return &gw_checkout_flows;
    case GW_KIND_REFUND:
        return &gw_refund_flows;
    case GW_KIND_TOP_UP:
        return &gw_top_up_flows;
    case GW_KIND_REDEEM:
        return &gw_redeem_flows;
    case GW_KIND_CHECK_IN:
        return &gw_check_in_flows;
    case GW_KIND_REFERRAL_RELEASE:
        return &gw_referral_release_flows;
    default:
        return NULL;
    }
}

static bool lease_lost(const status_t *st) {
    return st->code == STATUS_ABORTED && strcmp(st->reason, "SAGA_IN_PROGRESS") == 0;
}

/* The flow stopped on something retrying cannot fix. */
static bool is_refusal(const gw_saga_t *x, const status_t *st) {
    return x->failed_step || severity(st) == 4;
}

/* Unfinished after transient errors: due again with backoff. */
static void defer(gw_saga_t *x) {
    x->next_delay_s = gw_backoff_s(x->attempts > 0 ? x->attempts : 1);
}

static status_t drive_beginning(gw_saga_t *x, const gw_flows_t *f, bool *again) {
    assert(x->state == GW_BEGINNING);
    *again = false;
    if (!x->in_request && !f->recover_forward) {
        /* An interrupted Begin: resolve what was started, then compensate. */
        status_t why = status_make(STATUS_FAILED_PRECONDITION, REASON_INTERRUPTED,
                                   "the checkout was interrupted before it was reserved");
        gw_set_failure(x, f->compensate ? GW_CANCELLING : GW_CANCELLED, &why);
        *again = true;
        return status_ok();
    }
    x->failed_step = false;
    status_t st = f->begin ? f->begin(x) : status_ok();
    if (!x->persisted) {
        return st; /* nothing was written, so nothing was applied: the caller sees why */
    }
    if (status_is_ok(&st)) {
        x->error = status_ok();
        if (x->kind == GW_KIND_CHECKOUT && !x->auto_complete) {
            gw_saga_set_state(x, GW_RESERVED);
            x->next_delay_s = x->svc->checkout_ttl_s;
            return status_ok();
        }
        gw_saga_set_state(x, f->complete ? GW_COMPLETING : GW_COMPLETED);
        *again = x->state == GW_COMPLETING;
        return status_ok();
    }
    if (lease_lost(&st)) {
        return st;
    }
    if (is_refusal(x, &st)) {
        gw_set_failure(x, f->compensate ? GW_CANCELLING : GW_CANCELLED, &st);
        *again = x->state == GW_CANCELLING;
        return status_ok();
    }
    /* Transient: left BEGINNING for a client retry; the recovery job takes it over later. */
    x->next_delay_s = x->in_request && !f->recover_forward ? x->svc->begin_grace_s
                                                           : gw_backoff_s(x->attempts + 1);
    x->error = st;
    return status_ok();
}

static status_t drive_forward(gw_saga_t *x, status_t (*flow)(gw_saga_t *), int done_state) {
    assert((x->state == GW_COMPLETING && done_state == GW_COMPLETED) ||
           (x->state == GW_CANCELLING && done_state == GW_CANCELLED));
    x->failed_step = false;
    status_t st = flow ? flow(x) : status_ok();
    if (status_is_ok(&st)) {
        gw_saga_set_state(x, done_state);
        if (done_state == GW_COMPLETED) {
            x->error = status_ok();
            x->reason[0] = '\0';
        }
        return status_ok();
    }
    if (lease_lost(&st)) {
        return st;
    }
    if (is_refusal(x, &st)) {
        const log_field_t ids[] = {{"merchant_id", x->merchant_id}, {"saga_id", x->id}};
        log_msg_fields(LOG_ERROR, ids, 2, "saga %s of merchant %s needs attention: %s %s (%s)",
                       x->id, x->merchant_id, status_code_name(st.code), st.reason, st.message);
        gw_set_failure(x, GW_NEEDS_ATTENTION, &st);
        return status_ok();
    }
    defer(x);
    return status_ok();
}

static status_t drive_cancelling(gw_saga_t *x, const gw_flows_t *f) {
    assert(x->state == GW_CANCELLING);
    if (f->begin != NULL) {
        /* Resolve the steps of begin that were started but not logged as finished. */
        x->resolve = true;
        x->failed_step = false;
        status_t st = f->begin(x);
        x->resolve = false;
        if (lease_lost(&st)) {
            return st;
        }
        if (!x->failed_step && (severity(&st) == 2 || severity(&st) == 3)) {
            defer(x);
            return status_ok();
        }
    }
    status_t keep_error = x->error;
    char keep_reason[STATUS_REASON_MAX];
    memcpy(keep_reason, x->reason, sizeof keep_reason);
    status_t st = drive_forward(x, f->compensate, GW_CANCELLED);
    if (x->state == GW_CANCELLED) {
        x->error = keep_error; /* the cancelled saga answers with why it was cancelled */
        memcpy(x->reason, keep_reason, sizeof keep_reason);
    }
    return st;
}

static status_t drive(gw_saga_t *x);

/* Before anyone learns the outcome, the steps' changes are durable: the saga's last write
 * usually made them so; when no write followed them (a Begin refused before the saga was
 * written, a lease lost), this waits for their WAL. */
status_t gw_drive(gw_saga_t *x) {
    status_t st = drive(x);
    if (x->durable_pending && !db_in_tx(x->ctx->db)) {
        status_t d = db_wait_durable(x->ctx->db);
        if (status_is_ok(&d)) {
            x->durable_pending = false;
        } else if (status_is_ok(&st)) {
            st = d;
        }
    }
    return st;
}

static status_t drive(gw_saga_t *x) {
    const gw_flows_t *f = gw_flows_of(x->kind);
    assert(f != NULL);
    status_t st = status_ok();
    int state_before = x->state;
    x->next_delay_s = 0;
    for (int round = 0; round < 4 && status_is_ok(&st); round++) {
        bool again = false;
        switch (x->state) {
        case GW_BEGINNING:
            st = drive_beginning(x, f, &again);
            break;
        case GW_COMPLETING:
            st = drive_forward(x, f->complete, GW_COMPLETED);
            break;
        case GW_CANCELLING:
            st = drive_cancelling(x, f);
            break;
        default:
            break;
        }
        if (!again || !x->persisted) {
            break;
        }
    }
    /* A saga this run finished answers as it ended: COMPLETED without an error (a failure is
     * recorded with its error by gw_set_failure). */
    assert(x->state == state_before || x->state != GW_COMPLETED || x->error.code == STATUS_OK);
    if (lease_lost(&st) || !x->persisted) {
        return st;
    }
    bool writes = x->leased; /* gw_release writes nothing without the lease */
    status_t rel = gw_release(x);
    if (writes && status_is_ok(&rel)) {
        saga_count_finished(x, state_before);
    }
    return status_is_ok(&st) ? rel : st;
}

/* ---- views ---- */

Loyalty__V1__GatewayStep **gw_steps_view(gw_saga_t *x, size_t *n) {
    Loyalty__V1__GatewayStep **out = arena_alloc(x->a, (size_t)(x->n_steps + 1) * sizeof *out);
    for (int i = 0; i < x->n_steps; i++) {
        gw_step_t *s = &x->steps[i];
        Loyalty__V1__GatewayStep *v = pb_new(x->a, &loyalty__v1__gateway_step__descriptor);
        v->name = s->name;
        v->seq = s->seq;
        v->direction = (Loyalty__V1__GatewayStepDirection)s->direction;
        v->state = (Loyalty__V1__GatewayStepState)s->state;
        v->attempts = s->attempts;
        v->idempotency_key = s->direction == GW_READ ? "" : gw_step_key(x, s->name);
        if (s->error.code != STATUS_OK) {
            Loyalty__V1__GatewayError *e = pb_new(x->a, &loyalty__v1__gateway_error__descriptor);
            e->code = (char *)status_code_name(s->error.code);
            e->reason = s->error.reason;
            e->message = s->error.message;
            v->error = e;
        }
        v->started_at = s->started_at;
        v->finished_at = s->finished_at;
        out[i] = v;
    }
    *n = (size_t)x->n_steps;
    return out;
}

/* ---- recovery ---- */

/* Drives one claimed saga with its own arena (a recovery pass may drive many). */
static status_t recover_one(rpc_ctx_t *job_ctx, gw_svc_t *svc, const char *merchant_id,
                            const char *id, const char *token) {
    arena_t arena;
    arena_init(&arena);
    rpc_ctx_t sub = *job_ctx;
    sub.arena = &arena;
    rpc_ctx_t *ctx = &sub;
    gw_saga_t *x = arena_alloc(ctx->arena, sizeof *x);
    status_t st = gw_saga_open(x, ctx, svc, merchant_id, id);
    if (!status_is_ok(&st)) {
        arena_free(&arena);
        return st;
    }
    snprintf(x->lease_token, sizeof x->lease_token, "%s", token);
    x->leased = true;
    x->in_request = false;
    if (x->state == GW_RESERVED) {
        status_t why = status_make(STATUS_FAILED_PRECONDITION, REASON_EXPIRED,
                                   "the checkout was not completed in time");
        gw_set_failure(x, GW_CANCELLING, &why);
    }
    log_msg(LOG_INFO, "recovering saga %s (merchant %s, state %d, attempt %d)", x->id,
            x->merchant_id, x->state, (int)x->attempts);
    st = gw_drive(x);
    arena_free(&arena);
    return st;
}

status_t gw_recover_some(rpc_ctx_t *ctx, gw_svc_t *svc, int limit, int *driven) {
    *driven = 0;
    metrics_inc(&saga_recovery_runs, NULL);
    for (int i = 0; i < limit; i++) {
        char token[64];
        uint64_t n = atomic_fetch_add(&svc->lease_seq, 1);
        snprintf(token, sizeof token, "%s-%llu", svc->instance, (unsigned long long)n);
        char *merchant_id = NULL, *id = NULL;
        bool found = false;
        status_t st =
            gw_store_claim_due(ctx->db, ctx->arena, token, svc->lease_s, &merchant_id, &id, &found);
        if (!status_is_ok(&st)) {
            return st;
        }
        if (!found) {
            break;
        }
        char id_copy[ID_MAX + 8];
        snprintf(id_copy, sizeof id_copy, "%s", id);
        metrics_inc(&saga_recovery_resumed, NULL);
        st = recover_one(ctx, svc, merchant_id, id, token);
        if (!status_is_ok(&st)) {
            log_msg(LOG_WARN, "recovery of saga %s stopped: %s", id_copy, st.message);
        }
        (*driven)++;
    }
    return status_ok();
}
