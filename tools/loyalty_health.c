/* loyalty_health.c -- `loyalty-health [ADDR [SERVICE]] [--wait SECONDS] [--tls]`: calls
 * grpc.health.v1.Health/Check and exits 0 when the server reports SERVING, 1 otherwise (2 on
 * bad usage). Used by scripts/up, container health checks and operators. Without ADDR it checks
 * the port of LISTEN_ADDR on 127.0.0.1, so a container's health check follows the service's own
 * configuration. --tls speaks TLS, trusting the CA in LOYALTY_TLS_CA (as services calling each
 * other do); the server's certificate must name the address dialled (127.0.0.1 without ADDR). */
#include "arena.h"
#include "config.h"
#include "grpc/health/v1/health.pb-c.h"
#include "rpc_client.h"

#include <grpc/grpc.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int check_once(const char *addr, const char *service, bool quiet) {
    arena_t arena;
    arena_init(&arena);
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    req.service = (char *)service;
    ProtobufCMessage *resp = NULL;
    rpc_call_opts_t opts = {.timeout_ms = 1000};
    status_t st = rpc_call(rpc_channel_get(addr), &grpc__health__v1__health__descriptor, "Check",
                           &req.base, &arena, &resp, &opts);
    int rc = 1;
    if (status_is_ok(&st)) {
        int s = ((Grpc__Health__V1__HealthCheckResponse *)resp)->status;
        rc = s == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING ? 0 : 1;
        if (!quiet) {
            printf("%s\n", rc == 0 ? "SERVING" : "NOT_SERVING");
        }
    } else if (!quiet) {
        printf("%s: %s\n", status_code_name(st.code), st.message);
    }
    arena_free(&arena);
    return rc;
}

/* Client defaults for --tls: the roots from LOYALTY_TLS_CA, which must be readable (a probe
 * that silently fell back to the system's roots would fail for a reason nobody sees). */
static bool tls_setup(void) {
    const char *ca = getenv("LOYALTY_TLS_CA");
    if (ca == NULL || ca[0] == '\0') {
        fprintf(stderr, "loyalty-health: --tls needs LOYALTY_TLS_CA (the CA certificate, PEM)\n");
        return false;
    }
    FILE *f = fopen(ca, "rb");
    if (f == NULL) {
        fprintf(stderr, "loyalty-health: cannot read LOYALTY_TLS_CA %s\n", ca);
        return false;
    }
    fclose(f);
    static config_t cfg; /* rpc_client_init reads it once */
    memset(&cfg, 0, sizeof cfg);
    cfg.client_timeout_ms = 1000;
    cfg.max_message_bytes = 4194304;
    if ((size_t)snprintf(cfg.tls_ca_path, sizeof cfg.tls_ca_path, "%s", ca) >=
        sizeof cfg.tls_ca_path) {
        fprintf(stderr, "loyalty-health: LOYALTY_TLS_CA is too long\n");
        return false;
    }
    rpc_client_init(&cfg);
    return true;
}

int main(int argc, char **argv) {
    const char *addr = NULL;
    const char *service = "";
    long wait_s = 0;
    bool tls = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--wait") == 0 && i + 1 < argc) {
            wait_s = strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--tls") == 0) {
            tls = true;
        } else if (addr == NULL) {
            addr = argv[i];
        } else {
            service = argv[i];
        }
    }
    char local[64];
    const char *listen = getenv("LISTEN_ADDR");
    const char *port = listen ? strrchr(listen, ':') : NULL;
    if (addr == NULL && port != NULL && port[1] != '\0' &&
        (size_t)snprintf(local, sizeof local, "127.0.0.1%s", port) < sizeof local) {
        addr = local;
    }
    if (addr == NULL) {
        fprintf(stderr, "usage: loyalty-health [HOST:PORT [SERVICE]] [--wait SECONDS] [--tls]\n"
                        "(without HOST:PORT, LISTEN_ADDR's port on 127.0.0.1; --tls trusts the "
                        "CA in LOYALTY_TLS_CA)\n");
        return 2;
    }
    grpc_init();
    if (tls && !tls_setup()) {
        grpc_shutdown();
        return 2;
    }
    time_t until = time(NULL) + wait_s;
    int rc;
    for (;;) {
        bool last = time(NULL) >= until;
        rc = check_once(addr, service, !last);
        if (rc == 0 || last) {
            break;
        }
        struct timespec ts = {0, 200 * 1000000};
        nanosleep(&ts, NULL);
    }
    if (rc == 0 && wait_s > 0) {
        printf("SERVING\n");
    }
    rpc_client_shutdown();
    grpc_shutdown();
    return rc;
}
