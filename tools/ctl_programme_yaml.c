/* ctl_programme_yaml.c -- a programme file in and out: parsed with libyaml into the sections'
 * protobuf-c messages by walking their descriptors (unknown keys, wrong types and out-of-range
 * values refused with FILE:LINE:COLUMN), and written back as YAML in one fixed order (the
 * sections' order, then each message's fields in .proto order), strings always double-quoted,
 * so that an export applied and exported again is the same bytes. Also the generic field access
 * (compare, copy, render one value) the plan uses. */
#include "ctl_programme.h"
#include "loyalty/v1/promo.pb-c.h"
#include "pb.h"

#include <assert.h>

#include <yaml.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- generic field access ---- */

void *prog_field_ptr(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f) {
    return (char *)m + f->offset;
}

size_t prog_repeated_count(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f) {
    return *(const size_t *)((const char *)m + f->quantifier_offset);
}

bool prog_field_set(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f) {
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        return true;
    }
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        return *(const uint32_t *)((const char *)m + f->quantifier_offset) == f->id;
    }
    if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
        return *(ProtobufCMessage *const *)prog_field_ptr(m, f) != NULL;
    }
    return true;
}

static bool message_equal(const ProtobufCMessage *a, const ProtobufCMessage *b);

/* One value of type t at pa and pb. */
static bool value_equal(const ProtobufCFieldDescriptor *f, const void *pa, const void *pb) {
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *x = *(char *const *)pa, *y = *(char *const *)pb;
        return strcmp(x ? x : "", y ? y : "") == 0;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        return message_equal(*(ProtobufCMessage *const *)pa, *(ProtobufCMessage *const *)pb);
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *x = pa, *y = pb;
        return x->len == y->len && (x->len == 0 || memcmp(x->data, y->data, x->len) == 0);
    }
    case PROTOBUF_C_TYPE_BOOL:
        return (*(const protobuf_c_boolean *)pa != 0) == (*(const protobuf_c_boolean *)pb != 0);
    default:
        return memcmp(pa, pb, pb_value_size(f->type)) == 0;
    }
}

bool prog_field_equal(const ProtobufCMessage *a, const ProtobufCMessage *b,
                      const ProtobufCFieldDescriptor *f) {
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        size_t n = prog_repeated_count(a, f);
        if (n != prog_repeated_count(b, f)) {
            return false;
        }
        const char *xa = *(char *const *)prog_field_ptr(a, f);
        const char *xb = *(char *const *)prog_field_ptr(b, f);
        size_t size = pb_value_size(f->type);
        for (size_t i = 0; i < n; i++) {
            if (!value_equal(f, xa + i * size, xb + i * size)) {
                return false;
            }
        }
        return true;
    }
    bool sa = prog_field_set(a, f), sb = prog_field_set(b, f);
    if (!sa || !sb) {
        return sa == sb;
    }
    return value_equal(f, prog_field_ptr(a, f), prog_field_ptr(b, f));
}

/* Two messages (either may be NULL: an absent message equals an empty one). */
static bool message_equal(const ProtobufCMessage *a, const ProtobufCMessage *b) {
    if (a == NULL || b == NULL) {
        const ProtobufCMessage *m = a ? a : b;
        if (m == NULL) {
            return true;
        }
        return protobuf_c_message_get_packed_size(m) == 0;
    }
    for (unsigned i = 0; i < a->descriptor->n_fields; i++) {
        if (!prog_field_equal(a, b, &a->descriptor->fields[i])) {
            return false;
        }
    }
    return true;
}

void prog_field_copy(ProtobufCMessage *dst, const ProtobufCMessage *src,
                     const ProtobufCFieldDescriptor *f) {
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        *(size_t *)((char *)dst + f->quantifier_offset) = prog_repeated_count(src, f);
        *(void **)prog_field_ptr(dst, f) = *(void *const *)prog_field_ptr(src, f);
        return;
    }
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        uint32_t *dcase = (uint32_t *)((char *)dst + f->quantifier_offset);
        if (!prog_field_set(src, f)) {
            if (*dcase == f->id) {
                *dcase = 0;
            }
            return;
        }
        *dcase = f->id;
    }
    memcpy(prog_field_ptr(dst, f), prog_field_ptr(src, f), pb_value_size(f->type));
}

static const ProtobufCFieldDescriptor *field_named(const ProtobufCMessage *m, const char *name,
                                                   ProtobufCType type) {
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
    if (f == NULL || f->type != type || f->label == PROTOBUF_C_LABEL_REPEATED) {
        return NULL;
    }
    return f;
}

bool prog_set_string(ProtobufCMessage *m, const char *name, const char *value) {
    const ProtobufCFieldDescriptor *f = field_named(m, name, PROTOBUF_C_TYPE_STRING);
    if (f == NULL) {
        return false;
    }
    *(const char **)prog_field_ptr(m, f) = value;
    return true;
}

