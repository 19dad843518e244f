/* harness.c -- child processes for services and Redis, health waits, unique names. */
#include "harness.h"

#include "grpc/health/v1/health.pb-c.h"
#include "ids.h"

#include <criterion/criterion.h>
#include <grpc/grpc.h>
#include <libpq-fe.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* Strings handed out by harness_merchant/harness_key, freed by harness_fini. */
#define HARNESS_STRINGS_MAX 4096
static char *g_strings[HARNESS_STRINGS_MAX];
static int g_string_count;

static char *harness_string(size_t n) {
    cr_assert(g_string_count < HARNESS_STRINGS_MAX, "too many harness strings");
    char *s = malloc(n);
    cr_assert(s != NULL);
    g_strings[g_string_count++] = s;
    return s;
}

/* Processes started by this test, killed at harness_fini if still running: a failed assertion
 * must not leave services behind (they would hold the test's output pipe open). */
#define HARNESS_PROCS_MAX 32
static svc_proc_t *g_procs[HARNESS_PROCS_MAX];
static int g_proc_count;
static redis_proc_t *g_redis[HARNESS_PROCS_MAX];
static int g_redis_count;

void harness_track(svc_proc_t *p) {
    for (int i = 0; i < g_proc_count; i++) {
        if (g_procs[i] == p) {
            return;
        }
    }
    if (g_proc_count < HARNESS_PROCS_MAX) {
        g_procs[g_proc_count++] = p;
    }
}

static void harness_track_redis(redis_proc_t *r) {
    for (int i = 0; i < g_redis_count; i++) {
        if (g_redis[i] == r) {
            return;
        }
    }
    if (g_redis_count < HARNESS_PROCS_MAX) {
        g_redis[g_redis_count++] = r;
    }
}

static void harness_reap_all(void) {
    for (int i = 0; i < g_proc_count; i++) {
        if (g_procs[i]->pid > 0) {
            kill(g_procs[i]->pid, SIGKILL);
            waitpid(g_procs[i]->pid, NULL, 0);
            g_procs[i]->pid = 0;
        }
    }
    g_proc_count = 0;
    for (int i = 0; i < g_redis_count; i++) {
        if (g_redis[i]->pid > 0) {
            kill(g_redis[i]->pid, SIGKILL);
            waitpid(g_redis[i]->pid, NULL, 0);
            g_redis[i]->pid = 0;
        }
    }
    g_redis_count = 0;
}

static char g_private_db[64];

