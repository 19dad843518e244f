/* audit_rpc.c -- AuditService/ListAuditLog (audit.proto), which every service serves from its
 * own schema: the runtime registers it next to grpc.health.v1 (rpc_server.c). */
#include "audit.h"

#include "config.h"
#include "cursor.h"
#include "pb.h"

#include <inttypes.h>
#include <stdio.h>

static const char *g_service_name = "";

void audit_service_init(const char *service_name) {
    g_service_name = service_name;
}

char *audit_cursor_encode(arena_t *a, audit_position_t pos) {
    char at[24], id[24];
    snprintf(at, sizeof at, "%" PRId64, pos.at_us);
    snprintf(id, sizeof id, "%" PRId64, pos.id);
    return cursor_encode(a, at, id);
}

status_t audit_cursor_decode(arena_t *a, const char *field, const char *cursor,
                             audit_position_t *pos) {
    pos->set = false;
    pos->at_us = 0;
    pos->id = 0;
    char *at = NULL, *id = NULL;
    status_t st = cursor_decode(a, field, cursor, &at, &id);
    if (!status_is_ok(&st) || cursor[0] == '\0') {
        return st;
    }
    if (!config_parse_int(at, 0, INT64_MAX, &pos->at_us) ||
        !config_parse_int(id, 0, INT64_MAX, &pos->id)) {
        return status_invalid_field(field, "malformed cursor");
    }
    pos->set = true;
    return status_ok();
}

static status_t audit_rpc_list(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                               ProtobufCMessage *resp_msg) {
    const Loyalty__V1__AuditListAuditLogRequest *req = (const void *)req_msg;
    Loyalty__V1__AuditListAuditLogResponse *resp = (void *)resp_msg;
    int32_t size = 0;
    status_t st = cursor_page_size("page.page_size", req->page ? req->page->page_size : 0,
                                   PAGE_SIZE_MAX, &size);
    audit_position_t after;
    if (status_is_ok(&st)) {
        st = audit_cursor_decode(ctx->arena, "page.cursor", req->page ? req->page->cursor : "",
                                 &after);
    }
    if (status_is_ok(&st) && req->since_at < 0) {
        st = status_invalid_field("since_at", "must not be negative");
    }
    if (status_is_ok(&st)) {
        st = audit_list(ctx->db, ctx->arena, g_service_name, ctx->merchant_id, req->since_at, after,
                        size + 1, &resp->entries, &resp->n_entries);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    resp->page_info = pb_new(ctx->arena, &loyalty__v1__page_info__descriptor);
    if (resp->n_entries > (size_t)size) {
        resp->n_entries = (size_t)size;
        const Loyalty__V1__AuditEntry *last = resp->entries[size - 1];
        audit_position_t pos = {.set = true, .at_us = last->recorded_at_us, .id = last->id};
        resp->page_info->next_cursor = audit_cursor_encode(ctx->arena, pos);
    }
    return status_ok();
}

static const rpc_method_t audit_methods_served[] = {
    {"ListAuditLog", audit_rpc_list, RPC_READ},
    {NULL, NULL, RPC_READ},
};

const rpc_service_t audit_service = {&loyalty__v1__audit_service__descriptor, audit_methods_served,
                                     NULL};