bool prog_set_message(ProtobufCMessage *m, const char *name, ProtobufCMessage *value) {
    const ProtobufCFieldDescriptor *f = field_named(m, name, PROTOBUF_C_TYPE_MESSAGE);
    if (f == NULL) {
        return false;
    }
    *(ProtobufCMessage **)prog_field_ptr(m, f) = value;
    return true;
}

bool prog_set_bool(ProtobufCMessage *m, const char *name, bool value) {
    const ProtobufCFieldDescriptor *f = field_named(m, name, PROTOBUF_C_TYPE_BOOL);
    if (f == NULL) {
        return false;
    }
    *(protobuf_c_boolean *)prog_field_ptr(m, f) = value;
    return true;
}

ProtobufCMessage *prog_get_message(const ProtobufCMessage *m, const char *name) {
    const ProtobufCFieldDescriptor *f = field_named(m, name, PROTOBUF_C_TYPE_MESSAGE);
    return f ? *(ProtobufCMessage **)prog_field_ptr(m, f) : NULL;
}

bool prog_in_list(const char *const *list, const char *name) {
    for (; list != NULL && *list != NULL; list++) {
        if (strcmp(*list, name) == 0) {
            return true;
        }
    }
    return false;
}

ProtobufCMessage *prog_copy(arena_t *a, const ProtobufCMessage *m) {
    size_t len = 0;
    unsigned char *bytes = pb_pack_arena(a, m, &len);
    ProtobufCMessage *copy = pb_unpack_arena(a, m->descriptor, bytes, len);
    assert(copy != NULL); /* our own encoding decodes */
    return copy;
}

const prog_ref_t *prog_ref_of(const ProtobufCMessageDescriptor *d,
                              const ProtobufCFieldDescriptor *f) {
    for (int i = 0; i < prog_n_refs; i++) {
        if (prog_refs[i].message == d && strcmp(prog_refs[i].field, f->name) == 0) {
            return &prog_refs[i];
        }
    }
    return NULL;
}

const char *prog_yaml_name(const ProtobufCMessageDescriptor *d, const ProtobufCFieldDescriptor *f) {
    const prog_ref_t *r = prog_ref_of(d, f);
    return r ? r->yaml_name : f->name;
}

/* ---- rendering values ---- */

typedef struct text {
    char *buf;
    size_t len, cap;
    arena_t *a;
} text_t;

static void text_add(text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void text_add(text_t *t, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    assert(n >= 0);
    if (t->len + (size_t)n + 1 > t->cap) {
        size_t cap = (t->cap + (size_t)n + 1) * 2;
        char *b = arena_alloc(t->a, cap);
        if (t->len) {
            memcpy(b, t->buf, t->len);
        }
        t->buf = b;
        t->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

/* A string as a YAML double-quoted scalar. */
static void text_quoted(text_t *t, const char *s) {
    text_add(t, "\"");
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        switch (*p) {
        case '"':
            text_add(t, "\\\"");
            break;
        case '\\':
            text_add(t, "\\\\");
            break;
        case '\n':
            text_add(t, "\\n");
            break;
        case '\t':
            text_add(t, "\\t");
            break;
        default:
            if (*p < 0x20 || *p == 0x7f) {
                text_add(t, "\\x%02x", *p);
            } else {
                text_add(t, "%c", *p);
            }
        }
    }
    text_add(t, "\"");
}

static void text_message_flow(text_t *t, const ProtobufCMessage *m);

/* One value of field f at p, in flow style. */
static void text_value(text_t *t, const ProtobufCFieldDescriptor *f, const void *p) {
    char buf[24];
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        text_add(t, "%" PRId32, *(const int32_t *)p);
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        text_add(t, "%" PRIu32, *(const uint32_t *)p);
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        text_add(t, "%" PRId64, *(const int64_t *)p);
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        text_add(t, "%" PRIu64, *(const uint64_t *)p);
        break;
    case PROTOBUF_C_TYPE_BOOL:
        text_add(t, "%s", *(const protobuf_c_boolean *)p ? "true" : "false");
        break;
    case PROTOBUF_C_TYPE_ENUM:
        text_add(t, "%s", ctl_enum_name(f->descriptor, *(const int *)p, buf));
        break;
    case PROTOBUF_C_TYPE_STRING:
        text_quoted(t, *(char *const *)p);
        break;
    case PROTOBUF_C_TYPE_MESSAGE:
        text_message_flow(t, *(ProtobufCMessage *const *)p);
        break;
    default: /* float, double, bytes: no programme field has them */
        text_add(t, "null");
    }
}

static void text_field_flow(text_t *t, const ProtobufCMessage *m,
                            const ProtobufCFieldDescriptor *f) {
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        size_t n = prog_repeated_count(m, f);
        const char *xs = *(char *const *)prog_field_ptr(m, f);
        text_add(t, "[");
        for (size_t i = 0; i < n; i++) {
            text_add(t, "%s", i ? ", " : "");
            text_value(t, f, xs + i * pb_value_size(f->type));
        }
        text_add(t, "]");
        return;
    }
    text_value(t, f, prog_field_ptr(m, f));
}

