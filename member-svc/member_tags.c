/* member_tags.c -- automatic tag rules: validation, stored form, evaluation. */
#include "member_tags.h"

#include "pb.h"
#include "validate.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *metric_name(Loyalty__V1__MemberTagMetric m) {
    switch (m) {
    case LOYALTY__V1__MEMBER_TAG_METRIC__MEMBER_TAG_METRIC_ORDERS_COUNT:
        return "orders_count";
    case LOYALTY__V1__MEMBER_TAG_METRIC__MEMBER_TAG_METRIC_TOTAL_SPEND_CENTS:
        return "total_spend_cents";
    case LOYALTY__V1__MEMBER_TAG_METRIC__MEMBER_TAG_METRIC_POINTS_BALANCE:
        return "points_balance";
    default:
        return NULL;
    }
}

static Loyalty__V1__MemberTagMetric metric_by_name(const char *s) {
    for (int m = 1; m <= 3; m++) {
        const char *n = metric_name((Loyalty__V1__MemberTagMetric)m);
        if (n != NULL && strcmp(n, s) == 0) {
            return (Loyalty__V1__MemberTagMetric)m;
        }
    }
    return LOYALTY__V1__MEMBER_TAG_METRIC__MEMBER_TAG_METRIC_UNSPECIFIED;
}

status_t member_tags_check(Loyalty__V1__MemberTagRule *const *in, size_t n,
                           member_tag_rules_t *out) {
    memset(out, 0, sizeof *out);
    if (n > MEMBER_TAG_RULES_MAX) {
        return status_invalid_field("rules", "at most %d rules", MEMBER_TAG_RULES_MAX);
    }
    for (size_t i = 0; i < n; i++) {
        char field[48];
        const Loyalty__V1__MemberTagRule *r = in[i];
        member_tag_rule_t *o = &out->r[i];
        if (r == NULL) {
            snprintf(field, sizeof field, "rules[%zu]", i);
            return status_invalid_field(field, "required");
        }
        snprintf(field, sizeof field, "rules[%zu].tag", i);
        status_t st = validate_token(field, r->tag, MEMBER_TAG_RULE_TAG_MAX);
        if (!status_is_ok(&st)) {
            return st;
        }
        size_t k = 0;
        for (; r->tag[k]; k++) {
            o->tag[k] = (char)tolower((unsigned char)r->tag[k]);
        }
        o->tag[k] = '\0';
        if (metric_name(r->metric) == NULL) {
            snprintf(field, sizeof field, "rules[%zu].metric", i);
            return status_invalid_field(field, "ORDERS_COUNT, TOTAL_SPEND_CENTS or POINTS_BALANCE");
        }
        if (r->op != LOYALTY__V1__MEMBER_TAG_OPERATOR__MEMBER_TAG_OPERATOR_GTE &&
            r->op != LOYALTY__V1__MEMBER_TAG_OPERATOR__MEMBER_TAG_OPERATOR_LTE) {
            snprintf(field, sizeof field, "rules[%zu].op", i);
            return status_invalid_field(field, "GTE or LTE");
        }
        if (r->threshold < 0 || r->threshold > MEMBER_TAG_THRESHOLD_MAX) {
            snprintf(field, sizeof field, "rules[%zu].threshold", i);
            return status_invalid_field(field, "must be 0..10^15");
        }
        o->metric = r->metric;
        o->op = r->op;
        o->threshold = r->threshold;
        for (size_t j = 0; j < i; j++) {
            const member_tag_rule_t *p = &out->r[j];
            if (strcmp(p->tag, o->tag) == 0 && p->metric == o->metric && p->op == o->op) {
                snprintf(field, sizeof field, "rules[%zu]", i);
                return status_invalid_field(field, "repeats rules[%zu] (same tag, metric and op)",
                                            j);
            }
        }
        out->n++;
    }
    return status_ok();
}

