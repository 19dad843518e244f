/* ctl_programme.c -- `loyaltyctl programme plan|apply|export`: a merchant's programme as a file.
 * Export reads every section through the gateway (Gateway.Relay for the participants, the
 * gateway's own RPCs for campaigns, its settings and the merchant settings record) and prints
 * it as YAML. Plan parses the
 * file, reads the same state and lists, field by field, what differs from what the file gives
 * (a field the file leaves out is not managed). Apply prints the same and writes only that:
 * Update* with an update_mask naming exactly the changed fields, Set* with the current value
 * and the changes, Create* for what is new; everything is checked before the first write, and
 * when a service refuses it says what was and was not applied (a re-run plans just the rest). */
#include "ctl_programme.h"
#include "pb.h"
#include "status.h"

#include "google/protobuf/field_mask.pb-c.h"
#include "ids.h"
#include "loyalty/v1/common.pb-c.h"
#include "loyalty/v1/gateway.pb-c.h"
#include "loyalty/v1/promo.pb-c.h"
#include <assert.h>

#include <stdio.h>
#include <string.h>

#define PROG_PAGE_SIZE 200
#define PROG_PAGES_MAX 100
#define PROG_ACTIONS_MAX 512
#define PROG_CODES_PAGE_SIZE 500  /* the most a page holds (lib/cursor.h) */
#define PROG_CODES_PAGES_MAX 2000 /* promo-svc keeps at most 1,000,000 codes per promotion */
#define PROG_CODE_RANDOM_CHARS 12 /* after the prefix (promo.proto) */

typedef enum { ACT_CREATE, ACT_UPDATE, ACT_SET_LIST, ACT_CODES } act_kind_t;

/* One change apply makes: an item created or changed (or a whole list set, or a promotion's
 * batch of codes generated). */
typedef struct prog_action {
    int section;
    act_kind_t kind;
    const prog_item_t *want; /* the file's item */
    prog_item_t *have;       /* the services' item (NULL: create) */
    uint64_t changed;        /* the fields that differ (update) or are given (create) */
    const char *label;       /* "tiers[\"Gold\"]" */
} prog_action_t;

#define PROG_APPLY_ROUNDS 3

typedef struct prog_run {
    ctl_t *c;
    const ctl_command_t *cmd;
    const char *merchant;
    const char *path;
    prog_t want, have;
    prog_action_t actions[PROG_ACTIONS_MAX];
    int n_actions;
    int last_code; /* the gRPC code of the last refused call (10: ABORTED) */
} prog_run_t;

/* ---- calls ---- */

/* Calls `method` of section s's service: relayed by the gateway for a participant's. */
static int section_call(prog_run_t *r, const prog_section_t *s, const char *method,
                        const ProtobufCMessage *req, ProtobufCMessage **resp) {
    r->last_code = 0;
    if (s->on_gateway) {
        return ctl_call_on(r->c, r->cmd, s->service, method, req, resp, &r->last_code);
    }
    const ProtobufCMethodDescriptor *m =
        protobuf_c_service_descriptor_get_method_by_name(s->service, method);
    assert(m != NULL);
    Loyalty__V1__GatewayRelayRequest relay = LOYALTY__V1__GATEWAY_RELAY_REQUEST__INIT;
    relay.merchant_id = (char *)r->merchant;
    relay.service = (char *)s->service->name;
    relay.method = (char *)method;
    relay.request.data = pb_pack_arena(&r->c->arena, req, &relay.request.len);
    ProtobufCMessage *out = NULL;
    int rc = ctl_call(r->c, r->cmd, "Relay", &relay.base, &out, &r->last_code);
    if (rc != CTL_EXIT_OK) {
        return rc;
    }
    const Loyalty__V1__GatewayRelayResponse *rr = (const void *)out;
    *resp = pb_unpack_arena(&r->c->arena, m->output, rr->response.data, rr->response.len);
    if (*resp == NULL) {
        fprintf(stderr,
                "loyaltyctl %s: the gateway relayed an answer to %s/%s that does not "
                "decode\n",
                r->cmd->name, s->service->name, method);
        return CTL_EXIT_REFUSED;
    }
    return CTL_EXIT_OK;
}

/* A new request of `method` of s, naming the merchant (and a new idempotency key if it takes
 * one). */
static ProtobufCMessage *new_request(prog_run_t *r, const prog_section_t *s, const char *method) {
    const ProtobufCMethodDescriptor *m =
        protobuf_c_service_descriptor_get_method_by_name(s->service, method);
    assert(m != NULL);
    ProtobufCMessage *req = pb_new(&r->c->arena, m->input);
    prog_set_string(req, "merchant_id", r->merchant);
    char *key = arena_alloc(&r->c->arena, ID_MAX);
    id_generate("prog", key);
    prog_set_string(req, "idempotency_key", key);
    return req;
}

/* ---- the services' state ---- */

static const ProtobufCFieldDescriptor *field_of(const ProtobufCMessageDescriptor *d,
                                                const char *name) {
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, name);
    assert(f != NULL);
    return f;
}

static int64_t int64_field(const ProtobufCMessage *m, const char *name) {
    const ProtobufCFieldDescriptor *f = field_of(m->descriptor, name);
    assert(f->type == PROTOBUF_C_TYPE_INT64);
    return *(const int64_t *)prog_field_ptr(m, f);
}

/* The text that identifies a list item: its key field as the file writes it. */
static const char *item_key(arena_t *a, const prog_section_t *s, const ProtobufCMessage *m) {
    return prog_value_text(a, m, field_of(s->item, s->key_field));
}

static const char *item_id(const prog_section_t *s, const ProtobufCMessage *m) {
    return pb_get_string_field(m, s->id_field);
}

