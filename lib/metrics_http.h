/* metrics_http.h -- the side HTTP port every service serves next to gRPC (METRICS_ADDR):
 * GET /metrics (Prometheus text format 0.0.4), GET /livez and GET /readyz (the meaning of
 * Health Check("liveness") and Check(""): alive while the process answers; ready when
 * migrated, PostgreSQL answered the last probe and not draining). Plain HTTP on purpose: it
 * works when the gRPC port speaks TLS, for Kubernetes probes and Prometheus alike. Served by
 * libmicrohttpd on a thread of its own. */
#ifndef LOYALTY_METRICS_HTTP_H
#define LOYALTY_METRICS_HTTP_H

#include "status.h"

/** Starts serving on `addr` ("host:port", "[v6]:port"; port 0 picks a free one). Fails
 *  INVALID_ARGUMENT when the address does not resolve, UNAVAILABLE when it cannot listen.
 *  One server per process. */
status_t metrics_http_start(const char *addr);

/** The port listened on, or 0 when not serving. */
int metrics_http_port(void);

/** Stops serving (waits for the requests in progress); nothing when not serving. */
void metrics_http_stop(void);

#endif
