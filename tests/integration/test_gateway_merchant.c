/* test_gateway_rpc_merchant.c -- the merchant settings record through the gateway, with every real
 * service (docs/architecture.md#merchant-settings): one update reaches the four services that
 * keep a copy of the time zone (read back from each), an update made while one of them is down
 * reaches it once it is back (and a newer update made meanwhile wins), masks and values are
 * checked before anything is written, and a time zone changed directly in a service is
 * overwritten by the record. Every wait polls with a generous bound; nothing depends on timing. */
#include "gateway_it.h"

TestSuite(gateway_merchant, .init = it_setup, .fini = it_teardown, .timeout = 400);

/* The services that keep a copy, in GetMerchantSettings' order, and how to read each one's. */
static const int copies[4] = {SVC_MEMBER, SVC_POINTS, SVC_WALLET, SVC_PROMO};
static const char *const copy_names[4] = {"member-svc", "points-svc", "wallet-svc", "promo-svc"};

/* Service svc's own time zone for the merchant; NULL when it does not answer. */
static const char *service_time_zone(int svc, const char *m) {
    static const char *const methods[SVC_N] = {[SVC_MEMBER] = "GetMemberSettings",
                                               [SVC_POINTS] = "GetSettings",
                                               [SVC_WALLET] = "GetSettings",
                                               [SVC_PROMO] = "GetPromoSettings"};
    static const ProtobufCMessageDescriptor *const requests[SVC_N] = {
        [SVC_MEMBER] = &loyalty__v1__member_get_settings_request__descriptor,
        [SVC_POINTS] = &loyalty__v1__points_get_settings_request__descriptor,
        [SVC_WALLET] = &loyalty__v1__wallet_get_settings_request__descriptor,
        [SVC_PROMO] = &loyalty__v1__promo_get_settings_request__descriptor};
    ProtobufCMessage *r = pb_new(&arena, requests[svc]);
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(requests[svc], "merchant_id");
    *(char **)((char *)r + f->offset) = (char *)m;
    ProtobufCMessage *resp = NULL;
    status_t st = call(svc, methods[svc], r, &resp);
    if (!status_is_ok(&st)) {
        return NULL;
    }
    const ProtobufCMessage *s = pb_get_message_field(resp, "settings");
    cr_assert(s != NULL, "%s answered no settings", svc_names[svc]);
    return pb_get_string_field(s, "time_zone");
}

static Loyalty__V1__GatewayGetMerchantSettingsResponse *get_settings(const char *m) {
    Loyalty__V1__GatewayGetMerchantSettingsRequest r =
        LOYALTY__V1__GATEWAY_GET_MERCHANT_SETTINGS_REQUEST__INIT;
    r.merchant_id = (char *)m;
    Loyalty__V1__GatewayGetMerchantSettingsResponse *resp = NULL;
    assert_ok(gw("GetMerchantSettings", &r, &resp));
    return resp;
}

static status_t update_settings(const char *m, const char *key, const char *tz,
                                const char *currency, const char *locale,
                                Google__Protobuf__FieldMask *mask,
                                Loyalty__V1__GatewayMerchantSettings **out) {
    Loyalty__V1__GatewayMerchantSettings s = LOYALTY__V1__GATEWAY_MERCHANT_SETTINGS__INIT;
    s.time_zone = (char *)tz;
    s.currency = (char *)currency;
    s.locale = (char *)locale;
    Loyalty__V1__GatewayUpdateMerchantSettingsRequest r =
        LOYALTY__V1__GATEWAY_UPDATE_MERCHANT_SETTINGS_REQUEST__INIT;
    r.merchant_id = (char *)m;
    r.idempotency_key = (char *)(key ? key : harness_key());
    r.settings = &s;
    r.update_mask = mask;
    Loyalty__V1__GatewayUpdateMerchantSettingsResponse *resp = NULL;
    status_t st = gw("UpdateMerchantSettings", &r, &resp);
    if (out) {
        *out = status_is_ok(&st) ? resp->settings : NULL;
    }
    return st;
}

/* Every service's copy is tz and the gateway reports every push in sync at the record's
 * version. */