/* Whether an item is live (its active/enabled flag, when it has one): of several items with the
 * same name, the programme manages a live one. */
static bool item_live(const ProtobufCMessage *m) {
    for (int i = 0; i < 2; i++) {
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(
            m->descriptor, i ? "enabled" : "active");
        if (f != NULL && f->type == PROTOBUF_C_TYPE_BOOL) {
            return *(const protobuf_c_boolean *)prog_field_ptr(m, f);
        }
    }
    return true;
}

/* Adds the items of one answer page to part, keeping one item per key. */
static void add_items(prog_run_t *r, const prog_section_t *s, prog_part_t *part,
                      ProtobufCMessage *const *items, size_t n) {
    arena_t *a = &r->c->arena;
    prog_item_t *grown = arena_alloc(a, (part->n_items + n + 1) * sizeof *grown);
    if (part->n_items) {
        memcpy(grown, part->items, part->n_items * sizeof *grown);
    }
    part->items = grown;
    for (size_t i = 0; i < n; i++) {
        if (s->key_field != NULL) {
            const char *key = item_key(a, s, items[i]);
            size_t k = 0;
            while (k < part->n_items && strcmp(item_key(a, s, part->items[k].msg), key) != 0) {
                k++;
            }
            if (k < part->n_items) {
                fprintf(stderr,
                        "loyaltyctl %s: note: several %s have %s %s; the programme "
                        "manages %s one\n",
                        r->cmd->name, s->key, s->key_field, key,
                        s->id_field ? "the newest live" : "the first");
                if (!item_live(part->items[k].msg) && item_live(items[i])) {
                    part->items[k].msg = items[i];
                }
                continue;
            }
        }
        memset(&part->items[part->n_items], 0, sizeof part->items[0]);
        part->items[part->n_items++].msg = items[i];
    }
}

static int read_section(prog_run_t *r, int si) {
    const prog_section_t *s = &prog_sections[si];
    prog_part_t *part = &r->have.parts[si];
    part->given = true;
    char *cursor = "";
    for (int page = 0; page < PROG_PAGES_MAX; page++) {
        ProtobufCMessage *req = pb_new(&r->c->arena, s->read_req);
        prog_set_string(req, "merchant_id", r->merchant);
        if (s->read_flag) {
            prog_set_bool(req, s->read_flag, true);
        }
        bool paged = protobuf_c_message_descriptor_get_field_by_name(s->read_req, "page") != NULL;
        if (paged) {
            Loyalty__V1__PageRequest *pr =
                pb_new(&r->c->arena, &loyalty__v1__page_request__descriptor);
            pr->page_size = PROG_PAGE_SIZE;
            pr->cursor = cursor;
            prog_set_message(req, "page", &pr->base);
        }
        ProtobufCMessage *resp = NULL;
        int rc = section_call(r, s, s->read_method, req, &resp);
        if (rc != CTL_EXIT_OK) {
            return rc;
        }
        const ProtobufCFieldDescriptor *f = field_of(resp->descriptor, s->read_field);
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            add_items(r, s, part, *(ProtobufCMessage * *const *)prog_field_ptr(resp, f),
                      prog_repeated_count(resp, f));
        } else {
            ProtobufCMessage *m = *(ProtobufCMessage **)prog_field_ptr(resp, f);
            if (m == NULL) {
                m = pb_new(&r->c->arena, s->item);
            }
            add_items(r, s, part, &m, 1);
        }
        ProtobufCMessage *info = paged ? prog_get_message(resp, "page_info") : NULL;
        const char *next = info ? pb_get_string_field(info, "next_cursor") : NULL;
        if (next == NULL || next[0] == '\0') {
            return CTL_EXIT_OK;
        }
        cursor = (char *)next;
    }
    fprintf(stderr, "loyaltyctl %s: %s: more than %d pages\n", r->cmd->name, s->key,
            PROG_PAGES_MAX);
    return CTL_EXIT_REFUSED;
}

/* The id of the item of section `target` whose key is `name` (in `part`), or NULL. */
static const char *id_of_name(const prog_part_t *part, const prog_section_t *t, const char *name) {
    for (size_t i = 0; i < part->n_items; i++) {
        const char *key = pb_get_string_field(part->items[i].msg, t->key_field);
        if (key != NULL && strcmp(key, name) == 0) {
            return item_id(t, part->items[i].msg);
        }
    }
    return NULL;
}

static const char *name_of_id(const prog_part_t *part, const prog_section_t *t, const char *id) {
    for (size_t i = 0; i < part->n_items; i++) {
        const char *have = item_id(t, part->items[i].msg);
        if (have != NULL && strcmp(have, id) == 0) {
            return pb_get_string_field(part->items[i].msg, t->key_field);
        }
    }
    return NULL;
}

/* Rewrites the ref fields of m (and its sub-messages): ids to names (to_names), or names to
 * ids. A name with no item fails (*missing gets it); an id with no item stays as it is. */
static bool translate(prog_run_t *r, ProtobufCMessage *m, bool to_names, const char **missing) {
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        bool rep = f->label == PROTOBUF_C_LABEL_REPEATED;
        if (!rep && !prog_field_set(m, f)) {
            continue; /* another member of its oneof: the storage is that one's */
        }
        size_t n = rep ? prog_repeated_count(m, f) : 1;
        if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
            ProtobufCMessage **xs = rep ? *(ProtobufCMessage ***)prog_field_ptr(m, f)
                                        : (ProtobufCMessage **)prog_field_ptr(m, f);
            for (size_t k = 0; k < n; k++) {
                if (xs[k] != NULL && !translate(r, xs[k], to_names, missing)) {
                    return false;
                }
            }
            continue;
        }
        const prog_ref_t *ref = prog_ref_of(d, f);
        if (ref == NULL) {
            continue;
        }
        int ti = prog_section_index(ref->target);
        const prog_section_t *t = &prog_sections[ti];
        char **xs = rep ? *(char ***)prog_field_ptr(m, f) : (char **)prog_field_ptr(m, f);
        for (size_t k = 0; k < n; k++) {
            if (xs[k] == NULL || xs[k][0] == '\0') {
                continue;
            }
            const char *to = to_names ? name_of_id(&r->have.parts[ti], t, xs[k])
                                      : id_of_name(&r->have.parts[ti], t, xs[k]);
            if (to == NULL && !to_names) {
                *missing = xs[k];
                return false;
            }
            if (to != NULL) {
                xs[k] = (char *)to;
            }
        }
    }
    return true;
}

