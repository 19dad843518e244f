/* gateway_rpc_audit.c -- Gateway.ListAuditLog: the audit trail of all six services in one listing.
 * Each service keeps its own trail in its own schema, which only its database role may read,
 * so the gateway reads its own and asks every participant's AuditService for theirs (at once),
 * then merges newest first and pages. The cursor is the last entry listed (instant, service,
 * id); from it each source is asked for the entries that follow it in the merged order. */
#include "audit.h"
#include "cursor.h"
#include "gateway_rpc.h"
#include "loyalty/v1/gateway.pb-c.h"
#include "pb.h"
#include "rpc_client.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GW_AUDIT_PARTICIPANTS 5
#define GW_AUDIT_SERVICE "gateway" /* rpc_server_options.service_name */

/* Where a merged listing stopped: after entry `id` of `service`, recorded at `at_us`. */
typedef struct gw_audit_cursor {
    bool set;
    int64_t at_us;
    int64_t id;
    char *service;
} gw_audit_cursor_t;

static status_t gw_audit_cursor_decode(arena_t *a, const char *cursor, gw_audit_cursor_t *c) {
    memset(c, 0, sizeof *c);
    char *key = NULL, *id = NULL;
    status_t st = cursor_decode(a, "page.cursor", cursor, &key, &id);
    if (!status_is_ok(&st) || cursor[0] == '\0') {
        return st;
    }
    char *slash = strchr(key, '/');
    if (slash == NULL || slash[1] == '\0') {
        return status_invalid_field("page.cursor", "malformed cursor");
    }
    *slash = '\0';
    c->service = slash + 1;
    if (!config_parse_int(key, 0, INT64_MAX, &c->at_us) ||
        !config_parse_int(id, 0, INT64_MAX, &c->id)) {
        return status_invalid_field("page.cursor", "malformed cursor");
    }
    c->set = true;
    return status_ok();
}

static char *gw_audit_cursor_encode(arena_t *a, const Loyalty__V1__AuditEntry *last) {
    char id[24];
    snprintf(id, sizeof id, "%" PRId64, last->id);
    return cursor_encode(a, arena_printf(a, "%" PRId64 "/%s", last->recorded_at_us, last->service),
                         id);
}

/* The position in `service`'s own trail after which its entries follow the cursor in the
 * merged order (recorded_at_us, service, id, all descending): at the cursor's instant, a
 * service named below the cursor's comes after it (all its entries of that instant follow),
 * one named above it before (none do). */
static audit_position_t gw_audit_position(const gw_audit_cursor_t *c, const char *service) {
    audit_position_t pos = {.set = c->set, .at_us = c->at_us, .id = c->id};
    if (c->set) {
        int cmp = strcmp(service, c->service);
        pos.id = cmp == 0 ? c->id : cmp < 0 ? INT64_MAX : 0;
    }
    return pos;
}

static int gw_audit_compare(const void *x, const void *y) {
    const Loyalty__V1__AuditEntry *a = *(Loyalty__V1__AuditEntry *const *)x;
    const Loyalty__V1__AuditEntry *b = *(Loyalty__V1__AuditEntry *const *)y;
    return audit_entry_before(a, b) ? -1 : audit_entry_before(b, a) ? 1 : 0;
}