static void text_message_flow(text_t *t, const ProtobufCMessage *m) {
    text_add(t, "{");
    bool first = true;
    for (unsigned i = 0; m != NULL && i < m->descriptor->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &m->descriptor->fields[i];
        if (!prog_field_set(m, f)) {
            continue;
        }
        text_add(t, "%s%s: ", first ? "" : ", ", prog_yaml_name(m->descriptor, f));
        text_field_flow(t, m, f);
        first = false;
    }
    text_add(t, "}");
}

const char *prog_value_text(arena_t *a, const ProtobufCMessage *m,
                            const ProtobufCFieldDescriptor *f) {
    text_t t = {.a = a};
    if (!prog_field_set(m, f)) {
        return "(unset)";
    }
    text_field_flow(&t, m, f);
    return t.buf;
}

/* ---- writing a programme ---- */

static void put_indent(FILE *out, int n) {
    fprintf(out, "%*s", n, "");
}

/* The fields of m as block YAML at `indent`; the first line after `first_prefix` (a list's
 * "- ") instead of the indent when it is given. */
static void print_block(FILE *out, arena_t *a, const ProtobufCMessage *m, const char *const *skip,
                        uint64_t only, int indent, const char *first_prefix) {
    bool first = true;
    for (unsigned i = 0; i < m->descriptor->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &m->descriptor->fields[i];
        if (prog_in_list(skip, f->name) || !prog_field_set(m, f) ||
            (only != 0 && (only & (1ULL << i)) == 0)) {
            continue;
        }
        if (first && first_prefix != NULL) {
            put_indent(out, indent - (int)strlen(first_prefix));
            fputs(first_prefix, out);
        } else {
            put_indent(out, indent);
        }
        first = false;
        const char *name = prog_yaml_name(m->descriptor, f);
        if (f->type == PROTOBUF_C_TYPE_MESSAGE && f->label == PROTOBUF_C_LABEL_REPEATED &&
            prog_repeated_count(m, f) > 0) {
            fprintf(out, "%s:\n", name);
            ProtobufCMessage *const *xs = *(ProtobufCMessage *const *const *)prog_field_ptr(m, f);
            for (size_t k = 0; k < prog_repeated_count(m, f); k++) {
                print_block(out, a, xs[k], NULL, 0, indent + 4, "- ");
            }
        } else if (f->type == PROTOBUF_C_TYPE_MESSAGE && f->label != PROTOBUF_C_LABEL_REPEATED &&
                   protobuf_c_message_get_packed_size(
                       *(ProtobufCMessage *const *)prog_field_ptr(m, f)) > 0) {
            fprintf(out, "%s:\n", name);
            print_block(out, a, *(ProtobufCMessage *const *)prog_field_ptr(m, f), NULL, 0,
                        indent + 2, NULL);
        } else {
            fprintf(out, "%s: %s\n", name, prog_value_text(a, m, f));
        }
    }
    if (first) { /* nothing to print: an empty mapping */
        if (first_prefix != NULL) {
            put_indent(out, indent - (int)strlen(first_prefix));
            fputs(first_prefix, out);
        } else {
            put_indent(out, indent);
        }
        fprintf(out, "{}\n");
    }
}

void prog_print_yaml(FILE *out, const prog_t *p, const char *merchant) {
    arena_t a;
    arena_init(&a);
    text_t t = {.a = &a};
    text_quoted(&t, merchant);
    fprintf(out,
            "# The programme of merchant %s, as `loyaltyctl programme export` wrote it.\n"
            "merchant: %s\n",
            merchant, t.buf);
    for (int i = 0; i < prog_n_sections; i++) {
        const prog_section_t *s = &prog_sections[i];
        const prog_part_t *part = &p->parts[i];
        if (!part->given) {
            continue;
        }
        if (!s->is_list) {
            fprintf(out, "%s:\n", s->key);
            print_block(out, &a, part->items[0].msg, s->skip, part->items[0].present, 2, NULL);
            continue;
        }
        if (part->n_items == 0) {
            fprintf(out, "%s: []\n", s->key);
            continue;
        }
        fprintf(out, "%s:\n", s->key);
        for (size_t k = 0; k < part->n_items; k++) {
            print_block(out, &a, part->items[k].msg, s->skip, part->items[k].present, 4, "  - ");
            const prog_codes_t *codes = &part->items[k].codes;
            if (codes->given) {
                t.len = 0;
                text_quoted(&t, codes->prefix);
                fprintf(out, "    codes:\n      batch_size: %d\n      prefix: %s\n",
                        (int)codes->batch_size, t.buf);
            }
        }
    }
    arena_free(&a);
}

/* ---- reading a programme ---- */

typedef struct parse {
    arena_t *a;
    const char *path;
    yaml_document_t *doc;
    const yaml_node_t *codes_of; /* the promotions item whose `codes:` is read apart */
} parse_t;

