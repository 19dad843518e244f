/* ctl_sagas.c -- `loyaltyctl sagas list`, `saga show` and `saga retry` (Gateway.ListSagas,
 * GetSaga, RetrySaga): what is stuck, why, and putting it back on its way. */
#include "ctl.h"
#include "ids.h"
#include "loyalty/v1/gateway.pb-c.h"

#include <stdio.h>
#include <string.h>

#define CTL_SAGAS_DEFAULT_LIMIT 100
#define CTL_PAGE_SIZE_MAX 500

static const char *state_name(int v, char buf[24]) {
    return ctl_enum_name(&loyalty__v1__gateway_saga_state__descriptor, v, buf);
}

static const char *kind_name(int v, char buf[24]) {
    return ctl_enum_name(&loyalty__v1__gateway_saga_kind__descriptor, v, buf);
}

static void print_saga_row(const Loyalty__V1__GatewaySaga *s) {
    char kb[24], sb[24], tb[24];
    printf("%-30s %-16s %-16s %-16s %-22s %-8d %-20s %s\n", s->id, s->merchant_id,
           kind_name(s->kind, kb), state_name(s->state, sb), s->reason[0] ? s->reason : "-",
           (int)s->attempts, ctl_time(s->updated_at, tb), s->order_id[0] ? s->order_id : "-");
}

int ctl_cmd_sagas_list(ctl_t *c, const ctl_command_t *cmd, const ctl_args_t *a) {
    Loyalty__V1__GatewayListSagasRequest req = LOYALTY__V1__GATEWAY_LIST_SAGAS_REQUEST__INIT;
    req.merchant_id = a->merchant ? (char *)a->merchant : "";
    int v = 0;
    if (a->state != NULL) {
        if (!ctl_enum_parse(&loyalty__v1__gateway_saga_state__descriptor, a->state, &v) || v == 0) {
            return ctl_usage_error(cmd, "unknown state %s", a->state);
        }
        req.state = v;
    }
    if (a->kind != NULL) {
        if (!ctl_enum_parse(&loyalty__v1__gateway_saga_kind__descriptor, a->kind, &v) || v == 0) {
            return ctl_usage_error(cmd, "unknown kind %s", a->kind);
        }
        req.kind = v;
    }
    if (a->older_than != NULL && !ctl_parse_duration(a->older_than, &req.older_than_s)) {
        return ctl_usage_error(cmd, "--older-than takes 90s, 15m, 2h, 3d or seconds, not %s",
                               a->older_than);
    }
    int64_t limit = a->limit ? a->limit : CTL_SAGAS_DEFAULT_LIMIT;
    Loyalty__V1__PageRequest page = LOYALTY__V1__PAGE_REQUEST__INIT;
    req.page = &page;
    /* Every page into one response, so that -o json prints one object. */
    Loyalty__V1__GatewayListSagasResponse all = LOYALTY__V1__GATEWAY_LIST_SAGAS_RESPONSE__INIT;
    all.sagas = arena_alloc(&c->arena, (size_t)limit * sizeof *all.sagas);
    Loyalty__V1__PageInfo info = LOYALTY__V1__PAGE_INFO__INIT;
    all.page_info = &info;
    for (;;) {
        int64_t left = limit - (int64_t)all.n_sagas;
        page.page_size = (int32_t)(left < CTL_PAGE_SIZE_MAX ? left : CTL_PAGE_SIZE_MAX);
        ProtobufCMessage *out = NULL;
        int rc = ctl_call(c, cmd, "ListSagas", &req.base, &out, NULL);
        if (rc != CTL_EXIT_OK) {
            return rc;
        }
        const Loyalty__V1__GatewayListSagasResponse *r = (const void *)out;
        for (size_t i = 0; i < r->n_sagas && (int64_t)all.n_sagas < limit; i++) {
            all.sagas[all.n_sagas++] = r->sagas[i];
        }
        const char *next = r->page_info ? r->page_info->next_cursor : "";
        info.next_cursor = (char *)next;
        if (next[0] == '\0' || (int64_t)all.n_sagas >= limit) {
            break;
        }
        page.cursor = (char *)next;
    }
    if (c->json) {
        ctl_print_json(&all.base);
        return CTL_EXIT_OK;
    }
    printf("%-30s %-16s %-16s %-16s %-22s %-8s %-20s %s\n", "ID", "MERCHANT", "KIND", "STATE",
           "REASON", "ATTEMPTS", "UPDATED", "ORDER");
    for (size_t i = 0; i < all.n_sagas; i++) {
        print_saga_row(all.sagas[i]);
    }
    if (info.next_cursor[0]) {
        printf("(more than %lld; narrow the filters or raise --limit)\n", (long long)limit);
    }
    return CTL_EXIT_OK;
}

