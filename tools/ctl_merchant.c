/* ctl_merchant.c -- `loyaltyctl merchant settings|set`: the merchant settings record (time zone,
 * currency, locale; Gateway.GetMerchantSettings and UpdateMerchantSettings) and where each
 * service that keeps a copy stands with it. `set` names only the options given in its
 * update_mask, so what it does not name stays as it is. */
#include "ctl.h"
#include "google/protobuf/field_mask.pb-c.h"
#include "ids.h"
#include "loyalty/v1/gateway.pb-c.h"

#include <stdio.h>
#include <string.h>

static void print_record(const char *merchant, const Loyalty__V1__GatewayMerchantSettings *s) {
    char b[24];
    printf("merchant    %s\n", merchant);
    if (s == NULL) {
        return;
    }
    printf("time_zone   %s\n", s->time_zone[0] ? s->time_zone : "-");
    printf("currency    %s\n", s->currency[0] ? s->currency : "-");
    printf("locale      %s\n", s->locale[0] ? s->locale : "-");
    printf("version     %lld%s\n", (long long)s->version, s->version ? "" : " (never set)");
    printf("updated_at  %s\n", ctl_time(s->updated_at, b));
}

int ctl_cmd_merchant_settings(ctl_t *c, const ctl_command_t *cmd, const ctl_args_t *a) {
    Loyalty__V1__GatewayGetMerchantSettingsRequest req =
        LOYALTY__V1__GATEWAY_GET_MERCHANT_SETTINGS_REQUEST__INIT;
    req.merchant_id = (char *)a->merchant;
    ProtobufCMessage *out = NULL;
    int rc = ctl_call(c, cmd, "GetMerchantSettings", &req.base, &out, NULL);
    if (rc != CTL_EXIT_OK) {
        return rc;
    }
    if (c->json) {
        ctl_print_json(out);
        return CTL_EXIT_OK;
    }
    const Loyalty__V1__GatewayGetMerchantSettingsResponse *r = (const void *)out;
    print_record(a->merchant, r->settings);
    if (r->n_pushes == 0) {
        return CTL_EXIT_OK;
    }
    printf("\n%-12s %-8s %-8s %-20s %s\n", "SERVICE", "VERSION", "IN SYNC", "NEXT ATTEMPT",
           "LAST ERROR");
    for (size_t i = 0; i < r->n_pushes; i++) {
        const Loyalty__V1__GatewayMerchantSettingsPush *p = r->pushes[i];
        char b[24];
        printf("%-12s %-8lld %-8s %-20s %s\n", p->service, (long long)p->applied_version,
               p->in_sync ? "yes" : "no", ctl_time(p->next_attempt_at, b),
               p->last_error[0] ? p->last_error : "-");
    }
    return CTL_EXIT_OK;
}

int ctl_cmd_merchant_set(ctl_t *c, const ctl_command_t *cmd, const ctl_args_t *a) {
    Loyalty__V1__GatewayMerchantSettings settings = LOYALTY__V1__GATEWAY_MERCHANT_SETTINGS__INIT;
    char *paths[3];
    Google__Protobuf__FieldMask mask = GOOGLE__PROTOBUF__FIELD_MASK__INIT;
    mask.paths = paths;
    if (a->time_zone != NULL) {
        settings.time_zone = (char *)a->time_zone;
        paths[mask.n_paths++] = "time_zone";
    }
    if (a->currency != NULL) {
        settings.currency = (char *)a->currency;
        paths[mask.n_paths++] = "currency";
    }
    if (a->locale != NULL) {
        settings.locale = (char *)a->locale;
        paths[mask.n_paths++] = "locale";
    }
    if (mask.n_paths == 0) {
        return ctl_usage_error(cmd, "nothing to set: give --time-zone, --currency or --locale");
    }
    Loyalty__V1__GatewayUpdateMerchantSettingsRequest req =
        LOYALTY__V1__GATEWAY_UPDATE_MERCHANT_SETTINGS_REQUEST__INIT;
    req.merchant_id = (char *)a->merchant;
    char key[ID_MAX];
    if (a->key != NULL) {
        req.idempotency_key = (char *)a->key;
    } else {
        id_generate("ctlset", key);
        req.idempotency_key = key;
    }
    req.settings = &settings;
    req.update_mask = &mask;
    ProtobufCMessage *out = NULL;
    int rc = ctl_call(c, cmd, "UpdateMerchantSettings", &req.base, &out, NULL);
    if (rc != CTL_EXIT_OK) {
        return rc;
    }
    if (c->json) {
        ctl_print_json(out);
        return CTL_EXIT_OK;
    }
    const Loyalty__V1__GatewayUpdateMerchantSettingsResponse *r = (const void *)out;
    print_record(a->merchant, r->settings);
    printf("\nThe services get the record within about a second (loyaltyctl merchant settings "
           "--merchant %s shows them).\n",
           a->merchant);
    return CTL_EXIT_OK;
}