static bool fail_at(const parse_t *ps, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool fail_at(const parse_t *ps, const yaml_node_t *n, const char *fmt, ...) {
    fprintf(stderr, "%s:%zu:%zu: ", ps->path, n->start_mark.line + 1, n->start_mark.column + 1);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return false;
}

static const char *scalar(const yaml_node_t *n) {
    return (const char *)n->data.scalar.value;
}

/* Bounds of integer fields beyond their type, from the .proto comments (the services check
 * them again; these are refused before anything is written). Every other integer: >= 0. */
typedef struct prog_bound {
    const char *message, *field;
    int64_t min, max;
} prog_bound_t;

static const prog_bound_t prog_bounds[] = {
    {"loyalty.v1.MemberTier", "rank", 1, 10},
    {"loyalty.v1.MemberTier", "upgrade_threshold", 0, 1000000000000000LL},
    {"loyalty.v1.MemberTier", "retain_threshold", 0, 1000000000000000LL},
    {"loyalty.v1.MemberTier", "period_months", 0, 120},
    {"loyalty.v1.MemberTier", "express_spend_cents", 0, 1000000000000000LL},
    {"loyalty.v1.MemberTier", "discount_bps", 0, 10000},
    {"loyalty.v1.MemberTier", "earn_multiplier_bps", 10000, 100000},
    {"loyalty.v1.MemberTier", "birthday_bonus_points", 0, 1000000000},
    {"loyalty.v1.MemberPlan", "price_cents", 0, 1000000000000LL},
    {"loyalty.v1.MemberTagRule", "threshold", 0, 1000000000000000LL},
    {"loyalty.v1.PointsSettings", "earn_unit_cents", 1, 100000000},
    {"loyalty.v1.PointsSettings", "earn_points_per_unit", 0, 1000000},
    {"loyalty.v1.PointsSettings", "expiry_days", 0, 3650},
    {"loyalty.v1.PointsSettings", "expiry_months", 0, 120},
    {"loyalty.v1.PointsSettings", "pending_days", 0, 365},
    {"loyalty.v1.PointsSettings", "redeem_points", 0, 100000000},
    {"loyalty.v1.PointsSettings", "redeem_value_cents", 0, 100000000},
    {"loyalty.v1.PointsSettings", "redeem_max_order_share_bps", 0, 10000},
    {"loyalty.v1.PointsSettings", "growth_per_point_bps", 0, 1000000},
    {"loyalty.v1.PointsSettings", "growth_per_unit", 0, 1000000},
    {"loyalty.v1.PointsEventRule", "points", 0, 1000000},
    {"loyalty.v1.PointsCampaign", "multiplier_bps", 10001, 100000},
    {"loyalty.v1.ReferralProgram", "levels", 0, 3}, /* 0: never configured */
    {"loyalty.v1.ReferralProgram", "welcome_points", 0, 1000000000},
    {"loyalty.v1.ReferralProgram", "purchase_hold_days", 0, 365},
    {"loyalty.v1.ReferralLevelRule", "level", 1, 3},
    {"loyalty.v1.ReferralLevelRule", "registration_points", 0, 1000000000},
    {"loyalty.v1.ReferralLevelRule", "purchase_fixed_points", 0, 1000000000},
    {"loyalty.v1.ReferralLevelRule", "purchase_bps", 0, 10000},
    {"loyalty.v1.ReferralLevelRule", "purchase_cap_points", 0, 1000000000},
    {"loyalty.v1.ReferralLevelRule", "purchase_first_n", 0, 10000},
    {"loyalty.v1.ReferralLevelRule", "purchase_within_days", 0, 3650},
    {"loyalty.v1.WalletSettings", "deposit_expiry_months", 0, 120},
    {"loyalty.v1.WalletSettings", "refund_grace_days", 0, 3650},
    {"loyalty.v1.WalletTopUpPlan", "pay_cents", 1, 1000000000000LL},
    {"loyalty.v1.WalletTopUpPlan", "expiry_months", 0, 120},
    {"loyalty.v1.Promotion", "priority", -1000, 1000},
    {"loyalty.v1.PromoPercentOff", "percent_off_bps", 0, 10000},
    {"loyalty.v1.PromoBuyXGetY", "buy_quantity", 0, 100},
    {"loyalty.v1.PromoBuyXGetY", "get_quantity", 0, 100},
    {"loyalty.v1.PromoBuyXGetY", "get_discount_bps", 0, 10000},
    {"loyalty.v1.PromoGift", "quantity", 0, 100},
    {"loyalty.v1.PromoCouponTemplate", "percent_off_bps", 0, 10000},
    {"loyalty.v1.PromoCouponTemplate", "valid_days", 0, 3650},
    {"loyalty.v1.Campaign", "welcome_reminder_days", 0, 365},
    {"loyalty.v1.Campaign", "inactive_days", 0, 3650},
    {"loyalty.v1.Campaign", "expiring_within_days", 0, 365},
    {"loyalty.v1.CampaignReward", "points", 0, 1000000000},
    {"loyalty.v1.CampaignReward", "points_valid_days", 0, 3650},
};

static void field_bounds(const ProtobufCMessageDescriptor *d, const ProtobufCFieldDescriptor *f,
                         int64_t *min, int64_t *max) {
    for (size_t i = 0; i < sizeof prog_bounds / sizeof prog_bounds[0]; i++) {
        if (strcmp(prog_bounds[i].message, d->name) == 0 &&
            strcmp(prog_bounds[i].field, f->name) == 0) {
            *min = prog_bounds[i].min;
            *max = prog_bounds[i].max;
            return;
        }
    }
}

static bool parse_message(parse_t *ps, const yaml_node_t *n, const ProtobufCMessageDescriptor *d,
                          const char *const *skip, ProtobufCMessage **out, uint64_t *present);

/* What the services do to a value as they store it, done to the file's too, so that a plan
 * compares like with like (else "Regular" against the stored "regular" would differ forever). */
typedef enum {
    NORM_LOWER,
    NORM_UPPER,
    NORM_LOCALE,
    NORM_SORT,
    NORM_SORT_DROP_ZERO,
    NORM_ENUM_ZERO
} norm_op_t;

typedef struct prog_norm {
    const char *message, *field;
    norm_op_t op;
    const char *by;   /* NORM_SORT*: the elements' int field to sort by */
    const char *zero; /* NORM_SORT_DROP_ZERO: elements whose this int64 field is 0 are dropped */
    int value;        /* NORM_ENUM_ZERO: what the enum's 0 (UNSPECIFIED) stands for */
} prog_norm_t;

static const prog_norm_t prog_norms[] = {
    {"loyalty.v1.MemberTagRule", "tag", NORM_LOWER, NULL, NULL, 0},
    {"loyalty.v1.Promotion", "code", NORM_UPPER, NULL, NULL, 0},
    /* the gateway stores a BCP 47 tag with the usual case: en-SG, zh-Hans-CN */
    {"loyalty.v1.GatewayMerchantSettings", "locale", NORM_LOCALE, NULL, NULL, 0},
    {"loyalty.v1.ReferralProgram", "level_rules", NORM_SORT, "level", NULL, 0},
    /* points-svc keeps one figure per kind and answers the kinds with points, in kind order */
    {"loyalty.v1.PointsSettings", "event_rules", NORM_SORT_DROP_ZERO, "kind", "points", 0},
    {"loyalty.v1.PromoLimit", "period", NORM_ENUM_ZERO, NULL, NULL,
     LOYALTY__V1__PROMO_LIMIT_PERIOD__PROMO_LIMIT_PERIOD_LIFETIME},
};

static int64_t int_field(const ProtobufCMessage *m, const char *name) {
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
    assert(f != NULL);
    if (f->type == PROTOBUF_C_TYPE_INT64) {
        return *(const int64_t *)prog_field_ptr(m, f);
    }
    return *(const int32_t *)prog_field_ptr(m, f); /* int32 and enums */
}

/* Re-cases a BCP 47 tag as the gateway stores it: the language and everything from the first
 * singleton on lower case, a 4-letter script title case, a 2-letter region upper case. (The
 * gateway checks the tag's shape; this only spares a plan that would differ in case alone.) */
static void locale_case(char *tag) {
    bool extension = false;
    for (char *sub = tag; sub != NULL && *sub;) {
        size_t n = strcspn(sub, "-");
        bool alpha = true;
        for (size_t i = 0; i < n; i++) {
            sub[i] = (char)tolower((unsigned char)sub[i]);
            alpha = alpha && isalpha((unsigned char)sub[i]);
        }
        extension = extension || n == 1;
        if (sub != tag && !extension && alpha && (n == 4 || n == 2)) {
            sub[0] = (char)toupper((unsigned char)sub[0]);
            if (n == 2) {
                sub[1] = (char)toupper((unsigned char)sub[1]);
            }
        }
        sub = sub[n] == '-' ? sub + n + 1 : NULL;
    }
}

static void normalise(ProtobufCMessage *m) {
    for (size_t i = 0; i < sizeof prog_norms / sizeof prog_norms[0]; i++) {
        const prog_norm_t *nm = &prog_norms[i];
        if (strcmp(nm->message, m->descriptor->name) != 0) {
            continue;
        }
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field_by_name(m->descriptor, nm->field);
        assert(f != NULL);
        if (nm->op == NORM_ENUM_ZERO) {
            int *v = prog_field_ptr(m, f);
            *v = *v == 0 ? nm->value : *v;
            continue;
        }
        if (nm->op == NORM_LOCALE) {
            locale_case(*(char **)prog_field_ptr(m, f));
            continue;
        }
        if (nm->op == NORM_LOWER || nm->op == NORM_UPPER) {
            for (char *c = *(char **)prog_field_ptr(m, f); c != NULL && *c; c++) {
                *c = (char)(nm->op == NORM_LOWER ? tolower((unsigned char)*c)
                                                 : toupper((unsigned char)*c));
            }
            continue;
        }
        ProtobufCMessage **xs = *(ProtobufCMessage ***)prog_field_ptr(m, f);
        size_t *count = (size_t *)((char *)m + f->quantifier_offset);
        size_t kept = 0;
        for (size_t k = 0; k < *count; k++) {
            if (nm->op == NORM_SORT_DROP_ZERO && int_field(xs[k], nm->zero) == 0) {
                continue;
            }
            ProtobufCMessage *x = xs[k];
            size_t j = kept++;
            while (j > 0 && int_field(xs[j - 1], nm->by) > int_field(x, nm->by)) {
                xs[j] = xs[j - 1];
                j--;
            }
            xs[j] = x;
        }
        *count = kept;
    }
}

/* One value of field f (of messages d) from node n into *dst. */
static bool parse_value(parse_t *ps, const yaml_node_t *n, const ProtobufCMessageDescriptor *d,
                        const ProtobufCFieldDescriptor *f, void *dst) {
    const char *name = prog_yaml_name(d, f);
    if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
        return parse_message(ps, n, f->descriptor, NULL, (ProtobufCMessage **)dst, NULL);
    }
    if (n->type != YAML_SCALAR_NODE) {
        return fail_at(ps, n, "%s: a single value is expected here, not a %s", name,
                       n->type == YAML_MAPPING_NODE ? "mapping" : "list");
    }
    const char *v = scalar(n);
    bool plain = n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
        if (strlen(v) != n->data.scalar.length) {
            return fail_at(ps, n, "%s: the text holds a NUL character", name);
        }
        *(char **)dst = arena_strdup(ps->a, v);
        return true;
    case PROTOBUF_C_TYPE_BOOL:
        if (!plain || (strcmp(v, "true") != 0 && strcmp(v, "false") != 0)) {
            return fail_at(ps, n, "%s: true or false expected, not \"%s\"", name, v);
        }
        *(protobuf_c_boolean *)dst = strcmp(v, "true") == 0;
        return true;
    case PROTOBUF_C_TYPE_ENUM: {
        int e = 0;
        if (!plain || !ctl_enum_parse(f->descriptor, v, &e)) {
            char buf[24];
            const ProtobufCEnumDescriptor *ed = f->descriptor;
            fprintf(stderr, "%s:%zu:%zu: %s: \"%s\" is not one of", ps->path,
                    n->start_mark.line + 1, n->start_mark.column + 1, name, v);
            for (unsigned i = 0; i < ed->n_values; i++) {
                fprintf(stderr, " %s", ctl_enum_name(ed, ed->values[i].value, buf));
            }
            fputc('\n', stderr);
            return false;
        }
        *(int *)dst = e;
        return true;
    }
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_UINT64: {
        bool wide = f->type == PROTOBUF_C_TYPE_INT64 || f->type == PROTOBUF_C_TYPE_SINT64 ||
                    f->type == PROTOBUF_C_TYPE_UINT64;
        int64_t min = 0, max = wide ? INT64_MAX : INT32_MAX;
        field_bounds(d, f, &min, &max);
        char *end = NULL;
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (!plain || v[0] == '\0' || *end != '\0') {
            return fail_at(ps, n, "%s: a whole number is expected, not \"%s\"", name, v);
        }
        if (errno == ERANGE || x < min || x > max) {
            return fail_at(ps, n, "%s: %s is out of range (%lld..%lld)", name, v, (long long)min,
                           (long long)max);
        }
        if (wide) {
            *(int64_t *)dst = x;
        } else {
            *(int32_t *)dst = (int32_t)x;
        }
        return true;
    }
    default:
        return fail_at(ps, n, "%s: this field cannot be set in a programme", name);
    }
}

