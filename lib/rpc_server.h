/* rpc_server.h -- the gRPC server every service runs: generic registration of protobuf-c
 * service descriptors on the core C API, a pool of worker threads each with its own PostgreSQL
 * and Redis connection, grpc.health.v1, bearer-token auth, idempotency, JSON access logs,
 * migrations before SERVING, background jobs, graceful shutdown on SIGTERM/SIGINT. */
#ifndef LOYALTY_RPC_SERVER_H
#define LOYALTY_RPC_SERVER_H

#include "rpc.h"

#include <stddef.h>

typedef struct rpc_server_options {
    const char *service_name; /* "member-svc": logs, application_name */
    int default_port;         /* docs/architecture.md#services */
    const char *db_schema;    /* "member" */
    const embed_file_t *migrations;
    const rpc_service_t *services; /* the service's own; the runtime adds Health, reflection
                                      and AuditService (audit.h) */
    size_t service_count;
    const rpc_job_t *jobs; /* ends with an entry whose name is NULL; may be NULL */
    /* Consumers of the domain event stream (consume.h), ending with an entry whose group is
     * NULL; may be NULL. */
    const struct rpc_consumer *consumers;
    /* With a credential file (README "Credentials"), the methods a storefront credential may
     * call ("/loyalty.v1.Gateway/Checkout"), ending with NULL; may be NULL. Every other method
     * is for admin and service credentials; server reflection for any valid credential. */
    const char *const *storefront_methods;
    /* Services ("member-svc") whose cache invalidations this one's near cache follows too, for
     * values it keeps from them under their own cache keys; ending with NULL; may be NULL. */
    const char *const *follow_invalidations;
    void *service_state; /* handed to handlers as ctx->service_state */
    /* Called once after configuration is loaded and before serving (may be NULL): services
     * create their clients here. A non-OK status stops the program. */
    status_t (*on_start)(const config_t *cfg, void **service_state);
    void (*on_stop)(void *service_state);
} rpc_server_options_t;

/** Runs the service until SIGTERM or SIGINT, then shuts down gracefully. Accepts the flags
 *  `--migrate` (apply migrations and exit) and `--help`. Returns the process exit code: 0 after
 *  a graceful shutdown, 1 on a configuration or startup error, 2 on bad flags. */
int rpc_server_main(const rpc_server_options_t *opts, int argc, char **argv);

/** The runtime's own migrations (the idempotency table), applied before the service's. */
extern const embed_file_t runtime_migrations[];

#endif