const char *harness_private_database(void) {
    cr_assert(g_private_db[0] == '\0', "one private database per test");
    char token[13];
    id_random_token("abcdefghijklmnopqrstuvwxyz0123456789", 12, token);
    snprintf(g_private_db, sizeof g_private_db, "test_%s", token);
    PGconn *pg = PQconnectdb(harness_pg_dsn());
    cr_assert_eq(PQstatus(pg), CONNECTION_OK, "%s", PQerrorMessage(pg));
    char sql[128];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", g_private_db);
    PGresult *r = PQexec(pg, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(pg);
    /* In a conninfo string the last value of a keyword wins. */
    char *dsn = harness_string(strlen(harness_pg_dsn()) + 80);
    sprintf(dsn, "%s dbname=%s", harness_pg_dsn(), g_private_db);
    return dsn;
}

static void harness_drop_private_database(void) {
    if (g_private_db[0] == '\0') {
        return;
    }
    PGconn *pg = PQconnectdb(harness_pg_dsn());
    if (PQstatus(pg) == CONNECTION_OK) {
        char sql[128];
        snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", g_private_db);
        PQclear(PQexec(pg, sql));
    }
    PQfinish(pg);
    g_private_db[0] = '\0';
}

void harness_init(void) {
    grpc_init();
    rpc_client_init(NULL);
}

void harness_fini(void) {
    harness_reap_all();
    harness_drop_private_database();
    rpc_client_shutdown();
    grpc_shutdown();
    for (int i = 0; i < g_string_count; i++) {
        free(g_strings[i]);
    }
    g_string_count = 0;
}

int harness_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    socklen_t len = sizeof sa;
    cr_assert(getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
    close(fd);
    return ntohs(sa.sin_port);
}

const char *harness_pg_dsn(void) {
    const char *dsn = getenv("LOYALTY_PG_DSN");
    cr_assert(dsn != NULL, "LOYALTY_PG_DSN is not set: run the tests through scripts/test");
    return dsn;
}

db_t *harness_db_create(const char *schema, const char *application_name) {
    return harness_db_create_timeout(schema, application_name, 10000);
}

db_t *harness_db_create_timeout(const char *schema, const char *application_name,
                                int64_t statement_timeout_ms) {
    const char *pooler = getenv("LOYALTY_PG_POOLER");
    db_options_t opts = {
        .dsn = harness_pg_dsn(),
        .schema = schema,
        .application_name = application_name,
        .statement_timeout_ms = statement_timeout_ms,
        .transaction_pooler = pooler != NULL && strcmp(pooler, "transaction") == 0,
    };
    return db_create_with(&opts);
}

void harness_schema_name(const char *prefix, char out[32]) {
    char suffix[9];
    id_random_token("abcdefghijklmnopqrstuvwxyz", 8, suffix);
    int n = snprintf(out, 32, "%s_%s", prefix, suffix);
    cr_assert(n > 0 && n < 32, "schema prefix too long: %s", prefix);
}

void harness_schema_drop(db_t *db, const char *schema) {
    char drop[96];
    snprintf(drop, sizeof drop, "DROP SCHEMA %s CASCADE", schema);
    (void)db_exec_script(db, drop); /* a teardown: what is left goes with the test database */
}

PGconn *harness_observer(void) {
    PGconn *c = PQconnectdb(harness_pg_dsn());
    cr_assert(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
    return c;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

bool harness_is_serving(const char *addr) {
    arena_t arena;
    arena_init(&arena);
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    rpc_call_opts_t opts = {.timeout_ms = 500};
    status_t st = rpc_call(rpc_channel_get(addr), &grpc__health__v1__health__descriptor, "Check",
                           &req.base, &arena, &resp, &opts);
    bool serving =
        status_is_ok(&st) && ((Grpc__Health__V1__HealthCheckResponse *)resp)->status ==
                                 GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
    arena_free(&arena);
    return serving;
}

/* The name part of "KEY=VALUE" is the same in both. */
static bool env_same_name(const char *a, const char *b) {
    size_t n = strcspn(a, "=");
    return strncmp(a, b, n) == 0 && b[n] == '=';
}

/* Starts path with the test's environment plus env (a later "KEY=VALUE" replaces an earlier
 * one of the same name), its output appended to log_path. posix_spawn, not fork: the test may
 * have threads calling gRPC at that moment (a restart under load), and a forked child of a
 * threaded process that runs anything but async-signal-safe code before exec (putenv, malloc)
 * can hang on a lock another thread held. */
static pid_t spawn(const char *path, char *const argv[], const char *const *env,
                   const char *log_path) {
    extern char **environ;
    size_t n_base = 0, n_extra = 0;
    while (environ[n_base] != NULL) {
        n_base++;
    }
    while (env != NULL && env[n_extra] != NULL) {
        n_extra++;
    }
    char **envp = calloc(n_base + n_extra + 1, sizeof *envp);
    cr_assert_not_null(envp);
    size_t n = 0;
    for (size_t i = 0; i < n_base; i++) {
        bool replaced = false;
        for (size_t k = 0; k < n_extra && !replaced; k++) {
            replaced = env_same_name(env[k], environ[i]);
        }
        if (!replaced) {
            envp[n++] = environ[i];
        }
    }
    for (size_t k = 0; k < n_extra; k++) {
        bool later = false;
        for (size_t j = k + 1; j < n_extra && !later; j++) {
            later = env_same_name(env[j], env[k]);
        }
        if (!later) {
            envp[n++] = (char *)env[k];
        }
    }
    envp[n] = NULL;
    posix_spawn_file_actions_t fa;
    cr_assert_eq(posix_spawn_file_actions_init(&fa), 0);
    cr_assert_eq(posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log_path,
                                                  O_WRONLY | O_CREAT | O_APPEND, 0644),
                 0);
    cr_assert_eq(posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO), 0);
    pid_t pid = 0;
    int err = posix_spawn(&pid, path, &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    free(envp);
    cr_assert_eq(err, 0, "posix_spawn %s: %s", path, strerror(err));
    return pid;
}

/* True once something accepts TCP connections on 127.0.0.1:port. Probing TCP before gRPC keeps
 * the test's channel out of reconnect back-off while the service is still starting. */
static bool port_accepts(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

/* How often harness_start picks new ports for a service that could not listen on its own. */
#define HARNESS_LISTEN_ATTEMPTS 5

/* True when the log at `path`, from byte `from` on (what this start of the service wrote),
 * contains `text`. */
static bool log_has(const char *path, long from, const char *text) {
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return false;
    }
    static char buf[65536];
    size_t n = 0;
    if (fseek(f, from, SEEK_SET) == 0) {
        n = fread(buf, 1, sizeof buf - 1, f);
    }
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, text) != NULL;
}

/* True when the test's environment for p sets METRICS_ADDR itself. */
static bool env_sets_metrics_addr(const svc_proc_t *p) {
    for (int i = 0; p->env[i]; i++) {
        if (strncmp(p->env[i], "METRICS_ADDR=", 13) == 0) {
            return true;
        }
    }
    return false;
}

/* Starts p on p->port and waits for Health SERVING. Any failure aborts the test, but one: when
 * `may_fail_to_listen` and another process took one of the ports the harness picked between
 * harness_free_port and the service's bind, returns false with p->pid 0, for the caller to try
 * other ports. The gRPC port: the service exits saying it cannot listen. The metrics port: it
 * logs so and serves on without /metrics, which the harness stops, since tests scrape it. */
/* Starts p and waits until it serves. may_fail_to_listen: false (not an assertion) when another
 * process took its port. *died (may be NULL) allows the process to die during start (a test's
 * failpoint reached by its recovery): false with *died the wait status, p->pid 0. */
static bool harness_launch_or_die(svc_proc_t *p, bool may_fail_to_listen, int *died) {
    char bin[512];
    snprintf(bin, sizeof bin, "%s/%s/%s", LOYALTY_BUILD_DIR, p->name, p->name);
    static char listen[HARNESS_ENV_MAX][80];
    static int listen_slot;
    char *listen_env = listen[listen_slot++ % HARNESS_ENV_MAX];
    snprintf(listen_env, 80, "LISTEN_ADDR=%s", p->addr);
    static char metrics[HARNESS_ENV_MAX][80];
    char *metrics_env = metrics[(listen_slot - 1) % HARNESS_ENV_MAX];
    snprintf(metrics_env, 80, "METRICS_ADDR=127.0.0.1:%d", p->metrics_port);
    const char *env[HARNESS_ENV_MAX + 5];
    int n = 0;
    env[n++] = listen_env;
    env[n++] = metrics_env; /* before p->env: a test's own METRICS_ADDR wins */
    env[n++] = "RPC_WORKERS=8";
    for (int i = 0; p->env[i] && n < HARNESS_ENV_MAX + 3; i++) {
        env[n++] = p->env[i];
    }
    env[n] = NULL;
    char *argv[] = {bin, NULL};
    struct stat log_st;
    long log_from = stat(p->log_path, &log_st) == 0 ? (long)log_st.st_size : 0;
    p->pid = spawn(bin, argv, env, p->log_path);
    harness_track(p);
    time_t until = time(NULL) + 60;
    while (!port_accepts(p->port) || !harness_is_serving(p->addr)) {
        int status;
        if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
            p->pid = 0;
            if (may_fail_to_listen && log_has(p->log_path, log_from, "cannot listen on")) {
                return false;
            }
            if (died != NULL) {
                *died = status;
                return false;
            }
            cr_assert_fail("%s exited during start (status %d); see %s", p->name, status,
                           p->log_path);
        }
        cr_assert(time(NULL) < until, "%s did not become SERVING; see %s", p->name, p->log_path);
        sleep_ms(50);
    }
    /* The metrics server starts (or fails to) before gRPC serves: the line is in the log. */
    if (may_fail_to_listen && !env_sets_metrics_addr(p) &&
        log_has(p->log_path, log_from, "cannot listen on METRICS_ADDR")) {
        harness_kill(p);
        return false;
    }
    return true;
}

