/* test_referral_tree.c -- referral-svc's codes, share links and tree over real gRPC against
 * real PostgreSQL: stable case-insensitive codes, the attach rules and their reasons (self,
 * second referrer, cycles at any depth, referee with a downline, other merchant's code,
 * programme off), upline and downline with counts and paging, 50 parallel attaches of one
 * referee, merchant isolation. */
#include "referral_client.h"

#include "grpc/health/v1/health.pb-c.h"

#include <pthread.h>
#include <unistd.h>

static svc_proc_t svc;
static arena_t arena;
static rc_t C;

static void setup(void) {
    harness_init();
    arena_init(&arena);
}

static void teardown(void) {
    if (svc.pid > 0) {
        cr_expect_eq(harness_stop(&svc), 0, "referral-svc did not exit cleanly; see %s",
                     svc.log_path);
    }
    arena_free(&arena);
    harness_fini();
}

TestSuite(referral_tree, .init = setup, .fini = teardown, .timeout = 180);

/* Starts the service and points the client at a fresh merchant with the standard programme. */
static void start(const char *prefix) {
    harness_start(&svc, "referral-svc", NULL);
    C = (rc_t){.addr = svc.addr, .merchant = harness_merchant(prefix), .arena = &arena};
    rc_program_t prog;
    rc_program_init(&prog);
    assert_status(rc_set_program(&C, &prog.p, NULL), STATUS_OK, "");
}