static void print_saga(const Loyalty__V1__GatewaySaga *s) {
    char b1[24], b2[24];
    printf("saga       %s\n", s->id);
    printf("merchant   %s\n", s->merchant_id);
    printf("kind       %s\n", kind_name(s->kind, b1));
    printf("state      %s%s%s\n", state_name(s->state, b2), s->reason[0] ? " " : "", s->reason);
    if (s->error != NULL) {
        printf("error      %s %s: %s\n", s->error->code, s->error->reason, s->error->message);
    }
    printf("member     %s\n", s->member_id[0] ? s->member_id : "-");
    printf("order      %s\n", s->order_id[0] ? s->order_id : "-");
    printf("attempts   %d\n", (int)s->attempts);
    printf("created    %s\n", ctl_time(s->created_at, b1));
    printf("updated    %s\n", ctl_time(s->updated_at, b1));
    if (s->next_attempt_at != 0) {
        printf("next try   %s\n", ctl_time(s->next_attempt_at, b1));
    }
    if (s->n_steps == 0) {
        return;
    }
    printf("\n%-4s %-28s %-10s %-8s %-8s %-20s %-9s %s\n", "SEQ", "STEP", "DIRECTION", "STATE",
           "ATTEMPTS", "STARTED", "TOOK", "ANSWER");
    for (size_t i = 0; i < s->n_steps; i++) {
        const Loyalty__V1__GatewayStep *st = s->steps[i];
        char db[24], sb[24], tb[24], took[24];
        if (st->finished_at != 0 && st->started_at != 0) {
            snprintf(took, sizeof took, "%llds", (long long)(st->finished_at - st->started_at));
        } else {
            snprintf(took, sizeof took, "-");
        }
        char answer[512];
        if (st->error != NULL && st->error->code[0]) {
            snprintf(answer, sizeof answer, "%s %s: %s%s", st->error->code, st->error->reason,
                     st->error->message,
                     st->state == LOYALTY__V1__GATEWAY_STEP_STATE__GATEWAY_STEP_STATE_DONE
                         ? " (an earlier attempt; then OK)"
                         : "");
        } else {
            snprintf(answer, sizeof answer, "%s",
                     st->state == LOYALTY__V1__GATEWAY_STEP_STATE__GATEWAY_STEP_STATE_DONE ? "OK"
                                                                                           : "-");
        }
        printf("%-4d %-28s %-10s %-8s %-8d %-20s %-9s %s\n", (int)st->seq, st->name,
               ctl_enum_name(&loyalty__v1__gateway_step_direction__descriptor, st->direction, db),
               ctl_enum_name(&loyalty__v1__gateway_step_state__descriptor, st->state, sb),
               (int)st->attempts, ctl_time(st->started_at, tb), took, answer);
    }
}

int ctl_cmd_saga_show(ctl_t *c, const ctl_command_t *cmd, const ctl_args_t *a) {
    Loyalty__V1__GatewayGetSagaRequest req = LOYALTY__V1__GATEWAY_GET_SAGA_REQUEST__INIT;
    req.merchant_id = (char *)a->merchant;
    req.saga_id = (char *)a->positional[0];
    ProtobufCMessage *out = NULL;
    int rc = ctl_call(c, cmd, "GetSaga", &req.base, &out, NULL);
    if (rc != CTL_EXIT_OK) {
        return rc;
    }
    const Loyalty__V1__GatewayGetSagaResponse *r = (const void *)out;
    if (c->json) {
        ctl_print_json(out);
    } else if (r->saga != NULL) {
        print_saga(r->saga);
    }
    return CTL_EXIT_OK;
}

int ctl_cmd_saga_retry(ctl_t *c, const ctl_command_t *cmd, const ctl_args_t *a) {
    Loyalty__V1__GatewayRetrySagaRequest req = LOYALTY__V1__GATEWAY_RETRY_SAGA_REQUEST__INIT;
    req.merchant_id = (char *)a->merchant;
    req.saga_id = (char *)a->positional[0];
    char key[ID_MAX];
    if (a->key != NULL) {
        req.idempotency_key = (char *)a->key;
    } else {
        id_generate("ctlretry", key);
        req.idempotency_key = key;
    }
    ProtobufCMessage *out = NULL;
    int rc = ctl_call(c, cmd, "RetrySaga", &req.base, &out, NULL);
    if (rc != CTL_EXIT_OK) {
        return rc;
    }
    const Loyalty__V1__GatewayRetrySagaResponse *r = (const void *)out;
    if (c->json) {
        ctl_print_json(out);
    } else if (r->saga != NULL) {
        char sb[24];
        printf("saga %s is %s again (key %s); the recovery job drives it on: "
               "loyaltyctl saga show %s --merchant %s\n",
               r->saga->id, state_name(r->saga->state, sb), req.idempotency_key, r->saga->id,
               r->saga->merchant_id);
    }
    return CTL_EXIT_OK;
}
