/* member_tags.h -- pure rules of automatic tags: a merchant's tag rules ("orders_count >= 5 ->
 * regular"), their validation, their stored form (one text per rule, readable in the audit
 * log) and the tags a member's figures earn. No I/O; unit-tested in tests/unit. */
#ifndef MEMBER_TAGS_H
#define MEMBER_TAGS_H

#include "arena.h"
#include "loyalty/v1/member.pb-c.h"
#include "status.h"

#include <stdbool.h>
#include <stdint.h>

#define MEMBER_TAG_RULES_MAX 50
#define MEMBER_TAG_RULE_TAG_MAX 32                  /* as profile tags (MEMBER_TAG_MAX) */
#define MEMBER_TAG_THRESHOLD_MAX 1000000000000000LL /* 10^15 */

typedef struct member_tag_rule {
    char tag[MEMBER_TAG_RULE_TAG_MAX + 1]; /* lower-cased token */
    Loyalty__V1__MemberTagMetric metric;
    Loyalty__V1__MemberTagOperator op;
    int64_t threshold;
} member_tag_rule_t;

typedef struct member_tag_rules {
    int n;
    member_tag_rule_t r[MEMBER_TAG_RULES_MAX];
} member_tag_rules_t;

/** The figures of a member the rules look at. */
typedef struct member_tag_figures {
    int64_t orders_count;
    int64_t total_spend_cents;
    int64_t points_balance;
} member_tag_figures_t;

/** Validates and normalises a caller's rules (INVALID_ARGUMENT names rules[i].<field>). */
status_t member_tags_check(Loyalty__V1__MemberTagRule *const *in, size_t n,
                           member_tag_rules_t *out);

/** The stored text of a rule: "<metric> <op> <threshold> <tag>" ("orders_count >= 5 regular"). */
char *member_tags_encode(arena_t *a, const member_tag_rule_t *r);
/** Parses a stored text; false when it is not one (then the rule is skipped). */
bool member_tags_decode(const char *text, member_tag_rule_t *out);

/** The distinct tags the figures earn, sorted (strings point into `rules`). */
size_t member_tags_compute(const member_tag_rules_t *rules, const member_tag_figures_t *f,
                           const char **out, size_t cap);

/** The points balance a member's tags look at, as member-svc keeps it: *balance and its
 *  *version (PointsBalance.version). Takes `new_balance` when `new_version` is higher than
 *  *version, or 0 (unversioned: taken, *version left as it is); a duplicate or an older one
 *  changes nothing, whatever order events and calls arrive in. True when taken. */
bool member_tags_learn_points(int64_t *balance, int64_t *version, int64_t new_balance,
                              int64_t new_version);

/** True when two sorted tag lists are equal. */
bool member_tags_equal(char *const *a, size_t na, char *const *b, size_t nb);

/** The API message of a rule. */
Loyalty__V1__MemberTagRule *member_tags_view(arena_t *a, const member_tag_rule_t *r);

#endif
