/* test_audit.c -- the list of audited RPCs (lib/audit.c) names methods that exist, each once. */
#include "audit.h"
#include "loyalty/v1/campaign.pb-c.h"
#include "loyalty/v1/gateway.pb-c.h"
#include "loyalty/v1/member.pb-c.h"
#include "loyalty/v1/points.pb-c.h"
#include "loyalty/v1/promo.pb-c.h"
#include "loyalty/v1/referral.pb-c.h"
#include "loyalty/v1/wallet.pb-c.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

Test(audit, every_audited_path_is_a_method_of_the_suite) {
    const ProtobufCServiceDescriptor *services[] = {
        &loyalty__v1__gateway__descriptor,        &loyalty__v1__campaign_service__descriptor,
        &loyalty__v1__member_service__descriptor, &loyalty__v1__points_service__descriptor,
        &loyalty__v1__wallet_service__descriptor, &loyalty__v1__referral_service__descriptor,
        &loyalty__v1__promo_service__descriptor,
    };
    int listed = 0;
    while (audit_methods[listed]) {
        listed++;
    }
    int found = 0;
    for (size_t s = 0; s < sizeof services / sizeof services[0]; s++) {
        for (unsigned i = 0; i < services[s]->n_methods; i++) {
            char path[160];
            snprintf(path, sizeof path, "/%s/%s", services[s]->name, services[s]->methods[i].name);
            found += audit_is_audited(path);
        }
    }
    cr_assert_eq(found, listed, "%d of the %d audited paths name a method", found, listed);
    cr_assert_geq(listed, 20);
    cr_assert(audit_is_audited("/loyalty.v1.MemberService/UpdateTier"));
    cr_assert_not(audit_is_audited("/loyalty.v1.MemberService/CreateMember"));
    cr_assert_not(audit_is_audited("/loyalty.v1.Gateway/Checkout"));
}