static bool converged(const char *m, const char *tz) {
    for (int i = 0; i < 4; i++) {
        const char *copy = service_time_zone(copies[i], m);
        if (copy == NULL || strcmp(copy, tz) != 0) {
            return false;
        }
    }
    Loyalty__V1__GatewayGetMerchantSettingsResponse *g = get_settings(m);
    if (g->n_pushes != 4) {
        return false;
    }
    for (size_t i = 0; i < g->n_pushes; i++) {
        if (!g->pushes[i]->in_sync || g->pushes[i]->applied_version != g->settings->version) {
            return false;
        }
    }
    return true;
}

/* Polls until converged, for up to `bound_s` seconds. */
static void wait_converged(const char *m, const char *tz, int bound_s) {
    time_t until = time(NULL) + bound_s;
    while (!converged(m, tz)) {
        cr_assert(time(NULL) < until, "the services did not all reach %s within %d s", tz, bound_s);
        sleep_ms(200);
    }
}

Test(gateway_merchant, one_update_reaches_every_service) {
    stack_start();
    const char *m = harness_merchant("msettings");
    /* Nothing set: the defaults, and no pushes. */
    Loyalty__V1__GatewayGetMerchantSettingsResponse *g = get_settings(m);
    cr_assert_str_eq(g->settings->time_zone, "UTC");
    cr_assert_str_eq(g->settings->currency, "");
    cr_assert_eq(g->settings->version, 0);
    cr_assert_eq(g->n_pushes, 0);

    Loyalty__V1__GatewayMerchantSettings *s = NULL;
    const char *key = harness_key();
    assert_ok(update_settings(m, key, "Asia/Singapore", "SGD", "EN-sg",
                              HARNESS_MASK("time_zone", "currency", "locale"), &s));
    cr_assert_str_eq(s->time_zone, "Asia/Singapore");
    cr_assert_str_eq(s->currency, "SGD");
    cr_assert_str_eq(s->locale, "en-SG", "stored with the usual case");
    cr_assert_eq(s->version, 1);
    wait_converged(m, "Asia/Singapore", 60);
    g = get_settings(m);
    for (size_t i = 0; i < g->n_pushes; i++) {
        cr_assert_str_eq(g->pushes[i]->service, copy_names[i]);
        cr_assert_eq(g->pushes[i]->attempts, 0);
        cr_assert_str_eq(g->pushes[i]->last_error, "");
        cr_assert_eq(g->pushes[i]->next_attempt_at, 0, "nothing due when in sync");
        cr_assert_gt(g->pushes[i]->applied_at, 0);
    }

    /* The same key and request replay the answer; nothing changes twice. */
    assert_ok(update_settings(m, key, "Asia/Singapore", "SGD", "EN-sg",
                              HARNESS_MASK("time_zone", "currency", "locale"), &s));
    cr_assert_eq(s->version, 1);

    /* One field changes, the others stay; the services keep the time zone they have. */
    assert_ok(update_settings(m, NULL, "", "MYR", "", HARNESS_MASK("currency"), &s));
    cr_assert_eq(s->version, 2);
    cr_assert_str_eq(s->time_zone, "Asia/Singapore");
    cr_assert_str_eq(s->currency, "MYR");
    cr_assert_str_eq(s->locale, "en-SG");

    /* The gateway's audit trail has the record's changes; each service's the pushes. */
    Loyalty__V1__GatewayListAuditLogRequest al = LOYALTY__V1__GATEWAY_LIST_AUDIT_LOG_REQUEST__INIT;
    al.merchant_id = (char *)m;
    Loyalty__V1__GatewayListAuditLogResponse *alr = NULL;
    assert_ok(gw("ListAuditLog", &al, &alr));
    int record_changes = 0, pushes = 0;
    for (size_t i = 0; i < alr->n_entries; i++) {
        const Loyalty__V1__AuditEntry *e = alr->entries[i];
        if (strcmp(e->rpc, "/loyalty.v1.Gateway/UpdateMerchantSettings") == 0) {
            cr_assert_str_eq(e->service, "gateway");
            cr_assert_eq(e->n_changes, 1);
            cr_assert_str_eq(e->changes[0]->table, "merchant_settings");
            record_changes++;
        } else if (strncmp(e->idempotency_key, "merchant-settings:v1:", 21) == 0) {
            pushes++;
        }
    }
    cr_assert_eq(record_changes, 2, "the first update and the currency (a replay adds none)");
    cr_assert_eq(pushes, 4, "one push of version 1 to each service");

    /* A second time zone reaches them all too. */
    assert_ok(update_settings(m, NULL, "Europe/Lisbon", "", "", HARNESS_MASK("time_zone"), &s));
    cr_assert_eq(s->version, 3);
    cr_assert_str_eq(s->currency, "MYR");
    wait_converged(m, "Europe/Lisbon", 60);
}

