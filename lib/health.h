/* health.h -- grpc.health.v1.Health/Check and Watch for every server. SERVING only when the
 * migrations have been applied, PostgreSQL answered the last probe and the server is not shutting
 * down. The state is three atomic flags, so Check never touches the database or takes a lock. */
#ifndef LOYALTY_HEALTH_H
#define LOYALTY_HEALTH_H

#include "rpc.h"

#include <stdbool.h>

void health_set_migrated(bool v);
void health_set_db_reachable(bool v);
void health_set_shutting_down(bool v);
bool health_is_serving(void);
/** Whether migrations are applied (RPCs other than Health wait for this). */
bool health_is_migrated(void);

/** Adds a fully-qualified service name ("loyalty.v1.MemberService") Check answers for. At most
 *  HEALTH_SERVICES_MAX, before the server starts. */
#define HEALTH_SERVICES_MAX 8
void health_register_service(const char *full_name);

/** The service name Check always answers SERVING for while the server answers at all (not
 *  only when it can serve): for liveness probes, which must not restart a process that is
 *  waiting for PostgreSQL or draining. "" gives readiness. */
#define HEALTH_LIVENESS "liveness"

/** The Check handler; unknown service names fail NOT_FOUND. */
rpc_handler_t health_check;

/** The Watch handler (server streaming): the status Check would give at once, then each
 *  change (rpc_stream_watch); SERVICE_UNKNOWN for a name not served, and the call stays open. */
rpc_handler_t health_watch;

extern const rpc_service_t health_service;

#endif