/* The field of d the file's key `key` names (a ref's yaml_name, or the field's own name). */
static const ProtobufCFieldDescriptor *field_for_key(const ProtobufCMessageDescriptor *d,
                                                     const char *key) {
    for (unsigned i = 0; i < d->n_fields; i++) {
        if (strcmp(prog_yaml_name(d, &d->fields[i]), key) == 0) {
            return &d->fields[i];
        }
    }
    return NULL;
}

static bool parse_message(parse_t *ps, const yaml_node_t *n, const ProtobufCMessageDescriptor *d,
                          const char *const *skip, ProtobufCMessage **out, uint64_t *present) {
    if (n->type != YAML_MAPPING_NODE) {
        return fail_at(ps, n, "a mapping (key: value lines) is expected here");
    }
    ProtobufCMessage *m = pb_new(ps->a, d);
    uint64_t seen = 0;
    for (yaml_node_pair_t *pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top;
         pair++) {
        yaml_node_t *k = yaml_document_get_node(ps->doc, pair->key);
        yaml_node_t *v = yaml_document_get_node(ps->doc, pair->value);
        if (k->type != YAML_SCALAR_NODE) {
            return fail_at(ps, k, "a key must be a name");
        }
        if (n == ps->codes_of && strcmp(scalar(k), "codes") == 0) {
            continue; /* parse_codes */
        }
        const ProtobufCFieldDescriptor *f = field_for_key(d, scalar(k));
        if (f == NULL || prog_in_list(skip, f->name)) {
            fprintf(stderr, "%s:%zu:%zu: unknown key \"%s\"; known here:", ps->path,
                    k->start_mark.line + 1, k->start_mark.column + 1, scalar(k));
            for (unsigned i = 0; i < d->n_fields; i++) {
                if (!prog_in_list(skip, d->fields[i].name)) {
                    fprintf(stderr, " %s", prog_yaml_name(d, &d->fields[i]));
                }
            }
            fputc('\n', stderr);
            return false;
        }
        unsigned idx = (unsigned)(f - d->fields);
        assert(idx < 64);
        if (seen & (1ULL << idx)) {
            return fail_at(ps, k, "%s is given twice", scalar(k));
        }
        seen |= 1ULL << idx;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            if (v->type != YAML_SEQUENCE_NODE) {
                return fail_at(ps, v, "%s: a list is expected", scalar(k));
            }
            size_t count = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
            size_t size = pb_value_size(f->type);
            char *xs = count ? arena_alloc(ps->a, count * size) : NULL;
            for (size_t i = 0; i < count; i++) {
                yaml_node_t *e = yaml_document_get_node(ps->doc, v->data.sequence.items.start[i]);
                if (!parse_value(ps, e, d, f, xs + i * size)) {
                    return false;
                }
            }
            *(size_t *)((char *)m + f->quantifier_offset) = count;
            *(void **)prog_field_ptr(m, f) = xs;
            continue;
        }
        if (!parse_value(ps, v, d, f, prog_field_ptr(m, f))) {
            return false;
        }
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            *(uint32_t *)((char *)m + f->quantifier_offset) = f->id;
        }
    }
    normalise(m);
    *out = m;
    if (present != NULL) {
        *present = seen;
    }
    return true;
}