char *member_tags_encode(arena_t *a, const member_tag_rule_t *r) {
    return arena_printf(a, "%s %s %" PRId64 " %s", metric_name(r->metric),
                        r->op == LOYALTY__V1__MEMBER_TAG_OPERATOR__MEMBER_TAG_OPERATOR_GTE ? ">="
                                                                                           : "<=",
                        r->threshold, r->tag);
}

bool member_tags_decode(const char *text, member_tag_rule_t *out) {
    char metric[32], op[3], tag[MEMBER_TAG_RULE_TAG_MAX + 1];
    long long threshold = 0;
    int used = 0;
    if (sscanf(text, "%31s %2s %lld %32s%n", metric, op, &threshold, tag, &used) != 4 ||
        text[used] != '\0') {
        return false;
    }
    memset(out, 0, sizeof *out);
    out->metric = metric_by_name(metric);
    if (strcmp(op, ">=") == 0) {
        out->op = LOYALTY__V1__MEMBER_TAG_OPERATOR__MEMBER_TAG_OPERATOR_GTE;
    } else if (strcmp(op, "<=") == 0) {
        out->op = LOYALTY__V1__MEMBER_TAG_OPERATOR__MEMBER_TAG_OPERATOR_LTE;
    }
    out->threshold = threshold;
    snprintf(out->tag, sizeof out->tag, "%s", tag);
    return out->metric != LOYALTY__V1__MEMBER_TAG_METRIC__MEMBER_TAG_METRIC_UNSPECIFIED &&
           out->op != LOYALTY__V1__MEMBER_TAG_OPERATOR__MEMBER_TAG_OPERATOR_UNSPECIFIED;
}

static int64_t figure(const member_tag_figures_t *f, Loyalty__V1__MemberTagMetric m) {
    switch (m) {
    case LOYALTY__V1__MEMBER_TAG_METRIC__MEMBER_TAG_METRIC_ORDERS_COUNT:
        return f->orders_count;
    case LOYALTY__V1__MEMBER_TAG_METRIC__MEMBER_TAG_METRIC_TOTAL_SPEND_CENTS:
        return f->total_spend_cents;
    default:
        return f->points_balance;
    }
}

static int cmp_str(const void *x, const void *y) {
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

size_t member_tags_compute(const member_tag_rules_t *rules, const member_tag_figures_t *f,
                           const char **out, size_t cap) {
    size_t n = 0;
    for (int i = 0; i < rules->n; i++) {
        const member_tag_rule_t *r = &rules->r[i];
        int64_t v = figure(f, r->metric);
        bool match = r->op == LOYALTY__V1__MEMBER_TAG_OPERATOR__MEMBER_TAG_OPERATOR_GTE
                         ? v >= r->threshold
                         : v <= r->threshold;
        bool seen = false;
        for (size_t k = 0; k < n && !seen; k++) {
            seen = strcmp(out[k], r->tag) == 0;
        }
        if (match && !seen && n < cap) {
            out[n++] = r->tag;
        }
    }
    qsort(out, n, sizeof *out, cmp_str);
    return n;
}

bool member_tags_learn_points(int64_t *balance, int64_t *version, int64_t new_balance,
                              int64_t new_version) {
    if (new_version != 0 && new_version <= *version) {
        return false; /* a duplicate, or older than what is kept */
    }
    *balance = new_balance;
    if (new_version != 0) {
        *version = new_version;
    }
    return true;
}

bool member_tags_equal(char *const *a, size_t na, char *const *b, size_t nb) {
    if (na != nb) {
        return false;
    }
    for (size_t i = 0; i < na; i++) {
        if (strcmp(a[i], b[i]) != 0) {
            return false;
        }
    }
    return true;
}

Loyalty__V1__MemberTagRule *member_tags_view(arena_t *a, const member_tag_rule_t *r) {
    Loyalty__V1__MemberTagRule *m = pb_new(a, &loyalty__v1__member_tag_rule__descriptor);
    m->tag = arena_strdup(a, r->tag);
    m->metric = r->metric;
    m->op = r->op;
    m->threshold = r->threshold;
    return m;
}
