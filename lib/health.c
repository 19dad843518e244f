/* health.c -- serving state and the grpc.health.v1 Check and Watch handlers. */
#include "health.h"

#include "grpc/health/v1/health.pb-c.h"

#include <stdatomic.h>
#include <string.h>

static atomic_bool g_migrated;
static atomic_bool g_db_reachable;
static atomic_bool g_shutting_down;
static const char *g_services[HEALTH_SERVICES_MAX];
static int g_service_count;

void health_set_migrated(bool v) {
    atomic_store(&g_migrated, v);
}

void health_set_db_reachable(bool v) {
    atomic_store(&g_db_reachable, v);
}

void health_set_shutting_down(bool v) {
    atomic_store(&g_shutting_down, v);
}

bool health_is_migrated(void) {
    return atomic_load(&g_migrated);
}

bool health_is_serving(void) {
    return atomic_load(&g_migrated) && atomic_load(&g_db_reachable) &&
           !atomic_load(&g_shutting_down);
}

void health_register_service(const char *full_name) {
    if (g_service_count < HEALTH_SERVICES_MAX) {
        g_services[g_service_count++] = full_name;
    }
}

status_t health_check(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg, ProtobufCMessage *resp_msg) {
    (void)ctx;
    const Grpc__Health__V1__HealthCheckRequest *req =
        (const Grpc__Health__V1__HealthCheckRequest *)req_msg;
    Grpc__Health__V1__HealthCheckResponse *resp = (Grpc__Health__V1__HealthCheckResponse *)resp_msg;
    if (strcmp(req->service, HEALTH_LIVENESS) == 0) {
        /* Answered at all means alive: a liveness probe must not restart a pod because
         * PostgreSQL is away or because it is draining. */
        resp->status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
        return status_ok();
    }
    bool known = req->service[0] == '\0';
    for (int i = 0; i < g_service_count && !known; i++) {
        known = strcmp(req->service, g_services[i]) == 0;
    }
    if (!known) {
        return status_make(STATUS_NOT_FOUND, REASON_UNKNOWN_SERVICE, "unknown service");
    }
    resp->status = health_is_serving()
                       ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                       : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
    return status_ok();
}

/* The status Check would answer for `service`; SERVICE_UNKNOWN for a name not served. */
static int health_status_of(const char *service) {
    if (strcmp(service, HEALTH_LIVENESS) == 0) {
        return GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
    }
    bool known = service[0] == '\0';
    for (int i = 0; i < g_service_count && !known; i++) {
        known = strcmp(service, g_services[i]) == 0;
    }
    if (!known) {
        return GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
    }
    return health_is_serving()
               ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
               : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
}

static void health_fill(int status, ProtobufCMessage *resp_msg) {
    Grpc__Health__V1__HealthCheckResponse *resp = (Grpc__Health__V1__HealthCheckResponse *)resp_msg;
    resp->status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)status;
}

status_t health_watch(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg, ProtobufCMessage *resp_msg) {
    const Grpc__Health__V1__HealthCheckRequest *req =
        (const Grpc__Health__V1__HealthCheckRequest *)req_msg;
    /* As the gRPC health protocol asks: an unknown service is not an error but a status
     * (SERVICE_UNKNOWN), and the call stays open. */
    int status = health_status_of(req->service);
    health_fill(status, resp_msg);
    status_t st = rpc_stream_send(ctx, resp_msg);
    if (!status_is_ok(&st)) {
        return st;
    }
    return rpc_stream_watch(ctx, req->service, status, health_status_of, health_fill);
}

static const rpc_method_t health_methods[] = {
    {"Check", health_check, RPC_READ},
    {"Watch", health_watch, RPC_STREAM},
    {NULL, NULL, RPC_READ},
};

const rpc_service_t health_service = {&grpc__health__v1__health__descriptor, health_methods, NULL};
