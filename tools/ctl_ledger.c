/* ctl_ledger.c -- `loyaltyctl ledger verify`: the merchant's points and wallet ledgers checked
 * by their services (Gateway.VerifyLedgers); every difference listed; exit 1 on any finding. */
#include "ctl.h"
#include "loyalty/v1/gateway.pb-c.h"

#include <stdio.h>

int ctl_cmd_ledger_verify(ctl_t *c, const ctl_command_t *cmd, const ctl_args_t *a) {
    Loyalty__V1__GatewayVerifyLedgersRequest req =
        LOYALTY__V1__GATEWAY_VERIFY_LEDGERS_REQUEST__INIT;
    req.merchant_id = (char *)a->merchant;
    ProtobufCMessage *out = NULL;
    int rc = ctl_call(c, cmd, "VerifyLedgers", &req.base, &out, NULL);
    if (rc != CTL_EXIT_OK) {
        return rc;
    }
    const Loyalty__V1__GatewayVerifyLedgersResponse *r = (const void *)out;
    if (c->json) {
        ctl_print_json(out);
        return r->ok ? CTL_EXIT_OK : CTL_EXIT_REFUSED;
    }
    const Loyalty__V1__PointsVerifyLedgerResponse *p = r->points;
    const Loyalty__V1__WalletVerifyLedgerResponse *w = r->wallet;
    if (p != NULL) {
        printf("points: %s (%lld members, %lld lots checked, %zu differences)\n",
               p->ok ? "ok" : "DIFFERENCES", (long long)p->members_checked,
               (long long)p->lots_checked, p->n_differences);
        for (size_t i = 0; i < p->n_differences; i++) {
            const Loyalty__V1__PointsLedgerDifference *d = p->differences[i];
            printf("  %s member %s %s: expected %lld, actual %lld\n", d->check, d->member_id,
                   d->subject_id[0] ? d->subject_id : "-", (long long)d->expected,
                   (long long)d->actual);
        }
    }
    if (w != NULL) {
        printf("wallet: %s (%lld transfers, %lld accounts, %lld lots, %lld holds checked, %zu "
               "differences%s)\n",
               w->ok ? "ok" : "DIFFERENCES", (long long)w->transfers_checked,
               (long long)w->accounts_checked, (long long)w->lots_checked,
               (long long)w->holds_checked, w->n_differences,
               w->differences_truncated ? ", more not listed" : "");
        for (size_t i = 0; i < w->n_differences; i++) {
            const Loyalty__V1__WalletLedgerDifference *d = w->differences[i];
            printf("  %s %s: expected %lld cents, actual %lld cents %s\n", d->check, d->subject,
                   (long long)d->expected_cents, (long long)d->actual_cents, d->detail);
        }
    }
    return r->ok ? CTL_EXIT_OK : CTL_EXIT_REFUSED;
}