static bool harness_launch(svc_proc_t *p, bool may_fail_to_listen) {
    return harness_launch_or_die(p, may_fail_to_listen, NULL);
}

void harness_start(svc_proc_t *p, const char *name, const char *const *env) {
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    for (int i = 0; env && env[i] && i < HARNESS_ENV_MAX; i++) {
        p->env[i] = env[i];
    }
    char dir[256];
    snprintf(dir, sizeof dir, "%s/test-logs", LOYALTY_BUILD_DIR);
    mkdir(dir, 0755);
    /* A free port is only free when picked: with many tests at once another process may bind it
     * before the service does. The service then exits saying so, and gets new ports. */
    for (int attempt = 1;; attempt++) {
        p->port = harness_free_port();
        do { /* the kernel may hand the same free port out twice in a row */
            p->metrics_port = harness_free_port();
        } while (p->metrics_port == p->port);
        snprintf(p->addr, sizeof p->addr, "127.0.0.1:%d", p->port);
        snprintf(p->log_path, sizeof p->log_path, "%s/%s-%d-%d.log", dir, name, (int)getpid(),
                 p->port);
        if (harness_launch(p, attempt < HARNESS_LISTEN_ATTEMPTS)) {
            return;
        }
        fprintf(stderr,
                "harness: %s could not listen on %s or metrics port %d (taken since "
                "they were picked; see %s); trying other ports\n",
                name, p->addr, p->metrics_port, p->log_path);
    }
}

