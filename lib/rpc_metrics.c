/* rpc_metrics.c -- the runtime's metric families, the hooks that record them, the collectors
 * run at scrape time (process, readiness) and the start and stop of the HTTP port. */
#include "rpc_metrics.h"

#include "health.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"
#include "rpc.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define SERVICE_NAME_MAX 128

static metrics_family_t server_handled = METRICS_COUNTER(
    "grpc_server_handled_total", "RPCs completed on the server, regardless of success or failure.",
    "grpc_type", "grpc_service", "grpc_method", "grpc_code");
static metrics_family_t server_seconds = METRICS_HISTOGRAM(
    "grpc_server_handling_seconds",
    "Response latency (seconds) of RPCs handled by the server, from arrival to status.",
    metrics_latency_buckets_s, "grpc_type", "grpc_service", "grpc_method");
static metrics_family_t client_handled = METRICS_COUNTER(
    "grpc_client_handled_total", "RPCs completed by the client, regardless of success or failure.",
    "grpc_type", "grpc_service", "grpc_method", "grpc_code");
static metrics_family_t client_seconds = METRICS_HISTOGRAM(
    "grpc_client_handling_seconds",
    "Latency (seconds) of calls to other services, until the status was received.",
    metrics_latency_buckets_s, "grpc_type", "grpc_service", "grpc_method");
static metrics_family_t error_reasons = METRICS_COUNTER(
    "loyalty_error_reason_total", "Failed RPCs by their loyalty-error-reason trailer.",
    "grpc_service", "grpc_method", "reason");
static metrics_family_t db_round_trips =
    METRICS_COUNTER("loyalty_db_round_trips_total",
                    "PostgreSQL round trips by the RPC method (or job) they served; "
                    "\"background\" for the runtime's own threads.",
                    "grpc_method");
static metrics_family_t db_transactions = METRICS_COUNTER(
    "loyalty_db_transactions_total",
    "PostgreSQL transactions begun (each retry again) by the RPC method (or job) they served.",
    "grpc_method");
static metrics_family_t db_statement_seconds = METRICS_HISTOGRAM(
    "loyalty_db_statement_seconds",
    "Time (seconds) of one PostgreSQL round trip: a statement, with any BEGIN, deferred writes "
    "and COMMIT sent along.",
    metrics_latency_buckets_s);
static metrics_family_t db_open_gauge =
    METRICS_GAUGE("loyalty_db_connections_open", "PostgreSQL connections open.");
static metrics_family_t db_in_use =
    METRICS_GAUGE("loyalty_db_connections_in_use",
                  "PostgreSQL connections running a statement or holding a transaction open.");
static metrics_family_t db_retries = METRICS_COUNTER(
    "loyalty_db_serialization_retries_total",
    "Transactions retried after a serialization failure, deadlock or lock timeout.");
static metrics_family_t db_pool_wait_seconds = METRICS_HISTOGRAM(
    "loyalty_db_pool_wait_seconds",
    "Time (seconds) a statement or transaction waited for a connection of the process's pool "
    "(DB_POOL_SIZE > 0), whether or not one came free.",
    metrics_latency_buckets_s);
static metrics_family_t db_pool_exhausted = METRICS_COUNTER(
    "loyalty_db_pool_exhausted_total",
    "Statements or transactions refused (UNAVAILABLE, DB_POOL_EXHAUSTED) because no pooled "
    "connection came free within DB_POOL_WAIT_MS.");
static metrics_family_t db_up = METRICS_GAUGE(
    "loyalty_db_up", "1 when PostgreSQL answered the last readiness probe (every 2 s), else 0.");
static metrics_family_t redis_calls =
    METRICS_COUNTER("loyalty_redis_calls_total", "Redis commands or pipelines sent.");
static metrics_family_t redis_errors = METRICS_COUNTER(
    "loyalty_redis_errors_total", "Redis commands or pipelines that failed (or found Redis down).");
static metrics_family_t cache_requests = METRICS_COUNTER(
    "loyalty_cache_requests_total", "Cache lookups by cache (near: in-process, redis) and result.",
    "cache", "result");
static metrics_family_t batch_calls = METRICS_COUNTER(
    "loyalty_batch_calls_total",
    "Calls served inside BatchService/Run batches, by method and how they ran: merged (by the "
    "method's merger, sharing statements) or alone (a part of the batch's transaction each).",
    "method", "run");
static metrics_family_t outbox_pending = METRICS_GAUGE(
    "loyalty_outbox_pending_rows", "Outbox entries not yet published to the event streams.");
static metrics_family_t outbox_oldest_age =
    METRICS_GAUGE("loyalty_outbox_oldest_pending_age_seconds",
                  "Age (seconds) of the oldest outbox entry not yet published; 0 when none.");