/* The string value of the key field of an item, for duplicate checks. */
static const char *item_key_text(arena_t *a, const prog_section_t *s, const ProtobufCMessage *m) {
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, s->key_field);
    return prog_value_text(a, m, f);
}

/* `codes:` of a promotions item e (if it has one) into *codes: batch_size 1..10000, prefix
 * 0..8 letters and digits (upper-cased, as promo-svc stores it). */
static bool parse_codes(parse_t *ps, const yaml_node_t *e, prog_codes_t *codes) {
    const yaml_node_t *n = NULL;
    for (yaml_node_pair_t *pair = e->data.mapping.pairs.start; pair < e->data.mapping.pairs.top;
         pair++) {
        yaml_node_t *k = yaml_document_get_node(ps->doc, pair->key);
        if (k->type == YAML_SCALAR_NODE && strcmp(scalar(k), "codes") == 0) {
            if (n != NULL) {
                return fail_at(ps, k, "codes is given twice");
            }
            n = yaml_document_get_node(ps->doc, pair->value);
        }
    }
    if (n == NULL) {
        return true;
    }
    if (n->type != YAML_MAPPING_NODE) {
        return fail_at(ps, n, "codes: a mapping (batch_size, prefix) is expected");
    }
    codes->given = true;
    codes->prefix = "";
    codes->line = (int)n->start_mark.line + 1;
    codes->column = (int)n->start_mark.column + 1;
    bool sized = false;
    for (yaml_node_pair_t *pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top;
         pair++) {
        yaml_node_t *k = yaml_document_get_node(ps->doc, pair->key);
        yaml_node_t *v = yaml_document_get_node(ps->doc, pair->value);
        const char *key = k->type == YAML_SCALAR_NODE ? scalar(k) : "?";
        if (v->type != YAML_SCALAR_NODE) {
            return fail_at(ps, v, "%s: a single value is expected here", key);
        }
        const char *text = scalar(v);
        if (strcmp(key, "batch_size") == 0) {
            char *end = NULL;
            errno = 0;
            long long x = strtoll(text, &end, 10);
            if (v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || text[0] == '\0' ||
                *end != '\0' || errno == ERANGE || x < 1 || x > PROG_CODES_BATCH_MAX) {
                return fail_at(ps, v, "batch_size: a whole number 1..%d is expected, not \"%s\"",
                               PROG_CODES_BATCH_MAX, text);
            }
            codes->batch_size = (int32_t)x;
            sized = true;
        } else if (strcmp(key, "prefix") == 0) {
            size_t len = strlen(text);
            bool ok = len == v->data.scalar.length && len <= PROG_CODES_PREFIX_MAX;
            char *up = arena_strdup(ps->a, text);
            for (size_t i = 0; ok && i < len; i++) {
                ok = isalnum((unsigned char)up[i]) != 0;
                up[i] = (char)toupper((unsigned char)up[i]);
            }
            if (!ok) {
                return fail_at(ps, v, "prefix: 0..%d letters and digits are expected, not \"%s\"",
                               PROG_CODES_PREFIX_MAX, text);
            }
            codes->prefix = up;
        } else {
            return fail_at(ps, k, "unknown key \"%s\"; known here: batch_size prefix", key);
        }
    }
    if (!sized) {
        return fail_at(ps, n, "codes: batch_size is required");
    }
    return true;
}

