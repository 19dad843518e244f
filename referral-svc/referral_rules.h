/* referral_rules.h -- pure rules of the referral programme: programme validation, referral
 * codes and share links, the tree rules of an attach, reward arithmetic (levels, fixed or bps
 * with floor rounding and caps, first-N and joining windows, holds), reversal and release
 * arithmetic. No I/O except the random source of new codes; unit-tested in tests/unit. */
#ifndef REFERRAL_RULES_H
#define REFERRAL_RULES_H

#include "arena.h"
#include "loyalty/v1/referral.pb-c.h"
#include "status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REFERRAL_LEVELS_MAX 3
#define REFERRAL_POINTS_MAX 1000000000LL         /* any configured points figure */
#define REFERRAL_PAID_CENTS_MAX 10000000000000LL /* 10^13 minor units per order */
#define REFERRAL_FIRST_N_MAX 10000
#define REFERRAL_WITHIN_DAYS_MAX 3650
#define REFERRAL_HOLD_DAYS_MAX 365
#define REFERRAL_HOLD_AHEAD_MAX_S (366LL * 86400)
#define REFERRAL_MEMBER_ID_MAX 64
#define REFERRAL_REFERENCE_MAX 128
#define REFERRAL_CODE_LEN 8
#define REFERRAL_CODE_INPUT_MAX 32
#define REFERRAL_CODE_ALPHABET "23456789ABCDEFGHJKMNPQRSTUVWXYZ" /* no 0/O, 1/I/L */
#define REFERRAL_URL_TEMPLATE_MAX 512
#define REFERRAL_MESSAGE_TEMPLATE_MAX 500
#define REFERRAL_RELEASE_LIMIT_DEFAULT 100
#define REFERRAL_RELEASE_LIMIT_MAX 500
#define REFERRAL_REWARDS_PER_EVENT_MAX (REFERRAL_LEVELS_MAX + 1) /* welcome + one per level */
#define REFERRAL_WHATSAPP_PREFIX "https://wa.me/?text="
#define REFERRAL_FACEBOOK_PREFIX "https://www.facebook.com/sharer/sharer.php?u="

/* Reward states and rules as stored: the proto's numbers. */
#define REFERRAL_STATE_HELD LOYALTY__V1__REFERRAL_REWARD_STATE__REFERRAL_REWARD_STATE_HELD
#define REFERRAL_STATE_GRANTED LOYALTY__V1__REFERRAL_REWARD_STATE__REFERRAL_REWARD_STATE_GRANTED
#define REFERRAL_STATE_CANCELLED LOYALTY__V1__REFERRAL_REWARD_STATE__REFERRAL_REWARD_STATE_CANCELLED
#define REFERRAL_EVENT_REGISTRATION LOYALTY__V1__REFERRAL_EVENT__REFERRAL_EVENT_REGISTRATION
#define REFERRAL_EVENT_PURCHASE LOYALTY__V1__REFERRAL_EVENT__REFERRAL_EVENT_PURCHASE

/* ---- programme ---- */

/** Validates a programme a merchant sends and writes its normalised form into `out` (level
 *  rules sorted by level, strings copied into `a`, version/updated_at left 0). Errors are
 *  INVALID_ARGUMENT naming the field under "program.". `in` may be NULL (INVALID_PROGRAM). */
status_t referral_rules_check_program(arena_t *a, const Loyalty__V1__ReferralProgram *in,
                                      Loyalty__V1__ReferralProgram *out);

/** The rule of `level` (1..3) in a normalised programme, or NULL when the programme does not
 *  reward that level (beyond `levels`, or absent). */
const Loyalty__V1__ReferralLevelRule *referral_rules_level(const Loyalty__V1__ReferralProgram *p,
                                                           int level);

/* ---- codes and links (referral_links.c) ---- */

/** A new random code of REFERRAL_CODE_LEN characters from REFERRAL_CODE_ALPHABET into out. */
void referral_code_generate(char out[REFERRAL_CODE_LEN + 1]);

/** Normalises a code a caller typed: surrounding ASCII spaces removed, upper-cased; then
 *  1..REFERRAL_CODE_INPUT_MAX of [A-Z0-9]. Otherwise INVALID_ARGUMENT naming `field`. */
status_t referral_code_normalize(const char *field, const char *in,
                                 char out[REFERRAL_CODE_INPUT_MAX + 1]);

/** RFC 3986 percent-encoding of s: A-Z a-z 0-9 - . _ ~ are kept, every other byte (UTF-8
 *  bytes included) becomes %XX with upper-case hex. Returns arena memory. */
char *referral_percent_encode(arena_t *a, const char *s);

/** Checks a share URL template (see ReferralProgram.share_url_template); "" is allowed. */
status_t referral_check_url_template(const char *field, const char *tmpl);

/** Checks a share message template (UTF-8 text without control characters, at most
 *  REFERRAL_MESSAGE_TEMPLATE_MAX characters); "" is allowed. */
status_t referral_check_message_template(const char *field, const char *tmpl);

/** Fills the share links of `code` from the templates (all empty when url_template is ""). The
 *  strings are arena memory. */
void referral_share_links(arena_t *a, const char *url_template, const char *message_template,
                          const char *code, Loyalty__V1__ReferralShareLinks *out);

/* ---- the tree ---- */

/** A member's row as the tree rules see it; strings are "" when absent. */
typedef struct referral_node {
    const char *member_id;
    const char *referrer_id; /* level 1 */
    const char *ancestor_2;
    const char *ancestor_3;
    const char *root_id; /* the top of its tree (itself when it has no referrer) */
} referral_node_t;