static metrics_family_t ready =
    METRICS_GAUGE("loyalty_ready", "1 when /readyz answers 200 (Health Check(\"\") SERVING).");
static metrics_family_t process_rss =
    METRICS_GAUGE("process_resident_memory_bytes", "Resident memory size in bytes.");
static metrics_family_t process_cpu = METRICS_COUNTER(
    "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.");
static metrics_family_t process_fds =
    METRICS_GAUGE("process_open_fds", "Number of open file descriptors.");
static metrics_family_t process_start =
    METRICS_GAUGE("process_start_time_seconds", "Start time of the process since unix epoch.");

static metrics_family_t *const runtime_families[] = {
    &server_handled,    &server_seconds, &client_handled,    &client_seconds,
    &error_reasons,     &db_round_trips, &db_transactions,   &db_statement_seconds,
    &db_open_gauge,     &db_in_use,      &db_retries,        &db_pool_wait_seconds,
    &db_pool_exhausted, &db_up,          &redis_calls,       &redis_errors,
    &cache_requests,    &batch_calls,    &outbox_pending,    &outbox_oldest_age, &ready,
    &process_rss,       &process_cpu,    &process_fds,       &process_start,
};

const char *rpc_metrics_code_name(int code) {
    static const char *const names[] = {
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    };
    return code >= 0 && code < (int)(sizeof names / sizeof names[0]) ? names[code] : "Unknown";
}

/* The short method name of the call this thread serves (its job's name for a job), or
 * "background"; a pointer into the method table, so no copy. */
static const char *method_label(void) {
    const rpc_ctx_t *ctx = rpc_ctx_current();
    if (ctx == NULL || ctx->method == NULL) {
        return "background";
    }
    const char *slash = strrchr(ctx->method, '/');
    return slash ? slash + 1 : ctx->method;
}

/* The series of the last calls a worker served, by the method's path pointer (stable: the
 * server's method table) and code, so that the common call finds them without hashing its
 * labels. Direct-mapped; a collision just looks the series up again. */
#define SERVER_CACHE_SIZE 64
typedef struct server_cache_entry {
    const char *path;
    int code;
    bool streaming;
    metrics_series_t *handled, *seconds;
} server_cache_entry_t;
static __thread server_cache_entry_t t_server_cache[SERVER_CACHE_SIZE];

void rpc_metrics_server_handled(const char *path, bool streaming, int code, const char *reason,
                                int64_t latency_us) {
    if (!metrics_enabled()) {
        return;
    }
    server_cache_entry_t *e =
        &t_server_cache[(((uintptr_t)path >> 4) ^ (uintptr_t)code * 31) % SERVER_CACHE_SIZE];
    if (e->path == path && e->code == code && e->streaming == streaming && e->handled != NULL &&
        (code == 0 || reason == NULL || reason[0] == '\0')) {
        metrics_series_add(e->handled, 1);
        metrics_series_observe(e->seconds, (double)latency_us / 1e6);
        return;
    }
    /* "/pkg.Service/Method" */
    const char *slash = strrchr(path, '/');
    char service[SERVICE_NAME_MAX];
    size_t n = slash && slash > path ? (size_t)(slash - path - 1) : 0;
    if (n >= sizeof service) {
        n = sizeof service - 1;
    }
    memcpy(service, path + 1, n);
    service[n] = '\0';
    const char *method = slash ? slash + 1 : path;
    const char *type = streaming ? "server_stream" : "unary";
    *e = (server_cache_entry_t){
        .path = path,
        .code = code,
        .streaming = streaming,
        .handled = metrics_series(
            &server_handled, (const char *[]){type, service, method, rpc_metrics_code_name(code)}),
        .seconds = metrics_series(&server_seconds, (const char *[]){type, service, method}),
    };
    metrics_series_add(e->handled, 1);
    metrics_series_observe(e->seconds, (double)latency_us / 1e6);
    if (code != 0 && reason != NULL && reason[0] != '\0') {
        metrics_inc(&error_reasons, (const char *[]){service, method, reason});
    }
}

void rpc_metrics_client_handled(const char *service, const char *method, int code,
                                int64_t latency_us) {
    if (!metrics_enabled()) {
        return;
    }
    metrics_inc(&client_handled,
                (const char *[]){"unary", service, method, rpc_metrics_code_name(code)});
    metrics_observe(&client_seconds, (const char *[]){"unary", service, method},
                    (double)latency_us / 1e6);
}

void rpc_metrics_db_round_trip(double seconds) {
    if (!metrics_enabled()) {
        return;
    }
    metrics_inc(&db_round_trips, (const char *[]){method_label()});
    metrics_observe(&db_statement_seconds, NULL, seconds);
}