static bool parse_section(parse_t *ps, int si, const yaml_node_t *n, prog_part_t *part) {
    const prog_section_t *s = &prog_sections[si];
    part->given = true;
    part->line = (int)n->start_mark.line + 1;
    part->column = (int)n->start_mark.column + 1;
    if (!s->is_list) {
        part->items = arena_alloc(ps->a, sizeof *part->items);
        part->n_items = 1;
        part->items[0].line = part->line;
        part->items[0].column = part->column;
        return parse_message(ps, n, s->item, s->skip, &part->items[0].msg, &part->items[0].present);
    }
    if (n->type != YAML_SEQUENCE_NODE) {
        return fail_at(ps, n, "%s: a list is expected", s->key);
    }
    size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    part->items = arena_alloc(ps->a, (count ? count : 1) * sizeof *part->items);
    part->n_items = count;
    const ProtobufCFieldDescriptor *kf =
        s->key_field ? protobuf_c_message_descriptor_get_field_by_name(s->item, s->key_field)
                     : NULL;
    for (size_t i = 0; i < count; i++) {
        yaml_node_t *e = yaml_document_get_node(ps->doc, n->data.sequence.items.start[i]);
        prog_item_t *it = &part->items[i];
        it->line = (int)e->start_mark.line + 1;
        it->column = (int)e->start_mark.column + 1;
        ps->codes_of = s->codes && e->type == YAML_MAPPING_NODE ? e : NULL;
        if (ps->codes_of != NULL && !parse_codes(ps, e, &it->codes)) {
            return false;
        }
        if (!parse_message(ps, e, s->item, s->skip, &it->msg, &it->present)) {
            return false;
        }
        ps->codes_of = NULL;
        if (kf == NULL) {
            continue;
        }
        unsigned kidx = (unsigned)(kf - s->item->fields);
        if ((it->present & (1ULL << kidx)) == 0) {
            return fail_at(ps, e, "%s: every item needs its %s", s->key, s->key_field);
        }
        const char *key = item_key_text(ps->a, s, it->msg);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(key, item_key_text(ps->a, s, part->items[j].msg)) == 0) {
                return fail_at(ps, e, "%s: %s %s appears twice (also line %d)", s->key,
                               s->key_field, key, part->items[j].line);
            }
        }
    }
    return true;
}