/* Whether item x comes before y in an export: by the section's order field, else by key (the
 * services list some items newest first, and ids are random: no order to rely on). */
static bool item_before(arena_t *a, const prog_section_t *s, const ProtobufCMessage *x,
                        const ProtobufCMessage *y) {
    if (s->order_field != NULL) {
        const ProtobufCFieldDescriptor *f = field_of(s->item, s->order_field);
        int32_t vx = *(const int32_t *)prog_field_ptr(x, f);
        int32_t vy = *(const int32_t *)prog_field_ptr(y, f);
        if (vx != vy) {
            return vx < vy;
        }
    }
    return strcmp(item_key(a, s, x), item_key(a, s, y)) < 0;
}

static void sort_items(arena_t *a, const prog_section_t *s, prog_part_t *part) {
    for (size_t i = 1; i < part->n_items; i++) {
        prog_item_t it = part->items[i];
        size_t j = i;
        while (j > 0 && item_before(a, s, it.msg, part->items[j - 1].msg)) {
            part->items[j] = part->items[j - 1];
            j--;
        }
        part->items[j] = it;
    }
}

/* The unique codes of promotion `it` (code kind UNIQUE): their number and the prefix of the
 * first, as one batch (the export shows the batch, not the codes). */
static int read_codes(prog_run_t *r, const prog_section_t *s, prog_item_t *it) {
    const Loyalty__V1__Promotion *p = (const void *)it->msg;
    if (p->code_kind != LOYALTY__V1__PROMO_CODE_KIND__PROMO_CODE_KIND_UNIQUE) {
        return CTL_EXIT_OK;
    }
    char *cursor = "";
    int64_t count = 0;
    for (int page = 0; page < PROG_CODES_PAGES_MAX; page++) {
        Loyalty__V1__PromoListPromoCodesRequest req =
            LOYALTY__V1__PROMO_LIST_PROMO_CODES_REQUEST__INIT;
        Loyalty__V1__PageRequest pr = LOYALTY__V1__PAGE_REQUEST__INIT;
        req.merchant_id = (char *)r->merchant;
        req.promotion_id = p->id;
        pr.page_size = PROG_CODES_PAGE_SIZE;
        pr.cursor = cursor;
        req.page = &pr;
        ProtobufCMessage *out = NULL;
        int rc = section_call(r, s, "ListPromoCodes", &req.base, &out);
        if (rc != CTL_EXIT_OK) {
            return rc;
        }
        const Loyalty__V1__PromoListPromoCodesResponse *resp = (const void *)out;
        if (count == 0 && resp->n_codes > 0) {
            const char *code = resp->codes[0]->code;
            size_t len = strlen(code);
            size_t n = len > PROG_CODE_RANDOM_CHARS ? len - PROG_CODE_RANDOM_CHARS : 0;
            it->codes.prefix = arena_strndup(&r->c->arena, code, n);
        }
        count += (int64_t)resp->n_codes;
        const char *next = resp->page_info ? resp->page_info->next_cursor : NULL;
        if (next == NULL || next[0] == '\0') {
            it->codes.given = count > 0;
            it->codes.batch_size = (int32_t)count;
            return CTL_EXIT_OK;
        }
        cursor = (char *)next;
    }
    fprintf(stderr, "loyaltyctl %s: promotion %s: more than %d pages of codes\n", r->cmd->name,
            p->name, PROG_CODES_PAGES_MAX);
    return CTL_EXIT_REFUSED;
}

static int read_state(prog_run_t *r) {
    memset(&r->have, 0, sizeof r->have);
    for (int i = 0; i < prog_n_sections; i++) {
        int rc = read_section(r, i);
        if (rc != CTL_EXIT_OK) {
            return rc;
        }
        if (prog_sections[i].key_field != NULL) {
            sort_items(&r->c->arena, &prog_sections[i], &r->have.parts[i]);
        }
        for (size_t k = 0; prog_sections[i].codes && k < r->have.parts[i].n_items; k++) {
            rc = read_codes(r, &prog_sections[i], &r->have.parts[i].items[k]);
            if (rc != CTL_EXIT_OK) {
                return rc;
            }
        }
    }
    /* Refs as names, on copies (the ids of the items themselves stay). */
    for (int i = 0; i < prog_n_sections; i++) {
        prog_part_t *part = &r->have.parts[i];
        for (size_t k = 0; k < part->n_items; k++) {
            part->items[k].msg = prog_copy(&r->c->arena, part->items[k].msg);
        }
    }
    for (int i = 0; i < prog_n_sections; i++) {
        prog_part_t *part = &r->have.parts[i];
        for (size_t k = 0; k < part->n_items; k++) {
            const char *missing = NULL;
            translate(r, part->items[k].msg, true, &missing);
        }
    }
    /* A record never set (version 0) is not exported: its defaults are nobody's choice, and a
     * file without `settings` leaves it unset. */
    prog_part_t *sp = &r->have.parts[prog_section_index("settings")];
    sp->given = int64_field(sp->items[0].msg, "version") != 0;
    return CTL_EXIT_OK;
}

