/* ctl_audit.c -- `loyaltyctl audit`: the merchant's configuration changes of all six services,
 * newest first (Gateway.ListAuditLog), every page followed up to --limit; per call its time,
 * service, RPC, credential and idempotency key, and per changed row its before -> after. */
#include "ctl.h"
#include "loyalty/v1/gateway.pb-c.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define CTL_AUDIT_DEFAULT_LIMIT 100
#define CTL_AUDIT_PAGE_SIZE_MAX 500

/* --since: a bare number is an instant (unix seconds); with a unit (90s, 15m, 2h, 3d) it is
 * that long before now. false when it is neither. */
static bool parse_since(const char *text, int64_t *since_at) {
    bool digits_only = text[0] != '\0';
    for (const char *p = text; *p; p++) {
        digits_only = digits_only && isdigit((unsigned char)*p);
    }
    if (digits_only) {
        char *end = NULL;
        long long v = strtoll(text, &end, 10);
        if (*end != '\0' || v <= 0 || v > 253402300799LL) { /* up to 9999-12-31 */
            return false;
        }
        *since_at = v;
        return true;
    }
    int64_t ago_s = 0;
    if (!ctl_parse_duration(text, &ago_s)) {
        return false;
    }
    *since_at = (int64_t)time(NULL) - ago_s;
    return true;
}

#define CTL_WHO_MAX 160 /* two credential ids (64 each) and " via " */

static void print_entry(const Loyalty__V1__AuditEntry *e) {
    char tb[24];
    /* A relayed call: its actor, and the credential it came through. */
    char who[CTL_WHO_MAX];
    snprintf(who, sizeof who, "%s%s%s", e->credential_id[0] ? e->credential_id : "-",
             e->via_credential_id[0] ? " via " : "", e->via_credential_id);
    printf("%-20s %-12s %-46s %-16s %s\n", ctl_time(e->recorded_at, tb), e->service, e->rpc, who,
           e->idempotency_key[0] ? e->idempotency_key : "-");
    for (size_t i = 0; i < e->n_changes; i++) {
        const Loyalty__V1__AuditChange *ch = e->changes[i];
        printf("    %s %s %s -> %s\n", ch->table, ch->op,
               ch->before_json[0] ? ch->before_json : "-",
               ch->after_json[0] ? ch->after_json : "-");
    }
}

int ctl_cmd_audit(ctl_t *c, const ctl_command_t *cmd, const ctl_args_t *a) {
    Loyalty__V1__GatewayListAuditLogRequest req = LOYALTY__V1__GATEWAY_LIST_AUDIT_LOG_REQUEST__INIT;
    req.merchant_id = (char *)a->merchant;
    if (a->since != NULL && !parse_since(a->since, &req.since_at)) {
        return ctl_usage_error(cmd, "--since takes 90s, 15m, 2h, 3d or unix seconds, not %s",
                               a->since);
    }
    int64_t limit = a->limit ? a->limit : CTL_AUDIT_DEFAULT_LIMIT;
    Loyalty__V1__PageRequest page = LOYALTY__V1__PAGE_REQUEST__INIT;
    req.page = &page;
    /* Every page into one response, so that -o json prints one object. */
    Loyalty__V1__GatewayListAuditLogResponse all =
        LOYALTY__V1__GATEWAY_LIST_AUDIT_LOG_RESPONSE__INIT;
    all.entries = arena_alloc(&c->arena, (size_t)limit * sizeof *all.entries);
    Loyalty__V1__PageInfo info = LOYALTY__V1__PAGE_INFO__INIT;
    all.page_info = &info;
    for (;;) {
        int64_t left = limit - (int64_t)all.n_entries;
        page.page_size = (int32_t)(left < CTL_AUDIT_PAGE_SIZE_MAX ? left : CTL_AUDIT_PAGE_SIZE_MAX);
        ProtobufCMessage *out = NULL;
        int rc = ctl_call(c, cmd, "ListAuditLog", &req.base, &out, NULL);
        if (rc != CTL_EXIT_OK) {
            return rc;
        }
        const Loyalty__V1__GatewayListAuditLogResponse *r = (const void *)out;
        for (size_t i = 0; i < r->n_entries && (int64_t)all.n_entries < limit; i++) {
            all.entries[all.n_entries++] = r->entries[i];
        }
        const char *next = r->page_info ? r->page_info->next_cursor : "";
        info.next_cursor = (char *)next;
        /* An empty page with a cursor would loop forever: stop there too. */
        if (next[0] == '\0' || r->n_entries == 0 || (int64_t)all.n_entries >= limit) {
            break;
        }
        page.cursor = (char *)next;
    }
    if (c->json) {
        ctl_print_json(&all.base);
        return CTL_EXIT_OK;
    }
    printf("%-20s %-12s %-46s %-16s %s\n", "TIME", "SERVICE", "RPC", "CREDENTIAL",
           "IDEMPOTENCY KEY");
    for (size_t i = 0; i < all.n_entries; i++) {
        print_entry(all.entries[i]);
    }
    if (info.next_cursor[0]) {
        printf("(more than %lld; narrow with --since or raise --limit)\n", (long long)limit);
    }
    return CTL_EXIT_OK;
}