static bool parse_root(parse_t *ps, const yaml_node_t *root, prog_t *p) {
    if (root == NULL) {
        fprintf(stderr, "%s:1:1: the file is empty\n", ps->path);
        return false;
    }
    if (root->type != YAML_MAPPING_NODE) {
        return fail_at(ps, root, "a programme is a mapping of sections (merchant, settings, ...)");
    }
    uint64_t seen = 0;
    for (yaml_node_pair_t *pair = root->data.mapping.pairs.start;
         pair < root->data.mapping.pairs.top; pair++) {
        yaml_node_t *k = yaml_document_get_node(ps->doc, pair->key);
        yaml_node_t *v = yaml_document_get_node(ps->doc, pair->value);
        const char *key = k->type == YAML_SCALAR_NODE ? scalar(k) : "";
        int si = -1;
        if (strcmp(key, "merchant") == 0) {
            si = 63;
        } else {
            si = prog_section_index(key);
        }
        if (si < 0) {
            fprintf(stderr, "%s:%zu:%zu: unknown section \"%s\"; known: merchant", ps->path,
                    k->start_mark.line + 1, k->start_mark.column + 1, key);
            for (int i = 0; i < prog_n_sections; i++) {
                fprintf(stderr, " %s", prog_sections[i].key);
            }
            fputc('\n', stderr);
            return false;
        }
        if (seen & (1ULL << si)) {
            return fail_at(ps, k, "%s is given twice", key);
        }
        seen |= 1ULL << si;
        if (si == 63) {
            if (v->type != YAML_SCALAR_NODE || v->data.scalar.length == 0) {
                return fail_at(ps, v, "merchant: a merchant id is expected");
            }
            p->merchant = arena_strdup(ps->a, scalar(v));
        } else if (!parse_section(ps, si, v, &p->parts[si])) {
            return false;
        }
    }
    return true;
}

bool prog_parse_file(arena_t *a, const char *path, prog_t *p) {
    memset(p, 0, sizeof *p);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "%s: cannot open: %s\n", path, strerror(errno));
        return false;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        fclose(f);
        fprintf(stderr, "%s: out of memory\n", path);
        return false;
    }
    yaml_parser_set_input_file(&parser, f);
    bool ok = false;
    if (!yaml_parser_load(&parser, &doc)) {
        fprintf(stderr, "%s:%zu:%zu: %s%s%s\n", path, parser.problem_mark.line + 1,
                parser.problem_mark.column + 1, parser.problem ? parser.problem : "not YAML",
                parser.context ? " " : "", parser.context ? parser.context : "");
    } else {
        parse_t ps = {.a = a, .path = path, .doc = &doc};
        ok = parse_root(&ps, yaml_document_get_root_node(&doc), p);
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    fclose(f);
    return ok;
}