void rpc_metrics_db_transaction(void) {
    if (metrics_enabled()) {
        metrics_inc(&db_transactions, (const char *[]){method_label()});
    }
}

void rpc_metrics_db_serialization_retry(void) {
    metrics_inc(&db_retries, NULL);
}

void rpc_metrics_db_connections_open(int64_t delta) {
    metrics_gauge_add(&db_open_gauge, NULL, delta);
}

void rpc_metrics_db_connections_in_use(int64_t delta) {
    metrics_gauge_add(&db_in_use, NULL, delta);
}

void rpc_metrics_db_pool_wait(double seconds, bool got) {
    metrics_observe(&db_pool_wait_seconds, NULL, seconds);
    if (!got) {
        metrics_inc(&db_pool_exhausted, NULL);
    }
}

void rpc_metrics_db_up(bool up) {
    metrics_set(&db_up, NULL, up ? 1 : 0);
}

void rpc_metrics_redis_call(bool ok) {
    metrics_inc(&redis_calls, NULL);
    if (!ok) {
        metrics_inc(&redis_errors, NULL);
    }
}

void rpc_metrics_cache_request(const char *cache, bool hit) {
    metrics_inc(&cache_requests, (const char *[]){cache, hit ? "hit" : "miss"});
}

void rpc_metrics_batch_call(const char *method, bool merged) {
    metrics_inc(&batch_calls, (const char *[]){method, merged ? "merged" : "alone"});
}

void rpc_metrics_outbox(int64_t pending_rows, double oldest_pending_age_s) {
    metrics_set(&outbox_pending, NULL, (double)pending_rows);
    metrics_set(&outbox_oldest_age, NULL, oldest_pending_age_s);
}

/* ---- scrape-time collectors ---- */

static int count_open_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL) {
        return -1;
    }
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

static void collect_process(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        double cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
        metrics_set(&process_cpu, NULL, cpu_s);
    }
    FILE *f = fopen("/proc/self/statm", "r");
    if (f != NULL) {
        unsigned long size_pages = 0, resident_pages = 0;
        if (fscanf(f, "%lu %lu", &size_pages, &resident_pages) == 2) {
            metrics_set(&process_rss, NULL, (double)resident_pages * (double)sysconf(_SC_PAGESIZE));
        }
        fclose(f);
    }
    int fds = count_open_fds();
    if (fds >= 0) {
        metrics_set(&process_fds, NULL, fds);
    }
    metrics_set(&ready, NULL, health_is_serving() ? 1 : 0);
}

/* Boot time (from /proc/stat) plus the process's start in clock ticks after boot (field 22 of
 * /proc/self/stat, after the parenthesised command name). */
static double process_start_time_s(void) {
    double btime = 0;
    char line[256];
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL) {
        return 0;
    }
    while (fgets(line, sizeof line, f) != NULL) {
        if (sscanf(line, "btime %lf", &btime) == 1) {
            break;
        }
    }
    fclose(f);
    f = fopen("/proc/self/stat", "r");
    if (f == NULL) {
        return 0;
    }
    char stat[1024];
    size_t n = fread(stat, 1, sizeof stat - 1, f);
    fclose(f);
    stat[n] = '\0';
    const char *p = strrchr(stat, ')');
    unsigned long long start_ticks = 0;
    /* after ")": state (3) then fields 4..21, then starttime (22) */
    if (p == NULL || sscanf(p + 2,
                            "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d "
                            "%*d %*d %*d %*d %llu",
                            &start_ticks) != 1) {
        return 0;
    }
    return btime + (double)start_ticks / (double)sysconf(_SC_CLK_TCK);
}

void rpc_metrics_start(const config_t *cfg) {
    bool on = cfg->metrics_addr[0] != '\0';
    metrics_set_enabled(on);
    if (!on) {
        log_msg(LOG_INFO, "metrics off (METRICS_ADDR empty)");
        return;
    }
    for (size_t i = 0; i < sizeof runtime_families / sizeof runtime_families[0]; i++) {
        metrics_register(runtime_families[i]);
    }
    metrics_set(&process_start, NULL, process_start_time_s());
    metrics_set(&db_up, NULL, 0); /* until the migrations or a probe reach PostgreSQL */
    metrics_add_collector(collect_process);
    status_t st = metrics_http_start(cfg->metrics_addr);
    if (!status_is_ok(&st)) {
        log_msg(LOG_ERROR, "no /metrics, /livez, /readyz: %s", st.message);
        return;
    }
    log_msg(LOG_INFO, "metrics and probes on http://%s (port %d): /metrics /livez /readyz",
            cfg->metrics_addr, metrics_http_port());
}

void rpc_metrics_stop(void) {
    metrics_http_stop();
}