/* ---- planning ---- */

static int field_index(const ProtobufCMessageDescriptor *d, const char *name) {
    return (int)(field_of(d, name) - d->fields);
}

static uint64_t changed_fields(const ProtobufCMessage *have, const prog_item_t *want) {
    uint64_t changed = 0;
    const ProtobufCMessageDescriptor *d = want->msg->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        if ((want->present & (1ULL << i)) && !prog_field_equal(have, want->msg, &d->fields[i])) {
            changed |= 1ULL << i;
        }
    }
    return changed;
}

static bool add_action(prog_run_t *r, int si, act_kind_t kind, const prog_item_t *want,
                       prog_item_t *have, uint64_t changed, const char *label) {
    if (r->n_actions >= PROG_ACTIONS_MAX) {
        fprintf(stderr, "%s: more than %d changes at once; apply it in parts\n", r->path,
                PROG_ACTIONS_MAX);
        return false;
    }
    r->actions[r->n_actions++] = (prog_action_t){.section = si,
                                                 .kind = kind,
                                                 .want = want,
                                                 .have = have,
                                                 .changed = changed,
                                                 .label = label};
    return true;
}

/* Whether two lists of messages are the same. */
static bool lists_equal(arena_t *a, const prog_part_t *x, const prog_part_t *y) {
    if (x->n_items != y->n_items) {
        return false;
    }
    for (size_t i = 0; i < x->n_items; i++) {
        size_t lx = 0, ly = 0;
        unsigned char *bx = pb_pack_arena(a, x->items[i].msg, &lx);
        unsigned char *by = pb_pack_arena(a, y->items[i].msg, &ly);
        if (lx != ly || memcmp(bx, by, lx) != 0) {
            return false;
        }
    }
    return true;
}

/* Every name the file's refs use names an item of the file or of the services. */
static bool check_refs(prog_run_t *r, const prog_section_t *s, const prog_item_t *it,
                       const ProtobufCMessage *m) {
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        bool rep = f->label == PROTOBUF_C_LABEL_REPEATED;
        if (!rep && !prog_field_set(m, f)) {
            continue; /* another member of its oneof: the storage is that one's */
        }
        size_t n = rep ? prog_repeated_count(m, f) : 1;
        if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
            ProtobufCMessage *const *xs = rep ? *(ProtobufCMessage * *const *)prog_field_ptr(m, f)
                                              : (ProtobufCMessage *const *)prog_field_ptr(m, f);
            for (size_t k = 0; k < n; k++) {
                if (xs[k] != NULL && !check_refs(r, s, it, xs[k])) {
                    return false;
                }
            }
            continue;
        }
        const prog_ref_t *ref = prog_ref_of(d, f);
        if (ref == NULL) {
            continue;
        }
        int ti = prog_section_index(ref->target);
        const prog_section_t *t = &prog_sections[ti];
        char *const *xs =
            rep ? *(char **const *)prog_field_ptr(m, f) : (char *const *)prog_field_ptr(m, f);
        for (size_t k = 0; k < n; k++) {
            if (xs[k] == NULL || xs[k][0] == '\0') {
                continue;
            }
            bool known = id_of_name(&r->have.parts[ti], t, xs[k]) != NULL;
            const prog_part_t *wp = &r->want.parts[ti];
            for (size_t j = 0; !known && j < wp->n_items; j++) {
                const char *key = pb_get_string_field(wp->items[j].msg, t->key_field);
                known = key != NULL && strcmp(key, xs[k]) == 0;
            }
            if (!known) {
                fprintf(stderr,
                        "%s:%d:%d: %s: %s \"%s\" is neither in the file's %s nor the "
                        "merchant's\n",
                        r->path, it->line, it->column, s->key, ref->yaml_name, xs[k], t->key);
                return false;
            }
        }
    }
    return true;
}

/* The merchant record's first update (version 0) must name time_zone (the gateway pushes it to
 * the services; a default would overwrite what each had): the file's time zone is written even
 * when it is the default "UTC", and a first update without one is refused here. */
static bool first_settings(prog_run_t *r, const prog_item_t *w, uint64_t *changed) {
    const ProtobufCMessage *have = r->have.parts[prog_section_index("settings")].items[0].msg;
    if (int64_field(have, "version") != 0) {
        return true;
    }
    uint64_t tz = 1ULL << field_index(w->msg->descriptor, "time_zone");
    if (w->present & tz) {
        *changed |= tz;
        return true;
    }
    if (*changed == 0) {
        return true;
    }
    fprintf(stderr,
            "%s:%d:%d: settings: merchant %s has no settings record yet; its first one needs "
            "time_zone too\n",
            r->path, w->line, w->column, r->merchant);
    return false;
}

/* Whether the file's `codes:` of promotion w (h: the merchant's, or NULL) asks for a batch:
 * 1 yes (the promotion has no codes), 0 no (it has them, as the file says), -1 the file asks
 * for what apply cannot do (reported as FILE:LINE:COLUMN). One batch only: codes once
 * generated are not generated again, nor changed. */
