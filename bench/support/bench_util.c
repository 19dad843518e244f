/* bench_util.c -- shared plumbing of the benchmark programs. */
#include "bench_util.h"

#include "arena.h"
#include "grpc/health/v1/health.pb-c.h"
#include "rpc_client.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BENCH_SERVICES_MAX 8

extern const char *__progname; /* glibc: the program's name for messages */

static pid_t g_pids[BENCH_SERVICES_MAX];
static int g_pid_count;

int64_t bench_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void bench_stop_services(void) {
    for (int i = 0; i < g_pid_count; i++) {
        kill(g_pids[i], SIGTERM);
    }
    for (int i = 0; i < g_pid_count; i++) {
        waitpid(g_pids[i], NULL, 0);
    }
    g_pid_count = 0;
}

void bench_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", __progname);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    bench_stop_services();
    exit(1);
}

void bench_must(status_t st, const char *what) {
    if (!status_is_ok(&st)) {
        bench_fail("%s: %s %s %s", what, status_code_name(st.code), st.reason, st.message);
    }
}

int bench_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        bench_fail("no free port");
    }
    close(fd);
    return ntohs(sa.sin_port);
}

static bool bench_serving(const char *addr) {
    arena_t a;
    arena_init(&a);
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    rpc_call_opts_t opts = {.timeout_ms = 500};
    status_t st = rpc_call(rpc_channel_get(addr), &grpc__health__v1__health__descriptor, "Check",
                           &req.base, &a, &resp, &opts);
    bool ok =
        status_is_ok(&st) && ((Grpc__Health__V1__HealthCheckResponse *)resp)->status ==
                                 GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
    arena_free(&a);
    return ok;
}

/* The environment variable of a service: ("points-svc", "_BIN") -> "POINTS_SVC_BIN". */
static void bench_env_name(const char *name, const char *suffix, char *out, size_t cap) {
    size_t n = 0, len = strlen(suffix);
    for (const char *p = name; *p && n + len + 1 < cap; p++) {
        out[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    }
    memcpy(out + n, suffix, len + 1);
}

pid_t bench_start_service(const char *name, const char *const *env, char *addr, size_t cap) {
    if (g_pid_count == BENCH_SERVICES_MAX) {
        bench_fail("too many services");
    }
    char var[64], path[256];
    bench_env_name(name, "_BIN", var, sizeof var);
    const char *bin = getenv(var);
    if (bin == NULL) {
        snprintf(path, sizeof path, "build/%s/%s", name, name);
        bin = path;
    }
    snprintf(addr, cap, "127.0.0.1:%d", bench_free_port());
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        bench_fail("fork failed");
    }
    if (pid == 0) {
        /* Never outlive the program, even when a signal ends it (e.g. SIGPIPE under `| head`),
         * which bench_stop_services cannot see; the check closes the race with its exit. */
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent) {
            _exit(127);
        }
        char listen[96];
        snprintf(listen, sizeof listen, "LISTEN_ADDR=%s", addr);
        putenv(listen);
        putenv("LOG_LEVEL=warn");
        for (int i = 0; env && env[i]; i++) {
            putenv((char *)env[i]);
        }
        if (freopen("/dev/null", "w", stdout) == NULL ||
            freopen("/dev/null", "w", stderr) == NULL) {
            _exit(127);
        }
        execl(bin, bin, (char *)NULL);
        _exit(127);
    }
    g_pids[g_pid_count++] = pid;
    for (int i = 0; i < 300; i++) {
        if (bench_serving(addr)) {
            return pid;
        }
        usleep(100 * 1000);
    }
    bench_fail("%s did not become SERVING (set %s or run from the repository root)", name, var);
}

const char *bench_service_addr(const char *name, const char *const *env, pid_t *pid) {
    static char addrs[BENCH_SERVICES_MAX][64];
    static int n_addrs;
    char var[64];
    bench_env_name(name, "_ADDR", var, sizeof var);
    const char *addr = getenv(var);
    if (pid) {
        *pid = 0;
    }
    if (addr != NULL) {
        return addr;
    }
    if (n_addrs == BENCH_SERVICES_MAX) {
        bench_fail("too many services");
    }
    pid_t started = bench_start_service(name, env, addrs[n_addrs], sizeof addrs[n_addrs]);
    if (pid) {
        *pid = started;
    }
    return addrs[n_addrs++];
}

PGconn *bench_pg_connect(void) {
    const char *dsn = getenv("LOYALTY_PG_DSN");
    if (dsn == NULL) {
        bench_fail("LOYALTY_PG_DSN is not set");
    }
    PGconn *pg = PQconnectdb(dsn);
    if (PQstatus(pg) != CONNECTION_OK) {
        bench_fail("cannot connect to PostgreSQL: %s", PQerrorMessage(pg));
    }
    return pg;
}

PGresult *bench_query(PGconn *pg, const char *text, int n, const char *const *params) {
    PGresult *r = PQexecParams(pg, text, n, NULL, params, NULL, NULL, 0);
    ExecStatusType s = PQresultStatus(r);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
        bench_fail("SQL failed: %s\n%s", text, PQresultErrorMessage(r));
    }
    return r;
}

void bench_sql(PGconn *pg, const char *text, int n, const char *const *params) {
    PQclear(bench_query(pg, text, n, params));
}

static int bench_cmp_i64(const void *x, const void *y) {
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return a < b ? -1 : a > b;
}

double bench_percentile_ms(int64_t *v, int n, double p) {
    if (n <= 0) {
        return 0;
    }
    qsort(v, (size_t)n, sizeof *v, bench_cmp_i64);
    int i = (int)(p * (double)(n - 1));
    return (double)v[i] / 1000.0;
}