void harness_restart(svc_proc_t *p) {
    /* The same port: the test's channels point at it. */
    harness_launch(p, false);
}

bool harness_restart_may_die(svc_proc_t *p, int *status) {
    *status = 0;
    return harness_launch_or_die(p, false, status);
}

int harness_wait(svc_proc_t *p) {
    int status = 0;
    pid_t got;
    do {
        got = waitpid(p->pid, &status, 0);
    } while (got < 0 && errno == EINTR);
    p->pid = 0;
    if (WIFEXITED(status)) {
        return WEXITSTATUS(status);
    }
    return WIFSIGNALED(status) ? -WTERMSIG(status) : -1;
}

void harness_signal_term(svc_proc_t *p) {
    cr_assert(p->pid > 0);
    kill(p->pid, SIGTERM);
}

int harness_stop(svc_proc_t *p) {
    if (p->pid <= 0) {
        return 0;
    }
    kill(p->pid, SIGTERM);
    return harness_wait(p);
}

void harness_kill(svc_proc_t *p) {
    if (p->pid <= 0) {
        return;
    }
    kill(p->pid, SIGKILL);
    (void)harness_wait(p);
}

int harness_http_get(int port, const char *path, char **body) {
    if (body) {
        *body = NULL;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return 0;
    }
    char req[512];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return 0;
    }
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            cr_assert_not_null(buf);
        }
        ssize_t got = read(fd, buf + len, 4096);
        if (got <= 0) {
            break;
        }
        len += (size_t)got;
    }
    close(fd);
    buf[len] = '\0';
    int status = 0;
    if (sscanf(buf, "HTTP/%*s %d", &status) != 1) {
        status = 0;
    }
    char *start = strstr(buf, "\r\n\r\n");
    if (body) {
        *body = strdup(start ? start + 4 : "");
        cr_assert_not_null(*body);
    }
    free(buf);
    return status;
}

double harness_metric(const char *exposition, const char *series) {
    size_t n = strlen(series);
    for (const char *p = exposition; (p = strstr(p, series)) != NULL; p += n) {
        bool line_start = p == exposition || p[-1] == '\n';
        if (line_start && p[n] == ' ') {
            return strtod(p + n + 1, NULL);
        }
    }
    return 0;
}

static void redis_launch(redis_proc_t *r) {
    char port[16];
    snprintf(port, sizeof port, "%d", r->port);
    char *argv[] = {"/usr/bin/redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
                    "--appendonly",          "no",     NULL};
    char log_path[512];
    snprintf(log_path, sizeof log_path, "%s/test-logs/redis-%d.log", LOYALTY_BUILD_DIR, r->port);
    char dir[256];
    snprintf(dir, sizeof dir, "%s/test-logs", LOYALTY_BUILD_DIR);
    mkdir(dir, 0755);
    r->pid = spawn(argv[0], argv, NULL, log_path);
    harness_track_redis(r);
    for (int i = 0; i < 100; i++) {
        if (port_accepts(r->port)) {
            return;
        }
        sleep_ms(50);
    }
    cr_assert_fail("redis-server did not start on port %d", r->port);
}

void harness_redis_start(redis_proc_t *r) {
    r->port = harness_free_port();
    snprintf(r->url, sizeof r->url, "redis://127.0.0.1:%d/0", r->port);
    redis_launch(r);
}

void harness_redis_restart(redis_proc_t *r) {
    redis_launch(r);
}

void harness_redis_stop(redis_proc_t *r) {
    if (r->pid > 0) {
        kill(r->pid, SIGTERM);
        waitpid(r->pid, NULL, 0);
        r->pid = 0;
    }
}

const char *harness_merchant(const char *prefix) {
    char token[13];
    id_random_token("abcdefghijklmnopqrstuvwxyz0123456789", 12, token);
    char *out = harness_string(strlen(prefix) + 14);
    sprintf(out, "%s-%s", prefix, token);
    return out;
}

const char *harness_key(void) {
    char *out = harness_string(24);
    memcpy(out, "key-", 4);
    id_random_token("abcdefghijklmnopqrstuvwxyz0123456789", 16, out + 4);
    return out;
}

bool harness_file_contains(const char *path, const char *text) {
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return false;
    }
    char line[8192];
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        found = strstr(line, text) != NULL;
    }
    fclose(f);
    return found;
}