Test(gateway_merchant, an_update_while_a_service_is_down_reaches_it_when_back) {
    stack_start();
    const char *m = harness_merchant("msettings");
    assert_ok(update_settings(m, NULL, "Asia/Singapore", "", "", HARNESS_MASK("time_zone"), NULL));
    wait_converged(m, "Asia/Singapore", 60);

    harness_kill(&procs[SVC_WALLET]);
    assert_ok(update_settings(m, NULL, "Asia/Tokyo", "", "", HARNESS_MASK("time_zone"), NULL));
    /* The others take it; the wallet's push fails and is waiting for its next attempt. */
    time_t until = time(NULL) + 60;
    for (;;) {
        Loyalty__V1__GatewayGetMerchantSettingsResponse *g = get_settings(m);
        cr_assert_eq(g->n_pushes, 4);
        const Loyalty__V1__GatewayMerchantSettingsPush *w = g->pushes[2];
        cr_assert_str_eq(w->service, "wallet-svc");
        bool others = true;
        for (int i = 0; i < 4; i++) {
            if (copies[i] != SVC_WALLET) {
                const char *copy = service_time_zone(copies[i], m);
                others = others && copy != NULL && strcmp(copy, "Asia/Tokyo") == 0;
            }
        }
        if (others && w->attempts >= 1) {
            cr_assert(!w->in_sync);
            cr_assert_eq(w->applied_version, 1);
            cr_assert(strncmp(w->last_error, "UNAVAILABLE", 11) == 0 ||
                          strncmp(w->last_error, "DEADLINE_EXCEEDED", 17) == 0,
                      "last error: %s", w->last_error);
            cr_assert_gt(w->next_attempt_at, 0);
            break;
        }
        cr_assert(time(NULL) < until, "the other services did not take the update");
        sleep_ms(200);
    }
    /* A newer version made while it is down is the one it gets. */
    assert_ok(
        update_settings(m, NULL, "America/Sao_Paulo", "", "", HARNESS_MASK("time_zone"), NULL));

    harness_restart(&procs[SVC_WALLET]);
    /* The backoff is at most a minute between attempts. */
    wait_converged(m, "America/Sao_Paulo", 180);
    Loyalty__V1__GatewayGetMerchantSettingsResponse *g = get_settings(m);
    cr_assert_eq(g->settings->version, 3);
    cr_assert_eq(g->pushes[2]->attempts, 0, "a success starts the count again");
    cr_assert_str_eq(g->pushes[2]->last_error, "");
}