static int plan_codes(prog_run_t *r, const prog_section_t *s, const prog_item_t *w,
                      const prog_item_t *h, const char *key) {
    const ProtobufCFieldDescriptor *kind = field_of(s->item, "code_kind");
    const ProtobufCFieldDescriptor *trigger = field_of(s->item, "trigger");
    const ProtobufCMessage *kind_from =
        (w->present & (1ULL << (kind - s->item->fields))) || h == NULL ? w->msg : h->msg;
    const ProtobufCMessage *trigger_from =
        (w->present & (1ULL << (trigger - s->item->fields))) || h == NULL ? w->msg : h->msg;
    if (*(const int *)prog_field_ptr(kind_from, kind) !=
            LOYALTY__V1__PROMO_CODE_KIND__PROMO_CODE_KIND_UNIQUE ||
        *(const int *)prog_field_ptr(trigger_from, trigger) !=
            LOYALTY__V1__PROMO_TRIGGER__PROMO_TRIGGER_CODE) {
        fprintf(stderr,
                "%s:%d:%d: %s[%s].codes: only a promotion with trigger CODE and code_kind "
                "UNIQUE has codes\n",
                r->path, w->codes.line, w->codes.column, s->key, key);
        return -1;
    }
    if (h == NULL || !h->codes.given) {
        return 1;
    }
    if (h->codes.batch_size == w->codes.batch_size &&
        strcmp(h->codes.prefix, w->codes.prefix) == 0) {
        return 0;
    }
    fprintf(stderr,
            "%s:%d:%d: %s[%s].codes: the promotion has its codes (%d, prefix \"%s\"); a batch "
            "is generated once and cannot change (batch_size %d, prefix \"%s\" in the file)\n",
            r->path, w->codes.line, w->codes.column, s->key, key, (int)h->codes.batch_size,
            h->codes.prefix, (int)w->codes.batch_size, w->codes.prefix);
    return -1;
}

/* Compares the file with the services' state and lists the actions. false: the file asks for
 * something apply cannot do (reported as FILE:LINE:COLUMN). */
static bool plan(prog_run_t *r) {
    arena_t *a = &r->c->arena;
    bool ok = true;
    r->n_actions = 0; /* planned again from scratch after a concurrent change */
    for (int si = 0; si < prog_n_sections; si++) {
        const prog_section_t *s = &prog_sections[si];
        const prog_part_t *wp = &r->want.parts[si];
        prog_part_t *hp = &r->have.parts[si];
        if (!wp->given) {
            continue;
        }
        for (size_t k = 0; k < wp->n_items; k++) {
            ok = ok && check_refs(r, s, &wp->items[k], wp->items[k].msg);
        }
        if (!s->is_list) {
            const prog_item_t *w = &wp->items[0];
            uint64_t ch = changed_fields(hp->items[0].msg, w);
            if (strcmp(s->key, "settings") == 0 && !first_settings(r, w, &ch)) {
                ok = false;
                continue;
            }
            if (ch && !add_action(r, si, ACT_UPDATE, w, &hp->items[0], ch, s->key)) {
                return false;
            }
            continue;
        }
        if (s->whole_list) {
            if (!lists_equal(a, wp, hp) &&
                !add_action(r, si, ACT_SET_LIST, NULL, NULL, 0, s->key)) {
                return false;
            }
            continue;
        }
        for (size_t k = 0; k < wp->n_items; k++) {
            const prog_item_t *w = &wp->items[k];
            const char *key = item_key(a, s, w->msg);
            const char *label = arena_printf(a, "%s[%s]", s->key, key);
            prog_item_t *h = NULL;
            for (size_t j = 0; j < hp->n_items && h == NULL; j++) {
                if (strcmp(item_key(a, s, hp->items[j].msg), key) == 0) {
                    h = &hp->items[j];
                }
            }
            if (h != NULL && s->write == PROG_WRITE_END && item_live(w->msg) &&
                !item_live(h->msg)) {
                h = NULL; /* an ended campaign cannot start again: a new one */
            }
            if (h == NULL) {
                if (!add_action(r, si, ACT_CREATE, w, NULL, w->present, label)) {
                    return false;
                }
                continue;
            }
            uint64_t ch = changed_fields(h->msg, w);
            for (unsigned i = 0; i < s->item->n_fields; i++) {
                if ((ch & (1ULL << i)) && prog_in_list(s->fixed, s->item->fields[i].name)) {
                    fprintf(stderr,
                            "%s:%d:%d: %s.%s cannot change once created (%s -> %s); "
                            "give it a new %s to create another\n",
                            r->path, w->line, w->column, label, s->item->fields[i].name,
                            prog_value_text(a, h->msg, &s->item->fields[i]),
                            prog_value_text(a, w->msg, &s->item->fields[i]), s->key_field);
                    ok = false;
                }
            }
            if (ch && !add_action(r, si, ACT_UPDATE, w, h, ch, label)) {
                return false;
            }
        }
        for (size_t k = 0; s->codes && k < wp->n_items; k++) {
            const prog_item_t *w = &wp->items[k];
            if (!w->codes.given) {
                continue;
            }
            const char *key = item_key(a, s, w->msg);
            prog_item_t *h = NULL;
            for (size_t j = 0; j < hp->n_items && h == NULL; j++) {
                if (strcmp(item_key(a, s, hp->items[j].msg), key) == 0) {
                    h = &hp->items[j];
                }
            }
            int verdict = plan_codes(r, s, w, h, key);
            if (verdict < 0) {
                ok = false;
            } else if (verdict > 0 && !add_action(r, si, ACT_CODES, w, h, 0,
                                                  arena_printf(a, "%s[%s].codes", s->key, key))) {
                return false;
            }
        }
    }
    return ok;
}