status_t gw_rpc_list_audit_log(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                               ProtobufCMessage *resp_msg) {
    const Loyalty__V1__GatewayListAuditLogRequest *req = (const void *)req_msg;
    Loyalty__V1__GatewayListAuditLogResponse *resp = (void *)resp_msg;
    gw_svc_t *svc = gw_svc(ctx);
    int32_t size = 0;
    status_t st = cursor_page_size("page.page_size", req->page ? req->page->page_size : 0,
                                   PAGE_SIZE_MAX, &size);
    gw_audit_cursor_t cur;
    if (status_is_ok(&st)) {
        st = gw_audit_cursor_decode(ctx->arena, req->page ? req->page->cursor : "", &cur);
    }
    if (status_is_ok(&st) && req->since_at < 0) {
        st = status_invalid_field("since_at", "must not be negative");
    }
    if (!status_is_ok(&st)) {
        return st;
    }

    /* The participants, asked at once, each for a page from the cursor on. */
    static const char *const names[GW_AUDIT_PARTICIPANTS] = {
        "member-svc", "points-svc", "wallet-svc", "referral-svc", "promo-svc"};
    rpc_channel_t *channels[GW_AUDIT_PARTICIPANTS] = {svc->member, svc->points, svc->wallet,
                                                      svc->referral, svc->promo};
    rpc_call_spec_t calls[GW_AUDIT_PARTICIPANTS];
    for (int i = 0; i < GW_AUDIT_PARTICIPANTS; i++) {
        Loyalty__V1__AuditListAuditLogRequest *q =
            pb_new(ctx->arena, &loyalty__v1__audit_list_audit_log_request__descriptor);
        q->merchant_id = (char *)ctx->merchant_id;
        q->since_at = req->since_at;
        q->page = pb_new(ctx->arena, &loyalty__v1__page_request__descriptor);
        q->page->page_size = size;
        audit_position_t pos = gw_audit_position(&cur, names[i]);
        q->page->cursor = pos.set ? audit_cursor_encode(ctx->arena, pos) : "";
        calls[i] = (rpc_call_spec_t){.channel = channels[i],
                                     .service = &loyalty__v1__audit_service__descriptor,
                                     .method = "ListAuditLog",
                                     .request = &q->base};
    }
    rpc_call_many(calls, GW_AUDIT_PARTICIPANTS, ctx->arena, NULL);

    /* The gateway's own, one more than a page to know whether more follow. */
    Loyalty__V1__AuditEntry **own = NULL;
    size_t n_own = 0;
    st = audit_list(ctx->db, ctx->arena, GW_AUDIT_SERVICE, ctx->merchant_id, req->since_at,
                    gw_audit_position(&cur, GW_AUDIT_SERVICE), size + 1, &own, &n_own);
    if (!status_is_ok(&st)) {
        return st;
    }
    /* A listing without one service's entries would pass for the whole trail: fail instead. */
    bool more = n_own > (size_t)size;
    size_t total = n_own;
    for (int i = 0; i < GW_AUDIT_PARTICIPANTS; i++) {
        if (!status_is_ok(&calls[i].status)) {
            return status_make_relayed(calls[i].status.code, calls[i].status.reason, "%s: %s",
                                       names[i], calls[i].status.message);
        }
        const Loyalty__V1__AuditListAuditLogResponse *r = (const void *)calls[i].response;
        total += r->n_entries;
        more |= r->page_info && r->page_info->next_cursor[0];
    }
    Loyalty__V1__AuditEntry **all = arena_alloc(ctx->arena, (total + 1) * sizeof *all);
    size_t n = 0;
    for (size_t k = 0; k < n_own; k++) {
        all[n++] = own[k];
    }
    for (int i = 0; i < GW_AUDIT_PARTICIPANTS; i++) {
        const Loyalty__V1__AuditListAuditLogResponse *r = (const void *)calls[i].response;
        for (size_t k = 0; k < r->n_entries; k++) {
            all[n++] = r->entries[k];
        }
    }
    qsort(all, n, sizeof *all, gw_audit_compare);
    more |= n > (size_t)size;
    resp->entries = all;
    resp->n_entries = n > (size_t)size ? (size_t)size : n;
    resp->page_info = pb_new(ctx->arena, &loyalty__v1__page_info__descriptor);
    if (more && resp->n_entries > 0) {
        resp->page_info->next_cursor =
            gw_audit_cursor_encode(ctx->arena, resp->entries[resp->n_entries - 1]);
    }
    return status_ok();
}