Test(referral_tree, serves_health_for_its_service) {
    /* Goal: the binary starts on its schema and answers Health for ReferralService. */
    harness_start(&svc, "referral-svc", NULL);
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    req.service = "loyalty.v1.ReferralService";
    ProtobufCMessage *resp = NULL;
    status_t st = rpc_call(rpc_channel_get(svc.addr), &grpc__health__v1__health__descriptor,
                           "Check", &req.base, &arena, &resp, NULL);
    assert_status(st, STATUS_OK, "");
    cr_assert_eq(((Grpc__Health__V1__HealthCheckResponse *)resp)->status,
                 GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
}

Test(referral_tree, codes_are_stable_short_and_case_insensitive) {
    /* Goal: a member's code is created once and returned again; it is 8 characters of the
     * unambiguous alphabet; lookups ignore case and surrounding spaces; share links are built
     * from the template and percent-encoded. */
    start("code");
    Loyalty__V1__ReferralGetCodeResponse *first = NULL, *again = NULL;
    assert_status(rc_get_code(&C, "mbr_alice", &first), STATUS_OK, "");
    assert_status(rc_get_code(&C, "mbr_alice", &again), STATUS_OK, "");
    cr_assert_str_eq(first->code, again->code, "the code is stable");
    cr_assert_str_eq(first->member_id, "mbr_alice");
    cr_assert_eq(strlen(first->code), 8);
    cr_assert_eq(strspn(first->code, "23456789ABCDEFGHJKMNPQRSTUVWXYZ"), 8, "%s", first->code);
    cr_assert_str_neq(rc_code(&C, "mbr_bob"), first->code);

    char url[128], message[200], wa[400], fb[200];
    snprintf(url, sizeof url, "https://shop.example/join?ref=%s", first->code);
    snprintf(message, sizeof message, "Join me at Shop & get 50 points: %s", url);
    snprintf(wa, sizeof wa,
             "https://wa.me/?text=Join%%20me%%20at%%20Shop%%20%%26%%20get%%2050%%20points%%3A%%20"
             "https%%3A%%2F%%2Fshop.example%%2Fjoin%%3Fref%%3D%s",
             first->code);
    snprintf(fb, sizeof fb,
             "https://www.facebook.com/sharer/sharer.php?u=https%%3A%%2F%%2Fshop.example%%2Fjoin"
             "%%3Fref%%3D%s",
             first->code);
    cr_assert_str_eq(first->links->url, url);
    cr_assert_str_eq(first->links->message, message);
    cr_assert_str_eq(first->links->whatsapp_url, wa);
    cr_assert_str_eq(first->links->facebook_url, fb);

    char lower[16];
    snprintf(lower, sizeof lower, "  %s ", first->code);
    for (char *p = lower; *p; p++) {
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
    }
    Loyalty__V1__ReferralResolveCodeRequest rq = LOYALTY__V1__REFERRAL_RESOLVE_CODE_REQUEST__INIT;
    rq.merchant_id = (char *)C.merchant;
    rq.code = lower;
    ProtobufCMessage *resp = NULL;
    assert_status(rc_invoke(&C, "ResolveReferralCode", &rq.base, &resp), STATUS_OK, "");
    cr_assert_str_eq(((Loyalty__V1__ReferralResolveCodeResponse *)resp)->member_id, "mbr_alice");
    cr_assert_str_eq(((Loyalty__V1__ReferralResolveCodeResponse *)resp)->code, first->code);
    rq.code = "ZZZZ2222";
    assert_status(rc_invoke(&C, "ResolveReferralCode", &rq.base, NULL), STATUS_NOT_FOUND,
                  "CODE_NOT_FOUND");
    rq.code = "AB-CD";
    assert_status(rc_invoke(&C, "ResolveReferralCode", &rq.base, NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_CODE");
    assert_status(rc_get_code(&C, "", NULL), STATUS_INVALID_ARGUMENT, "INVALID_MEMBER_ID");

    /* A merchant without a share template gets its code and no links. */
    rc_t other = C;
    other.merchant = harness_merchant("nolinks");
    Loyalty__V1__ReferralGetCodeResponse *bare = NULL;
    assert_status(rc_get_code(&other, "mbr_alice", &bare), STATUS_OK, "");
    cr_assert_str_eq(bare->links->url, "");
    cr_assert_str_eq(bare->links->whatsapp_url, "");
}

Test(referral_tree, attach_rules_and_their_reasons) {
    /* Goal: one referrer per member and only once, never oneself, never a cycle (also five
     * levels deep), no referee that already has a downline, only codes of the merchant, only
     * while the programme is on; each refusal has its reason and changes nothing. */
    start("rules");
    Loyalty__V1__ReferralAttachResponse *att = NULL;
    const char *key = harness_key();
    assert_status(rc_attach_key(&C, key, "mbr_b", rc_code(&C, "mbr_a"), &att), STATUS_OK, "");
    cr_assert_str_eq(att->referrer_member_id, "mbr_a");
    cr_assert_eq(att->n_ancestors, 1);
    cr_assert_str_eq(att->ancestors[0]->member_id, "mbr_a");
    cr_assert(att->attached_at > 1700000000);
    Loyalty__V1__ReferralAttachResponse *replay = NULL;
    assert_status(rc_attach_key(&C, key, "mbr_b", rc_code(&C, "mbr_a"), &replay), STATUS_OK, "");
    cr_assert_eq(replay->attached_at, att->attached_at, "a retry replays the first answer");
    assert_status(rc_attach_key(&C, key, "mbr_b", rc_code(&C, "mbr_x"), NULL),
                  STATUS_ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED");

    assert_status(rc_attach(&C, "mbr_b", rc_code(&C, "mbr_x")), STATUS_ALREADY_EXISTS,
                  "ALREADY_REFERRED");
    assert_status(rc_attach(&C, "mbr_b", rc_code(&C, "mbr_a")), STATUS_ALREADY_EXISTS,
                  "ALREADY_REFERRED");
    assert_status(rc_attach(&C, "mbr_x", rc_code(&C, "mbr_x")), STATUS_FAILED_PRECONDITION,
                  "SELF_REFERRAL");
    assert_status(rc_attach(&C, "mbr_a", rc_code(&C, "mbr_b")), STATUS_FAILED_PRECONDITION,
                  "REFERRAL_CYCLE");
    /* a -> b -> c -> d -> e -> f: a below f would close a loop five levels deep */
    rc_link(&C, "mbr_c", "mbr_b");
    rc_link(&C, "mbr_d", "mbr_c");
    rc_link(&C, "mbr_e", "mbr_d");
    rc_link(&C, "mbr_f", "mbr_e");
    assert_status(rc_attach(&C, "mbr_a", rc_code(&C, "mbr_f")), STATUS_FAILED_PRECONDITION,
                  "REFERRAL_CYCLE");
    /* y has referred z: y can no longer be attached (z's levels would shift) */
    rc_link(&C, "mbr_z", "mbr_y");
    assert_status(rc_attach(&C, "mbr_y", rc_code(&C, "mbr_x")), STATUS_FAILED_PRECONDITION,
                  "REFEREE_HAS_DOWNLINE");

    assert_status(rc_attach(&C, "mbr_new", "ZZZZ2222"), STATUS_NOT_FOUND, "CODE_NOT_FOUND");
    assert_status(rc_attach(&C, "mbr_new", "no-good"), STATUS_INVALID_ARGUMENT, "INVALID_CODE");
    assert_status(rc_attach(&C, "", rc_code(&C, "mbr_x")), STATUS_INVALID_ARGUMENT,
                  "INVALID_REFEREE_MEMBER_ID");
    rc_t other = C;
    other.merchant = harness_merchant("rules2");
    rc_program_t prog;
    rc_program_init(&prog);
    assert_status(rc_attach(&other, "mbr_new", rc_code(&C, "mbr_x")), STATUS_FAILED_PRECONDITION,
                  "PROGRAM_DISABLED");
    assert_status(rc_set_program(&other, &prog.p, NULL), STATUS_OK, "");
    assert_status(rc_attach(&other, "mbr_new", rc_code(&C, "mbr_x")), STATUS_NOT_FOUND,
                  "CODE_NOT_FOUND");
    prog.p.enabled = false;
    assert_status(rc_set_program(&C, &prog.p, NULL), STATUS_OK, "");
    assert_status(rc_attach(&C, "mbr_new", rc_code(&C, "mbr_x")), STATUS_FAILED_PRECONDITION,
                  "PROGRAM_DISABLED");

    /* Nothing of the refusals was written: the tree is the chain and y -> z. */
    cr_assert_eq(rc_sql_int("SELECT count(*) FROM referral.referral_members "
                            "WHERE merchant_id = $1 AND referrer_id IS NOT NULL",
                            C.merchant, NULL),
                 6);
    cr_assert_eq(rc_sql_int("SELECT count(*) FROM referral.referral_members "
                            "WHERE merchant_id = $1 AND member_id = $2 AND referrer_id IS NULL",
                            C.merchant, "mbr_a"),
                 1);
}

Test(referral_tree, upline_and_downline_with_counts_and_paging) {
    /* Goal: the upline is the stored 3 ancestors; each downline level is listed newest first
     * with stable cursor paging; counts per level and the points each downline member brought
     * are exact. */
    start("tree");
    rc_link(&C, "mbr_b", "mbr_a");
    rc_link(&C, "mbr_c", "mbr_b");
    rc_link(&C, "mbr_d", "mbr_c");
    rc_link(&C, "mbr_e", "mbr_d"); /* a is 4 levels above e: beyond the tree */
    const char *direct[] = {"mbr_p1", "mbr_p2", "mbr_p3", "mbr_p4"};
    for (int i = 0; i < 4; i++) {
        usleep(2000); /* ids order by millisecond: keep the attachments in distinct ones */
        rc_link(&C, direct[i], "mbr_a");
    }
    Loyalty__V1__ReferralGetUplineResponse *up = NULL;
    assert_status(rc_upline(&C, "mbr_e", &up), STATUS_OK, "");
    cr_assert_eq(up->n_ancestors, 3);
    const char *want[] = {"mbr_d", "mbr_c", "mbr_b"};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(up->ancestors[i]->level, i + 1);
        cr_assert_str_eq(up->ancestors[i]->member_id, want[i]);
    }
    cr_assert(up->attached_at > 0);
    assert_status(rc_upline(&C, "mbr_a", &up), STATUS_OK, "");
    cr_assert_eq(up->n_ancestors, 0);
    cr_assert_eq(up->attached_at, 0);
    assert_status(rc_upline(&C, "mbr_nobody", &up), STATUS_OK, "");
    cr_assert_eq(up->n_ancestors, 0);

    /* A purchase of d (5% of 10,000 = 500, capped at 300, to c; 20 to b; 1% = 100 to a). */
    assert_status(rc_compute(&C, EV_BUY, "mbr_d", 10000, "order-1", NULL), STATUS_OK, "");

    Loyalty__V1__ReferralListDownlineResponse *page = NULL;
    assert_status(rc_downline(&C, "mbr_a", 1, 2, NULL, &page), STATUS_OK, "");
    cr_assert_eq(page->n_level_counts, 3);
    int64_t want_members[] = {5, 1, 1}, want_points[] = {0, 0, 100};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(page->level_counts[i]->level, i + 1);
        cr_assert_eq(page->level_counts[i]->members, want_members[i], "level %d", i + 1);
        cr_assert_eq(page->level_counts[i]->reward_points, want_points[i], "level %d", i + 1);
    }
    /* Level 1 of a, newest first: p4 p3 | p2 p1 | b. */
    const char *order[] = {"mbr_p4", "mbr_p3", "mbr_p2", "mbr_p1", "mbr_b"};
    int seen = 0;
    for (int pages = 0; pages < 5; pages++) {
        for (size_t i = 0; i < page->n_members; i++) {
            cr_assert_str_eq(page->members[i]->member_id, order[seen]);
            cr_assert_eq(page->members[i]->level, 1);
            cr_assert_str_eq(page->members[i]->referrer_member_id, "mbr_a");
            seen++;
        }
        if (page->page_info->next_cursor[0] == '\0') {
            break;
        }
        char *cursor = page->page_info->next_cursor;
        assert_status(rc_downline(&C, "mbr_a", 1, 2, cursor, &page), STATUS_OK, "");
    }
    cr_assert_eq(seen, 5);

    assert_status(rc_downline(&C, "mbr_a", 3, 0, NULL, &page), STATUS_OK, "");
    cr_assert_eq(page->n_members, 1);
    cr_assert_str_eq(page->members[0]->member_id, "mbr_d");
    cr_assert_str_eq(page->members[0]->referrer_member_id, "mbr_c");
    cr_assert_eq(page->members[0]->reward_count, 1);
    cr_assert_eq(page->members[0]->reward_points, 100, "what d's purchase brought a");
    assert_status(rc_downline(&C, "mbr_c", 1, 0, NULL, &page), STATUS_OK, "");
    cr_assert_eq(page->members[0]->reward_points, 300);
    cr_assert_eq(page->level_counts[0]->reward_points, 300);
    cr_assert_eq(page->level_counts[1]->members, 1, "e is two below c");
    cr_assert_eq(page->level_counts[2]->members, 0);

    assert_status(rc_downline(&C, "mbr_a", 0, 0, NULL, NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_LEVEL");
    assert_status(rc_downline(&C, "mbr_a", 4, 0, NULL, NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_LEVEL");
    assert_status(rc_downline(&C, "mbr_a", 1, 501, NULL, NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_PAGE_PAGE_SIZE");
    assert_status(rc_downline(&C, "mbr_a", 1, 500, NULL, NULL), STATUS_OK, "");
    assert_status(rc_downline(&C, "mbr_a", 1, 0, "!!", NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_PAGE_CURSOR");
}

#define PARALLEL 50

typedef struct attach_arg {
    const char *addr, *merchant, *referee, *code, *key;
    status_t st;
} attach_arg_t;

static void *attach_main(void *p) {
    attach_arg_t *a = p;
    arena_t ar;
    arena_init(&ar);
    rc_t c = {.addr = a->addr, .merchant = a->merchant, .arena = &ar};
    a->st = rc_attach_key(&c, a->key, a->referee, a->code, NULL);
    arena_free(&ar);
    return NULL;
}

/* Runs PARALLEL attaches of `referee` at once; returns the index of the one that succeeded. */
static int attach_race(const char *referee, const char *const *codes) {
    pthread_t threads[PARALLEL];
    attach_arg_t args[PARALLEL];
    for (int i = 0; i < PARALLEL; i++) {
        args[i] = (attach_arg_t){.addr = C.addr,
                                 .merchant = C.merchant,
                                 .referee = referee,
                                 .code = codes[i],
                                 .key = harness_key()};
    }
    for (int i = 0; i < PARALLEL; i++) {
        cr_assert_eq(pthread_create(&threads[i], NULL, attach_main, &args[i]), 0);
    }
    for (int i = 0; i < PARALLEL; i++) {
        pthread_join(threads[i], NULL);
    }
    int winner = -1, ok = 0;
    for (int i = 0; i < PARALLEL; i++) {
        if (status_is_ok(&args[i].st)) {
            winner = i;
            ok++;
        } else {
            assert_status(args[i].st, STATUS_ALREADY_EXISTS, "ALREADY_REFERRED");
        }
    }
    cr_assert_eq(ok, 1, "exactly one attach may succeed, %d did", ok);
    return winner;
}

Test(referral_tree, fifty_parallel_attaches_of_one_referee) {
    /* Goal: 50 clients attach the same referee at once, each with another referrer's code:
     * exactly one succeeds, the others get ALREADY_REFERRED, and only the winner's downline
     * counts it. The same with one shared code. */
    start("race");
    const char *codes[PARALLEL];
    char names[PARALLEL][32];
    for (int i = 0; i < PARALLEL; i++) {
        snprintf(names[i], sizeof names[i], "mbr_ref%02d", i);
        codes[i] = rc_code(&C, names[i]);
    }
    rc_code(&C, "mbr_target"); /* the referee's row exists: only the row lock orders them */
    int w = attach_race("mbr_target", codes);
    Loyalty__V1__ReferralGetUplineResponse *up = NULL;
    assert_status(rc_upline(&C, "mbr_target", &up), STATUS_OK, "");
    cr_assert_eq(up->n_ancestors, 1);
    cr_assert_str_eq(up->ancestors[0]->member_id, names[w]);
    cr_assert_eq(rc_sql_int("SELECT coalesce(sum(members), 0) FROM referral.downline_stats "
                            "WHERE merchant_id = $1",
                            C.merchant, NULL),
                 1);

    const char *same[PARALLEL];
    for (int i = 0; i < PARALLEL; i++) {
        same[i] = codes[0];
    }
    attach_race("mbr_target2", same);
    cr_assert_eq(rc_sql_int("SELECT members FROM referral.downline_stats "
                            "WHERE merchant_id = $1 AND member_id = $2 AND level = 1",
                            C.merchant, names[0]),
                 w == 0 ? 2 : 1);
}

Test(referral_tree, merchants_are_isolated) {
    /* Goal: one member id in two merchants has two codes and two trees; nothing of one
     * merchant is visible to, or changed by, a request for the other. */
    start("iso1");
    rc_t m2 = C;
    m2.merchant = harness_merchant("iso2");
    rc_program_t prog;
    rc_program_init(&prog);
    assert_status(rc_set_program(&m2, &prog.p, NULL), STATUS_OK, "");
    const char *code1 = rc_code(&C, "mbr_same");
    const char *code2 = rc_code(&m2, "mbr_same");
    cr_assert_str_neq(code1, code2);
    rc_link(&C, "mbr_kid", "mbr_same");
    assert_status(rc_attach(&m2, "mbr_kid", code1), STATUS_NOT_FOUND, "CODE_NOT_FOUND");
    Loyalty__V1__ReferralGetUplineResponse *up = NULL;
    assert_status(rc_upline(&m2, "mbr_kid", &up), STATUS_OK, "");
    cr_assert_eq(up->n_ancestors, 0, "m2 sees no upline of m1's member");
    Loyalty__V1__ReferralListDownlineResponse *down = NULL;
    assert_status(rc_downline(&m2, "mbr_same", 1, 0, NULL, &down), STATUS_OK, "");
    cr_assert_eq(down->n_members, 0);
    cr_assert_eq(down->level_counts[0]->members, 0);
    /* A purchase in m2 under the same ids rewards nobody: m2's kid has no referrer. */
    Loyalty__V1__ReferralComputeRewardsResponse *cr = NULL;
    assert_status(rc_compute(&m2, EV_BUY, "mbr_kid", 10000, "order-1", &cr), STATUS_OK, "");
    cr_assert_eq(cr->n_rewards, 0);
    assert_status(rc_compute(&C, EV_BUY, "mbr_kid", 10000, "order-1", &cr), STATUS_OK, "");
    cr_assert_eq(cr->n_rewards, 1, "the same reference is a separate event in m1");
    assert_status(rc_reverse(&m2, EV_BUY, "order-1", 10000, NULL), STATUS_OK, "");
    cr_assert_eq(rc_sql_int("SELECT reversed_points FROM referral.rewards WHERE merchant_id = $1",
                            C.merchant, NULL),
                 0, "m2's reversal left m1's reward alone");
}

typedef struct code_arg {
    const char *addr, *merchant;
    status_t st;
    char code[16];
} code_arg_t;

static void *code_main(void *p) {
    code_arg_t *a = p;
    arena_t ar;
    arena_init(&ar);
    rc_t c = {.addr = a->addr, .merchant = a->merchant, .arena = &ar};
    Loyalty__V1__ReferralGetCodeResponse *r = NULL;
    a->st = rc_get_code(&c, "mbr_popular", &r);
    if (status_is_ok(&a->st)) {
        snprintf(a->code, sizeof a->code, "%s", r->code);
    }
    arena_free(&ar);
    return NULL;
}

Test(referral_tree, parallel_first_calls_agree_on_one_code) {
    /* Goal: 20 clients asking for a new member's code at once all get the same code, and
     * one row exists. */
    start("codes");
    enum { N = 20 };
    pthread_t threads[N];
    code_arg_t args[N];
    for (int i = 0; i < N; i++) {
        args[i] = (code_arg_t){.addr = C.addr, .merchant = C.merchant};
        cr_assert_eq(pthread_create(&threads[i], NULL, code_main, &args[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(threads[i], NULL);
    }
    for (int i = 0; i < N; i++) {
        assert_status(args[i].st, STATUS_OK, "");
        cr_assert_str_eq(args[i].code, args[0].code);
    }
    cr_assert_eq(rc_sql_int("SELECT count(*) FROM referral.referral_members "
                            "WHERE merchant_id = $1",
                            C.merchant, NULL),
                 1);
}