/* Prints one action as the diff shows it. */
static void print_action(prog_run_t *r, const prog_action_t *x) {
    arena_t *a = &r->c->arena;
    const prog_section_t *s = &prog_sections[x->section];
    if (x->kind == ACT_SET_LIST) {
        printf("~ %s:\n", s->key);
        const prog_part_t *parts[2] = {&r->have.parts[x->section], &r->want.parts[x->section]};
        for (int side = 0; side < 2; side++) {
            printf("    %s:", side ? "to" : "from");
            if (parts[side]->n_items == 0) {
                printf(" []");
            }
            printf("\n");
            for (size_t k = 0; k < parts[side]->n_items; k++) {
                const ProtobufCMessage *m = parts[side]->items[k].msg;
                printf("      -");
                for (unsigned i = 0; i < m->descriptor->n_fields; i++) {
                    const ProtobufCFieldDescriptor *f = &m->descriptor->fields[i];
                    printf(" %s: %s%s", prog_yaml_name(m->descriptor, f), prog_value_text(a, m, f),
                           i + 1 < m->descriptor->n_fields ? "," : "");
                }
                printf("\n");
            }
        }
        return;
    }
    if (x->kind == ACT_CODES) {
        printf("+ %s: a batch of %d unique codes, prefix \"%s\"\n", x->label,
               (int)x->want->codes.batch_size, x->want->codes.prefix);
        return;
    }
    const ProtobufCMessageDescriptor *d = s->item;
    if (x->kind == ACT_CREATE) {
        printf("+ %s\n", x->label);
    }
    for (unsigned i = 0; i < d->n_fields; i++) {
        if ((x->changed & (1ULL << i)) == 0) {
            continue;
        }
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (x->kind == ACT_CREATE) {
            printf("    %s: %s\n", prog_yaml_name(d, f), prog_value_text(a, x->want->msg, f));
        } else {
            printf("~ %s.%s: %s -> %s\n", x->label, prog_yaml_name(d, f),
                   prog_value_text(a, x->have->msg, f), prog_value_text(a, x->want->msg, f));
        }
    }
}

static void print_plan(prog_run_t *r) {
    int creates = 0;
    for (int i = 0; i < r->n_actions; i++) {
        print_action(r, &r->actions[i]);
        creates += r->actions[i].kind == ACT_CREATE || r->actions[i].kind == ACT_CODES;
    }
    if (r->n_actions == 0) {
        printf("No changes: merchant %s matches %s.\n", r->merchant, r->path);
    } else {
        printf("%d change%s for merchant %s: %d to create, %d to change.\n", r->n_actions,
               r->n_actions == 1 ? "" : "s", r->merchant, creates, r->n_actions - creates);
    }
}

/* ---- applying ---- */

/* A copy of the item to send: refs as ids. */
static ProtobufCMessage *outgoing(prog_run_t *r, const ProtobufCMessage *m) {
    ProtobufCMessage *copy = prog_copy(&r->c->arena, m);
    const char *missing = NULL;
    bool ok = translate(r, copy, false, &missing);
    assert(ok); /* check_refs saw every name, and what the file creates comes first */
    (void)ok;
    return copy;
}

static Google__Protobuf__FieldMask *mask_of(arena_t *a, const ProtobufCMessageDescriptor *d,
                                            uint64_t fields) {
    Google__Protobuf__FieldMask *mask = pb_new(a, &google__protobuf__field_mask__descriptor);
    mask->paths = arena_alloc(a, d->n_fields * sizeof *mask->paths);
    for (unsigned i = 0; i < d->n_fields; i++) {
        if (fields & (1ULL << i)) {
            mask->paths[mask->n_paths++] = (char *)d->fields[i].name;
        }
    }
    return mask;
}

/* Sets the request's expected_version to the item's version, when both have one: a change by
 * someone else meanwhile is refused rather than overwritten. */
static void expect_version(ProtobufCMessage *req, const ProtobufCMessage *have) {
    const ProtobufCFieldDescriptor *ev =
        protobuf_c_message_descriptor_get_field_by_name(req->descriptor, "expected_version");
    const ProtobufCFieldDescriptor *v =
        protobuf_c_message_descriptor_get_field_by_name(have->descriptor, "version");
    if (ev == NULL || v == NULL || ev->type != PROTOBUF_C_TYPE_INT64 ||
        v->type != PROTOBUF_C_TYPE_INT64 || (ev->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) == 0) {
        return;
    }
    *(int64_t *)prog_field_ptr(req, ev) = *(const int64_t *)prog_field_ptr(have, v);
    *(uint32_t *)((char *)req + ev->quantifier_offset) = ev->id;
}

/* Sets the toggle field (a promotion's status) of `have` to want's, by its own call. */
static int write_toggle(prog_run_t *r, const prog_section_t *s, const prog_item_t *have,
                        const ProtobufCMessage *want) {
    const ProtobufCFieldDescriptor *f = field_of(s->item, s->toggle_field);
    bool off = *(const int *)prog_field_ptr(want, f) == s->toggle_off_value;
    const char *method = off ? s->toggle_off_method : s->toggle_on_method;
    ProtobufCMessage *req = new_request(r, s, method);
    prog_set_string(req, s->toggle_id_field, item_id(s, have->msg));
    ProtobufCMessage *resp = NULL;
    return section_call(r, s, method, req, &resp);
}

/* Writes fields `changed` of `want` onto the existing item `have`. */
static int write_update(prog_run_t *r, const prog_section_t *s, prog_item_t *have,
                        const ProtobufCMessage *want, uint64_t changed) {
    arena_t *a = &r->c->arena;
    ProtobufCMessage *req = new_request(r, s, s->write_method);
    if (s->write_id_field) {
        prog_set_string(req, s->write_id_field, item_id(s, have->msg));
    }
    ProtobufCMessage *resp = NULL;
    if (s->toggle_field != NULL) {
        uint64_t bit = 1ULL << field_index(s->item, s->toggle_field);
        if (changed & bit) {
            int rc = write_toggle(r, s, have, want);
            if (rc != CTL_EXIT_OK) {
                return rc;
            }
            changed &= ~bit;
        }
        if (changed == 0) {
            return CTL_EXIT_OK;
        }
    }
    switch (s->write) {
    case PROG_WRITE_MASK: {
        ProtobufCMessage *item = outgoing(r, want);
        if (s->write_id_field == NULL && s->id_field != NULL) {
            prog_set_string(item, s->id_field, item_id(s, have->msg));
        }
        prog_set_message(req, s->write_item_field, item);
        prog_set_message(req, "update_mask", &mask_of(a, s->item, changed)->base);
        expect_version(req, have->msg);
        break;
    }
    case PROG_WRITE_REPLACE: {
        ProtobufCMessage *merged = prog_copy(a, have->msg);
        for (unsigned i = 0; i < s->item->n_fields; i++) {
            if (changed & (1ULL << i)) {
                prog_field_copy(merged, want, &s->item->fields[i]);
            }
        }
        prog_set_message(req, s->write_item_field, outgoing(r, merged));
        expect_version(req, have->msg);
        break;
    }
    case PROG_WRITE_ACTIVE:
        prog_set_bool(req, "active", item_live(want));
        break;
    case PROG_WRITE_END:
        break; /* only live -> ended comes here (plan) */
    }
    return section_call(r, s, s->write_method, req, &resp);
}

