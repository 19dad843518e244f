/* fuzz_methods.h -- every method of every service the runtime serves, in one fixed order: the
 * request fuzzer's first input byte picks one (index modulo the count), and the seed generator
 * writes its corpus in the same order. */
#ifndef LOYALTY_FUZZ_METHODS_H
#define LOYALTY_FUZZ_METHODS_H

#include "grpc/health/v1/health.pb-c.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "grpc/reflection/v1alpha/reflection.pb-c.h"
#include "loyalty/v1/campaign.pb-c.h"
#include "loyalty/v1/gateway.pb-c.h"
#include "loyalty/v1/member.pb-c.h"
#include "loyalty/v1/points.pb-c.h"
#include "loyalty/v1/promo.pb-c.h"
#include "loyalty/v1/referral.pb-c.h"
#include "loyalty/v1/wallet.pb-c.h"

#include <stddef.h>

static const ProtobufCServiceDescriptor *const fuzz_services[] = {
    &loyalty__v1__member_service__descriptor,
    &loyalty__v1__points_service__descriptor,
    &loyalty__v1__wallet_service__descriptor,
    &loyalty__v1__referral_service__descriptor,
    &loyalty__v1__promo_service__descriptor,
    &loyalty__v1__campaign_service__descriptor,
    &loyalty__v1__gateway__descriptor,
    &grpc__health__v1__health__descriptor,
    &grpc__reflection__v1__server_reflection__descriptor,
    &grpc__reflection__v1alpha__server_reflection__descriptor,
};
#define FUZZ_SERVICES (sizeof fuzz_services / sizeof fuzz_services[0])

/* The count of all methods, and the `index`th of them (0-based, services in the order above,
 * methods in .proto order). */
static inline size_t fuzz_method_count(void) {
    size_t n = 0;
    for (size_t s = 0; s < FUZZ_SERVICES; s++) {
        n += fuzz_services[s]->n_methods;
    }
    return n;
}

static inline const ProtobufCMethodDescriptor *fuzz_method(size_t index) {
    for (size_t s = 0; s < FUZZ_SERVICES; s++) {
        if (index < fuzz_services[s]->n_methods) {
            return &fuzz_services[s]->methods[index];
        }
        index -= fuzz_services[s]->n_methods;
    }
    return NULL;
}

#endif