Test(gateway_merchant, masks_and_values_are_checked_before_anything_is_written) {
    stack_start();
    const char *m = harness_merchant("msettings");
    assert_status(update_settings(m, NULL, "Asia/Singapore", "", "", NULL, NULL),
                  STATUS_INVALID_ARGUMENT, "UPDATE_MASK_REQUIRED");
    assert_status(
        update_settings(m, NULL, "Asia/Singapore", "", "", HARNESS_MASK_OF(NULL, 0), NULL),
        STATUS_INVALID_ARGUMENT, "UPDATE_MASK_REQUIRED");
    assert_status(update_settings(m, NULL, "Asia/Singapore", "", "", HARNESS_MASK("zone"), NULL),
                  STATUS_INVALID_ARGUMENT, "UPDATE_MASK_UNKNOWN_FIELD");
    assert_status(update_settings(m, NULL, "Asia/Singapore", "", "", HARNESS_MASK("version"), NULL),
                  STATUS_INVALID_ARGUMENT, "UPDATE_MASK_IMMUTABLE_FIELD");
    /* A bad time zone (shape, or unknown to the zone database) refuses the whole update, the
     * valid currency named with it included. */
    assert_status(update_settings(m, NULL, "Mars/Olympus_Mons", "SGD", "",
                                  HARNESS_MASK("time_zone", "currency"), NULL),
                  STATUS_INVALID_ARGUMENT, "INVALID_SETTINGS_TIME_ZONE");
    assert_status(
        update_settings(m, NULL, "Asia/Singapore;", "", "", HARNESS_MASK("time_zone"), NULL),
        STATUS_INVALID_ARGUMENT, "INVALID_SETTINGS_TIME_ZONE");
    assert_status(update_settings(m, NULL, "", "", "", HARNESS_MASK("time_zone"), NULL),
                  STATUS_INVALID_ARGUMENT, "INVALID_SETTINGS_TIME_ZONE");
    assert_status(update_settings(m, NULL, "", "sgd", "", HARNESS_MASK("currency"), NULL),
                  STATUS_INVALID_ARGUMENT, "INVALID_SETTINGS_CURRENCY");
    assert_status(update_settings(m, NULL, "", "", "en_SG", HARNESS_MASK("locale"), NULL),
                  STATUS_INVALID_ARGUMENT, "INVALID_SETTINGS_LOCALE");
    /* The first update must name the time zone: a default pushed to the services would
     * overwrite the zones the merchant set in each one before. */
    assert_status(update_settings(m, NULL, "", "SGD", "", HARNESS_MASK("currency"), NULL),
                  STATUS_FAILED_PRECONDITION, "TIME_ZONE_REQUIRED");
    /* Nothing was written: no record, no pushes, the services at their defaults. */
    Loyalty__V1__GatewayGetMerchantSettingsResponse *g = get_settings(m);
    cr_assert_eq(g->settings->version, 0);
    cr_assert_str_eq(g->settings->currency, "");
    cr_assert_eq(g->n_pushes, 0);
    for (int i = 0; i < 4; i++) {
        cr_assert_str_eq(service_time_zone(copies[i], m), "UTC", "%s", copy_names[i]);
    }

    /* After a good update, a bad one leaves the record and the services as they were. */
    assert_ok(update_settings(m, NULL, "Asia/Singapore", "SGD", "",
                              HARNESS_MASK("time_zone", "currency"), NULL));
    wait_converged(m, "Asia/Singapore", 60);
    assert_status(update_settings(m, NULL, "Asia/Nowhere", "MYR", "",
                                  HARNESS_MASK("time_zone", "currency"), NULL),
                  STATUS_INVALID_ARGUMENT, "INVALID_SETTINGS_TIME_ZONE");
    g = get_settings(m);
    cr_assert_eq(g->settings->version, 1);
    cr_assert_str_eq(g->settings->currency, "SGD");
    cr_assert(converged(m, "Asia/Singapore"));
}

Test(gateway_merchant, a_time_zone_changed_directly_in_a_service_is_overwritten) {
    gw_extra_env[0] = "MERCHANT_SETTINGS_VERIFY_S=1";
    gw_extra_env[1] = NULL;
    stack_start();
    const char *m = harness_merchant("msettings");
    assert_ok(update_settings(m, NULL, "Asia/Singapore", "", "", HARNESS_MASK("time_zone"), NULL));
    wait_converged(m, "Asia/Singapore", 60);

    /* An admin changes points-svc's own copy behind the record's back. */
    Loyalty__V1__PointsSettings ps = LOYALTY__V1__POINTS_SETTINGS__INIT;
    ps.time_zone = "Europe/Paris";
    Loyalty__V1__PointsUpdateSettingsRequest r = LOYALTY__V1__POINTS_UPDATE_SETTINGS_REQUEST__INIT;
    r.merchant_id = (char *)m;
    r.idempotency_key = (char *)harness_key();
    r.settings = &ps;
    r.update_mask = HARNESS_MASK("time_zone");
    assert_ok(call(SVC_POINTS, "UpdateSettings", &r, NULL));
    cr_assert_str_eq(service_time_zone(SVC_POINTS, m), "Europe/Paris");

    /* The job reads the copies back and puts the record's time zone there again. */
    wait_converged(m, "Asia/Singapore", 120);
    gw_extra_env[0] = NULL;
}