/* Copies field fs of src onto the same-named field of dst (a Create request that takes the
 * item's fields one by one). */
static void copy_by_name(ProtobufCMessage *dst, const ProtobufCMessage *src,
                         const ProtobufCFieldDescriptor *fs) {
    const ProtobufCFieldDescriptor *fd =
        protobuf_c_message_descriptor_get_field_by_name(dst->descriptor, fs->name);
    if (fd == NULL || fd->type != fs->type || fd->label != fs->label || !prog_field_set(src, fs) ||
        strcmp(fs->name, "merchant_id") == 0) {
        return;
    }
    if (fs->label == PROTOBUF_C_LABEL_REPEATED) {
        *(size_t *)((char *)dst + fd->quantifier_offset) = prog_repeated_count(src, fs);
    } else if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        *(uint32_t *)((char *)dst + fd->quantifier_offset) = fd->id;
    }
    memcpy(prog_field_ptr(dst, fd), prog_field_ptr(src, fs), pb_value_size(fs->type));
}

static int write_create(prog_run_t *r, const prog_section_t *s, const prog_item_t *want) {
    arena_t *a = &r->c->arena;
    prog_part_t *hp = &r->have.parts[(int)(s - prog_sections)];
    if (s->create_method == NULL) { /* Set* creates too */
        prog_item_t blank = {.msg = pb_new(a, s->item)};
        return write_update(r, s, &blank, want->msg, want->present);
    }
    ProtobufCMessage *req = new_request(r, s, s->create_method);
    ProtobufCMessage *item = outgoing(r, want->msg);
    if (s->create_field) {
        prog_set_message(req, s->create_field, item);
    } else {
        for (unsigned i = 0; i < s->item->n_fields; i++) {
            copy_by_name(req, item, &s->item->fields[i]);
        }
    }
    ProtobufCMessage *resp = NULL;
    int rc = section_call(r, s, s->create_method, req, &resp);
    if (rc != CTL_EXIT_OK) {
        return rc;
    }
    ProtobufCMessage *created = prog_copy(a, prog_get_message(resp, s->create_answer));
    const char *missing = NULL;
    translate(r, created, true, &missing);
    /* Known from now on: later refs find its id. */
    prog_item_t *grown = arena_alloc(a, (hp->n_items + 1) * sizeof *grown);
    if (hp->n_items) {
        memcpy(grown, hp->items, hp->n_items * sizeof *grown);
    }
    grown[hp->n_items] = (prog_item_t){.msg = created};
    hp->items = grown;
    prog_item_t *have = &hp->items[hp->n_items++];
    /* What a Create cannot say (a plan created disabled, a template paused): one more call. */
    uint64_t rest = changed_fields(created, want);
    if (rest == 0) {
        return CTL_EXIT_OK;
    }
    rc = write_update(r, s, have, want->msg, rest);
    if (rc != CTL_EXIT_OK) {
        fprintf(stderr, "loyaltyctl %s: %s[%s] was created; setting", r->cmd->name, s->key,
                item_key(a, s, want->msg));
        for (unsigned i = 0; i < s->item->n_fields; i++) {
            if (rest & (1ULL << i)) {
                fprintf(stderr, " %s", s->item->fields[i].name);
            }
        }
        fprintf(stderr, " after it was refused (a re-run plans just that)\n");
    }
    return rc;
}

static int write_list(prog_run_t *r, const prog_section_t *s) {
    const prog_part_t *wp = &r->want.parts[(int)(s - prog_sections)];
    ProtobufCMessage *req = new_request(r, s, s->write_method);
    const ProtobufCFieldDescriptor *f = field_of(req->descriptor, s->write_item_field);
    ProtobufCMessage **xs = arena_alloc(&r->c->arena, (wp->n_items + 1) * sizeof *xs);
    for (size_t k = 0; k < wp->n_items; k++) {
        xs[k] = outgoing(r, wp->items[k].msg);
    }
    *(size_t *)((char *)req + f->quantifier_offset) = wp->n_items;
    *(ProtobufCMessage ***)prog_field_ptr(req, f) = xs;
    ProtobufCMessage *resp = NULL;
    return section_call(r, s, s->write_method, req, &resp);
}

/* Generates the batch of codes the file gives for a promotion (created earlier in this run, or
 * the merchant's). */
static int write_codes(prog_run_t *r, const prog_section_t *s, const prog_item_t *want) {
    arena_t *a = &r->c->arena;
    const prog_part_t *hp = &r->have.parts[(int)(s - prog_sections)];
    const char *key = item_key(a, s, want->msg);
    const char *id = NULL;
    for (size_t j = 0; j < hp->n_items && id == NULL; j++) {
        if (strcmp(item_key(a, s, hp->items[j].msg), key) == 0) {
            id = item_id(s, hp->items[j].msg);
        }
    }
    assert(id != NULL); /* the promotion's create comes first */
    Loyalty__V1__PromoGeneratePromoCodesRequest *req =
        (void *)new_request(r, s, "GeneratePromoCodes");
    req->promotion_id = (char *)id;
    req->count = want->codes.batch_size;
    req->prefix = (char *)want->codes.prefix;
    ProtobufCMessage *resp = NULL;
    return section_call(r, s, "GeneratePromoCodes", &req->base, &resp);
}

