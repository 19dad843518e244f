/* ctl_health.c -- `loyaltyctl health`: every service's readiness as the gateway sees it
 * (Gateway.CheckHealth), one row per service; exit 1 when one is not ready. */
#include "ctl.h"
#include "loyalty/v1/gateway.pb-c.h"

#include <stdio.h>

int ctl_cmd_health(ctl_t *c, const ctl_command_t *cmd, const ctl_args_t *a) {
    Loyalty__V1__GatewayCheckHealthRequest req = LOYALTY__V1__GATEWAY_CHECK_HEALTH_REQUEST__INIT;
    req.merchant_id = a->merchant ? (char *)a->merchant : "";
    ProtobufCMessage *out = NULL;
    int rc = ctl_call(c, cmd, "CheckHealth", &req.base, &out, NULL);
    if (rc != CTL_EXIT_OK) {
        return rc;
    }
    const Loyalty__V1__GatewayCheckHealthResponse *r = (const void *)out;
    if (c->json) {
        ctl_print_json(out);
    } else {
        printf("%-13s %-22s %-5s %-12s %s\n", "SERVICE", "ADDRESS", "READY", "STATUS", "DETAIL");
        for (size_t i = 0; i < r->n_services; i++) {
            const Loyalty__V1__GatewayServiceHealth *h = r->services[i];
            printf("%-13s %-22s %-5s %-12s %s\n", h->service, h->address[0] ? h->address : "-",
                   h->ready ? "yes" : "NO", h->status, h->detail);
        }
        printf("gateway: PostgreSQL %s, Redis %s\n", r->database_up ? "up" : "DOWN", r->redis);
    }
    return r->all_ready ? CTL_EXIT_OK : CTL_EXIT_REFUSED;
}