/** The outcome of an accepted attach: the referee's new ancestors (level 1 first, "" beyond
 *  the top of the tree) and root. */
typedef struct referral_attach_plan {
    const char *ancestors[REFERRAL_LEVELS_MAX];
    int n_ancestors;
    const char *root_id;
} referral_attach_plan_t;

/** Decides whether `referee` may be attached below `referrer` (both rows exist), checking in
 *  this order: SELF_REFERRAL, ALREADY_REFERRED, REFERRAL_CYCLE (the referrer's tree is rooted
 *  at the referee, at any depth), REFEREE_HAS_DOWNLINE. On success fills `plan`. */
status_t referral_rules_attach(const referral_node_t *referee, bool referee_has_downline,
                               const referral_node_t *referrer, referral_attach_plan_t *plan);

/* ---- rewards ---- */

/** One reward that applies to an event, before it is stored. */
typedef struct referral_reward_spec {
    int level; /* 0 = the referee's welcome */
    const char *beneficiary_id;
    Loyalty__V1__ReferralRewardRule rule;
    int64_t points;
    int64_t base_cents;
    int32_t rule_bps;
    bool capped;
} referral_reward_spec_t;

/** What the reward rules need to know about the referee at the time of the event. */
typedef struct referral_referee {
    const char *member_id;
    const char *ancestors[REFERRAL_LEVELS_MAX]; /* "" beyond the top */
    int64_t attached_at_s;                      /* when it was attached */
    int64_t purchase_number;                    /* PURCHASE: 1 for its first since attached */
} referral_referee_t;

/** Points of a purchase at one level: fixed, or floor(paid_cents * bps / 10000) capped at
 *  purchase_cap_points when that is > 0 (a cap applies to fixed points as well). *capped says
 *  whether the cap cut the figure. Never negative; 0 when the kind is NONE. */
int64_t referral_rules_purchase_points(const Loyalty__V1__ReferralLevelRule *rule,
                                       int64_t paid_cents, bool *capped);

/** True when a level's first-N and joining-window conditions let a purchase reward it: the
 *  purchase_number is at most purchase_first_n (0 = no limit), and now_s is before
 *  attached_at + purchase_within_days * 86400 (0 = no limit). */
bool referral_rules_purchase_eligible(const Loyalty__V1__ReferralLevelRule *rule,
                                      const referral_referee_t *referee, int64_t now_s);

/** The rewards of an event for an attached referee under an enabled programme, in level order
 *  (welcome first), rewards of 0 points left out. Returns how many were written to out. A
 *  disabled programme gives none. */
int referral_rules_compute(const Loyalty__V1__ReferralProgram *p, int event,
                           const referral_referee_t *referee, int64_t paid_cents, int64_t now_s,
                           referral_reward_spec_t out[REFERRAL_REWARDS_PER_EVENT_MAX]);

/** When a purchase's rewards are released: 0 when they are granted at once. With an override
 *  (has_override) it is the override if that is after now_s, else 0; without, now_s +
 *  purchase_hold_days * 86400 when purchase_hold_days > 0, else 0. */
int64_t referral_rules_hold_until(const Loyalty__V1__ReferralProgram *p, bool has_override,
                                  int64_t override_at, int64_t now_s);

/* ---- reversal and release ---- */

/** The cumulative reversed share after adding share_bps to prev_bps, capped at 10000. */
int32_t referral_rules_add_share(int32_t prev_bps, int32_t share_bps);

/** A reward's reversed total for a cumulative share: floor(points * share / 10000), and
 *  exactly `points` at 10000. */
int64_t referral_rules_reversed_target(int64_t points, int32_t cumulative_share_bps);

/** A reward's money state, as stored. */
typedef struct referral_reward_money {
    int state; /* REFERRAL_STATE_* */
    int64_t points;
    int64_t granted_points;
    int64_t reversed_points;
    int64_t clawed_back_points;
} referral_reward_money_t;

/** Applies a reversal up to `cumulative_share_bps` to m: *reversed_delta is this reversal (0
 *  when nothing changes), *clawback the part of it to take back from granted points (only for
 *  GRANTED rewards). A HELD reward reversed in full becomes CANCELLED. Invariants kept:
 *  reversed <= points, clawed back <= granted. */
void referral_rules_reverse(referral_reward_money_t *m, int32_t cumulative_share_bps,
                            int64_t *reversed_delta, int64_t *clawback);

/** Releases a HELD reward whose hold has ended: GRANTED with granted = points - reversed, or
 *  CANCELLED when nothing is left. Returns true when there is something to grant. */
bool referral_rules_release(referral_reward_money_t *m);

/** A change of one downline counter row (downline_stats: a member's figures at a level). */
typedef struct referral_stats_delta {
    const char *member_id;
    int level;
    int64_t members; /* referees attached at that level */
    int64_t reward_points;
    int64_t reversed_points;
} referral_stats_delta_t;

/** The counter changes of a call, or of a merged batch of calls, written together in (member,
 *  level) order: the order every writer of the counters locks their rows in, so that two
 *  transactions writing some of the same rows cannot deadlock (a batch's calls each write
 *  their own beneficiaries' rows, whose order across calls is nobody's). */
typedef struct referral_stats_sum {
    referral_stats_delta_t *deltas;
    size_t n, cap;
} referral_stats_sum_t;

/** Adds a change to the sum, into the member and level's earlier one if any; memory from `a`. */
void referral_rules_stats_add(referral_stats_sum_t *s, arena_t *a,
                              const referral_stats_delta_t *change);

/** Sorts the sum's changes by member id in byte order (COLLATE "C"), then level. */
void referral_rules_stats_sort(referral_stats_sum_t *s);

#endif