/* Applies the plan's actions in order; *done gets how many were applied. */
static int apply(prog_run_t *r, int *done) {
    *done = 0;
    for (int i = 0; i < r->n_actions; i++) {
        prog_action_t *x = &r->actions[i];
        const prog_section_t *s = &prog_sections[x->section];
        int rc = CTL_EXIT_OK;
        switch (x->kind) {
        case ACT_CREATE:
            rc = write_create(r, s, x->want);
            break;
        case ACT_UPDATE:
            rc = write_update(r, s, x->have, x->want->msg, x->changed);
            break;
        case ACT_SET_LIST:
            rc = write_list(r, s);
            break;
        case ACT_CODES:
            rc = write_codes(r, s, x->want);
            break;
        }
        if (rc != CTL_EXIT_OK) {
            return rc;
        }
        *done = i + 1;
    }
    return CTL_EXIT_OK;
}

/* After a refusal: what was and was not applied, so that the operator knows where it stopped. */
static void print_refused(const prog_run_t *r, int done) {
    fprintf(stderr, "loyaltyctl %s: %s was refused (above); nothing after it was tried.\n",
            r->cmd->name, r->actions[done].label);
    fprintf(stderr, "applied (%d):", done);
    for (int k = 0; k < done; k++) {
        fprintf(stderr, " %s", r->actions[k].label);
    }
    fprintf(stderr, "%s\nnot applied (%d):", done ? "" : " nothing", r->n_actions - done);
    for (int k = done; k < r->n_actions; k++) {
        fprintf(stderr, " %s", r->actions[k].label);
    }
    fprintf(stderr, "\nFix the cause and run apply again: what was applied is not changed "
                    "again.\n");
}

/* ---- the commands ---- */

/* The programme is YAML (export) and a diff (plan, apply): no JSON form. */
static int refuse_json(const ctl_t *c, const ctl_command_t *cmd) {
    return c->json ? ctl_usage_error(cmd, "-o json is not offered: a programme is YAML") : 0;
}

static int plan_or_apply(ctl_t *c, const ctl_command_t *cmd, const ctl_args_t *a, bool write) {
    if (refuse_json(c, cmd) != 0) {
        return CTL_EXIT_USAGE;
    }
    prog_run_t *r = arena_alloc(&c->arena, sizeof *r);
    memset(r, 0, sizeof *r);
    r->c = c;
    r->cmd = cmd;
    r->path = a->file;
    if (!prog_parse_file(&c->arena, a->file, &r->want)) {
        return CTL_EXIT_USAGE;
    }
    r->merchant = a->merchant ? a->merchant : r->want.merchant;
    if (r->merchant == NULL || r->merchant[0] == '\0') {
        return ctl_usage_error(cmd, "no merchant: give --merchant M or `merchant:` in %s", a->file);
    }
    int applied = 0;
    /* A change that refuses because the merchant's settings moved meanwhile (ABORTED: a version
     * changed, e.g. by the merchant record this very apply set, which the gateway pushes to the
     * services) is planned again from what is there now: up to PROG_APPLY_ROUNDS rounds. */
    for (int round = 1;; round++) {
        int rc = read_state(r);
        if (rc != CTL_EXIT_OK) {
            return rc;
        }
        if (!plan(r)) {
            fprintf(stderr, "loyaltyctl %s: nothing was written.\n", cmd->name);
            return CTL_EXIT_USAGE;
        }
        if (round == 1) {
            print_plan(r);
        }
        if (!write || r->n_actions == 0) {
            if (round > 1) {
                printf("Applied %d change%s to merchant %s.\n", applied, applied == 1 ? "" : "s",
                       r->merchant);
            }
            return CTL_EXIT_OK;
        }
        fflush(stdout);
        int done = 0;
        rc = apply(r, &done);
        applied += done;
        if (rc == CTL_EXIT_OK) {
            printf("Applied %d change%s to merchant %s.\n", applied, applied == 1 ? "" : "s",
                   r->merchant);
            return CTL_EXIT_OK;
        }
        if (r->last_code != STATUS_ABORTED || round == PROG_APPLY_ROUNDS) {
            print_refused(r, done);
            return rc;
        }
        fprintf(stderr, "loyaltyctl %s: the merchant changed meanwhile; planning the rest again.\n",
                cmd->name);
    }
}

int ctl_cmd_programme_plan(ctl_t *c, const ctl_command_t *cmd, const ctl_args_t *a) {
    return plan_or_apply(c, cmd, a, false);
}

int ctl_cmd_programme_apply(ctl_t *c, const ctl_command_t *cmd, const ctl_args_t *a) {
    return plan_or_apply(c, cmd, a, true);
}

int ctl_cmd_programme_export(ctl_t *c, const ctl_command_t *cmd, const ctl_args_t *a) {
    if (refuse_json(c, cmd) != 0) {
        return CTL_EXIT_USAGE;
    }
    prog_run_t *r = arena_alloc(&c->arena, sizeof *r);
    memset(r, 0, sizeof *r);
    r->c = c;
    r->cmd = cmd;
    r->merchant = a->merchant;
    int rc = read_state(r);
    if (rc != CTL_EXIT_OK) {
        return rc;
    }
    prog_print_yaml(stdout, &r->have, r->merchant);
    return CTL_EXIT_OK;
}
