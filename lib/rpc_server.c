/* rpc_server.c -- the shared gRPC server on the core C API.
 *
 * Threads: W workers spread over K completion queues; each worker owns a PostgreSQL and a Redis
 * connection and serves whole calls (decode, handler, encode). Every registered method keeps
 * one pending request per worker of each queue, re-armed as soon as a call arrives, plus one
 * unregistered request per queue that answers UNIMPLEMENTED. Streaming methods (RPC_STREAM) keep
 * exactly one batch in flight per call (receive, then each send, then the next receive), so a
 * stream holds a worker only while its handler runs and never needs a lock. A monitor thread
 * applies the migrations and probes PostgreSQL; job threads run the timers (one per service
 * job). The main thread waits for SIGTERM/SIGINT and runs the shutdown sequence: NOT_SERVING,
 * drain delay, stop listening, grace period for in-flight calls, cancel the rest, wait until
 * every call context is freed, then tear down in reverse order. */
#include "rpc_server_internal.h"

#include "audit.h"
#include "auth.h"
#include "clock.h"
#include "consume.h"
#include "credentials.h"
#include "health.h"
#include "idem.h"
#include "ids.h"
#include "log.h"
#include "near_cache.h"
#include "outbox.h"
#include "pb.h"
#include "reflection.h"
#include "request.h"
#include "rpc_client.h"
#include "rpc_metrics.h"
#include "trace.h"
#include "validate.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>

#include <assert.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

srv_state_t g_srv = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

/* ---- threads ---- */

static void *worker_main(void *arg) {
    worker_t *w = arg;
    for (;;) {
        grpc_event ev =
            grpc_completion_queue_next(w->q->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN) {
            break;
        }
        if (ev.type != GRPC_OP_COMPLETE) {
            continue;
        }
        if (ev.tag == &g_srv.shutdown_tag) {
            pthread_mutex_lock(&g_srv.mu);
            g_srv.shutdown_tag_seen = true;
            pthread_cond_broadcast(&g_srv.cond);
            pthread_mutex_unlock(&g_srv.mu);
            continue;
        }
        call_t *c = ev.tag;
        bool stopping = atomic_load(&g_srv.shutting_down);
        switch (c->phase) {
        case CALL_NEW:
            if (!ev.success) {
                srv_call_free(c);
                break;
            }
            if (!stopping) {
                srv_call_request(c->method, c->q); /* re-arm before serving */
            }
            srv_call_serve(w, c);
            break;
        case CALL_UNKNOWN_NEW:
            if (!ev.success) {
                srv_call_free(c);
                break;
            }
            if (!stopping) {
                srv_call_request_unknown(c->q);
            }
            srv_call_serve_unknown(c);
            break;
        case CALL_STREAM_NEW:
            if (!ev.success) {
                srv_call_free(c);
                break;
            }
            if (!stopping) {
                srv_call_request(c->method, c->q);
            }
            srv_call_stream_start(c);
            break;
        case CALL_STREAM_RECV:
            srv_call_stream_received(w, c, ev.success);
            break;
        case CALL_STREAM_SEND:
            srv_call_stream_sent(c, ev.success);
            break;
        case CALL_FINISH:
            srv_call_free(c);
            break;
        }
    }
    rpc_client_thread_cleanup();
    return NULL;
}

static void srv_db_pool_create(void) {
    const config_t *cfg = &g_srv.config;
    db_options_t opts = {
        .dsn = cfg->pg_dsn,
        .schema = g_srv.opts->db_schema,
        .application_name = g_srv.opts->service_name,
        .statement_timeout_ms = cfg->db_statement_timeout_ms,
        .transaction_pooler = strcmp(cfg->pg_pooler, "transaction") == 0,
        .pool_size = (int)cfg->db_pool_size,
        .pool_wait_ms = cfg->db_pool_wait_ms,
    };
    g_srv.db_pool = db_pool_create(&opts);
    if (opts.pool_size > 0 || opts.transaction_pooler) {
        log_msg(LOG_INFO, "database: %s, %s",
                opts.transaction_pooler ? "through a transaction pooler" : "direct",
                opts.pool_size > 0 ? "a pool of DB_POOL_SIZE connections"
                                   : "a connection per thread");
    }
}

/* A handle for one thread: it borrows from the process's pool (or keeps its own connection). */
db_t *srv_db_create(void) {
    return db_open(g_srv.db_pool);
}

/* DB_MIGRATE_ON_START=0: the service's own database role may not change its schema (README
 * "Database roles"); the owner role applies the migrations (`--migrate`) and the service waits
 * until every one it carries is recorded. */
status_t srv_check_migrated(db_t *db) {
    PGresult *r = NULL;
    status_t st = db_exec(db, "SELECT to_regclass('schema_migrations') IS NOT NULL", NULL, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    bool exists = db_get_bool(r, 0, 0);
    PQclear(r);
    if (!exists) {
        return status_make(STATUS_UNAVAILABLE, REASON_NOT_MIGRATED,
                           "no migration is applied (run --migrate as the owner)");
    }
    const embed_file_t *tables[2] = {runtime_migrations, g_srv.opts->migrations};
    const char *origins[2] = {"runtime", g_srv.opts->db_schema};
    for (int t = 0; t < 2; t++) {
        for (const embed_file_t *m = tables[t]; m && m->name; m++) {
            char id[256];
            snprintf(id, sizeof id, "%s/%s", origins[t], m->name);
            db_params_t p;
            db_params_init(&p);
            db_param_text(&p, id);
            st = db_exec(db, "SELECT 1 FROM schema_migrations WHERE id = $1", &p, &r);
            if (!status_is_ok(&st)) {
                return st;
            }
            bool applied = PQntuples(r) > 0;
            PQclear(r);
            if (!applied) {
                return status_make(STATUS_UNAVAILABLE, REASON_NOT_MIGRATED,
                                   "migration %s is not applied (run --migrate as the owner)", id);
            }
        }
    }
    return status_ok();
}

/* ---- setup ---- */

static bool srv_is_storefront(const char *path) {
    for (const char *const *p = g_srv.opts->storefront_methods; p && *p; p++) {
        if (strcmp(*p, path) == 0) {
            return true;
        }
    }
    return false;
}

static status_t srv_add_service(const rpc_service_t *svc, bool is_health, bool is_reflection) {
    const ProtobufCServiceDescriptor *sd = svc->descriptor;
    health_register_service(sd->name);
    reflection_register_service(sd->name);
    for (const rpc_method_t *m = svc->methods; m->name; m++) {
        const ProtobufCMethodDescriptor *md =
            protobuf_c_service_descriptor_get_method_by_name(sd, m->name);
        if (md == NULL) {
            return status_make(STATUS_INTERNAL, REASON_BAD_SERVICE_TABLE, "%s has no method %s",
                               sd->name, m->name);
        }
        if (g_srv.method_count == SRV_METHODS_MAX) {
            return status_make(STATUS_INTERNAL, REASON_BAD_SERVICE_TABLE, "too many methods");
        }
        srv_method_t *sm = &g_srv.methods[g_srv.method_count++];
        sm->m = m;
        sm->md = md;
        sm->is_health = is_health;
        snprintf(sm->path, sizeof sm->path, "/%s/%s", sd->name, md->name);
        /* The API's shape is no merchant's data: any valid credential may read it. */
        sm->access = is_reflection                 ? CRED_ACCESS_ANY
                     : srv_is_storefront(sm->path) ? CRED_ACCESS_STOREFRONT
                                                   : CRED_ACCESS_ADMIN;
        /* Only a call the runtime runs in a transaction can carry its audit record. */
        sm->audited = audit_is_audited(sm->path) && (m->kind == RPC_TX || m->kind == RPC_MUTATE);
        const ProtobufCFieldDescriptor *mf =
            protobuf_c_message_descriptor_get_field_by_name(md->input, "merchant_id");
        sm->has_merchant =
            mf != NULL && mf->type == PROTOBUF_C_TYPE_STRING && m->kind != RPC_READ_ANY_MERCHANT;
        if (m->kind == RPC_MUTATE &&
            (!sm->has_merchant || protobuf_c_message_descriptor_get_field_by_name(
                                      md->input, "idempotency_key") == NULL)) {
            return status_make(STATUS_INTERNAL, REASON_BAD_SERVICE_TABLE,
                               "%s is RPC_MUTATE without merchant_id and idempotency_key",
                               sm->path);
        }
        for (const rpc_method_merger_t *mg = svc->mergers; mg && mg->name; mg++) {
            if (strcmp(mg->name, m->name) == 0) {
                sm->merge = mg->merge;
            }
        }
        if (sm->merge != NULL && m->kind != RPC_MUTATE) {
            return status_make(STATUS_INTERNAL, REASON_BAD_SERVICE_TABLE,
                               "%s has a merger but is not RPC_MUTATE", sm->path);
        }
        /* protobuf-c does not say which methods stream; the embedded descriptors do. */
        sm->streaming = m->kind == RPC_STREAM;
        int streams = reflection_method_streaming(sm->path);
        if (streams >= 0 && streams != sm->streaming) {
            return status_make(STATUS_INTERNAL, REASON_BAD_SERVICE_TABLE, "%s is %s in the .proto",
                               sm->path, streams ? "streaming" : "unary");
        }
        sm->handle = grpc_server_register_method(
            g_srv.server, sm->path, NULL,
            sm->streaming ? GRPC_SRM_PAYLOAD_NONE : GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
        if (sm->handle == NULL) {
            return status_make(STATUS_INTERNAL, REASON_BAD_SERVICE_TABLE, "cannot register %s",
                               sm->path);
        }
    }
    for (size_t i = 0; i < sd->n_methods; i++) {
        bool served = false;
        for (const rpc_method_t *m = svc->methods; m->name && !served; m++) {
            served = strcmp(m->name, sd->methods[i].name) == 0;
        }
        if (!served && !is_health) {
            log_msg(LOG_WARN, "%s/%s has no handler; it answers UNIMPLEMENTED", sd->name,
                    sd->methods[i].name);
        }
    }
    return status_ok();
}

static char *srv_read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    char *buf = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *nb = realloc(buf, cap);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, 4096, f);
        len += got;
        if (got < 4096) {
            break;
        }
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

static grpc_server_credentials *srv_credentials(status_t *st) {
    const config_t *cfg = &g_srv.config;
    if (cfg->tls_cert_path[0] == '\0') {
        return grpc_insecure_server_credentials_create();
    }
    char *cert = srv_read_file(cfg->tls_cert_path);
    char *key = srv_read_file(cfg->tls_key_path);
    if (cert == NULL || key == NULL) {
        free(cert);
        free(key);
        *st = status_make(STATUS_INVALID_ARGUMENT, REASON_INVALID_CONFIG,
                          "cannot read LOYALTY_TLS_CERT or LOYALTY_TLS_KEY");
        return NULL;
    }
    grpc_ssl_pem_key_cert_pair pair = {key, cert};
    grpc_server_credentials *creds = grpc_ssl_server_credentials_create_ex(
        NULL, &pair, 1, GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE, NULL);
    free(cert);
    free(key);
    return creds;
}

static status_t srv_start(void) {
    const config_t *cfg = &g_srv.config;
    grpc_arg args[3];
    memset(args, 0, sizeof args);
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = (int)cfg->max_message_bytes;
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
    args[1].value.integer = (int)cfg->max_message_bytes;
    /* channelz keeps per-call counters for a debugging service we do not serve; the metrics
     * (lib/rpc_metrics.c) count what operators look at. */
    args[2].type = GRPC_ARG_INTEGER;
    args[2].key = (char *)GRPC_ARG_ENABLE_CHANNELZ;
    args[2].value.integer = 0;
    grpc_channel_args channel_args = {3, args};
    g_srv.server = grpc_server_create(&channel_args, NULL);

    g_srv.worker_count = (int)cfg->workers;
    int cqs = (int)cfg->completion_queues;
    if (cqs == 0) {
        cqs = g_srv.worker_count >= 4 ? g_srv.worker_count / 4 : 1;
    }
    if (cqs > g_srv.worker_count) {
        cqs = g_srv.worker_count;
    }
    if (cqs > SRV_CQS_MAX) {
        cqs = SRV_CQS_MAX;
    }
    g_srv.cq_count = cqs;
    for (int i = 0; i < cqs; i++) {
        g_srv.cqs[i].cq = grpc_completion_queue_create_for_next(NULL);
        grpc_server_register_completion_queue(g_srv.server, g_srv.cqs[i].cq, NULL);
    }

    const embed_file_t *set = &runtime_descriptor_set[0];
    status_t st = reflection_init(set->data, set->len);
    if (!status_is_ok(&st)) {
        return st;
    }
    st = srv_add_service(&health_service, true, false);
    if (status_is_ok(&st)) {
        st = srv_add_service(&reflection_v1_service, false, true);
    }
    if (status_is_ok(&st)) {
        st = srv_add_service(&reflection_v1alpha_service, false, true);
    }
    /* Every service lists its own audit trail: its database role reads only its schema. */
    audit_service_init(g_srv.opts->service_name);
    if (status_is_ok(&st)) {
        st = srv_add_service(&audit_service, false, false);
    }
    /* Every service takes its mutating calls in batches too (batch.proto). */
    if (status_is_ok(&st)) {
        st = srv_add_service(&batch_service, false, false);
        g_srv.methods[g_srv.method_count - 1].is_batch = status_is_ok(&st);
    }
    for (size_t i = 0; status_is_ok(&st) && i < g_srv.opts->service_count; i++) {
        st = srv_add_service(&g_srv.opts->services[i], false, false);
    }
    for (const char *const *p = g_srv.opts->storefront_methods; status_is_ok(&st) && p && *p; p++) {
        bool known = false;
        for (int i = 0; i < g_srv.method_count && !known; i++) {
            known = strcmp(g_srv.methods[i].path, *p) == 0;
        }
        if (!known) {
            st = status_make(STATUS_INTERNAL, REASON_BAD_SERVICE_TABLE,
                             "storefront method %s is not served", *p);
        }
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    grpc_server_credentials *creds = srv_credentials(&st);
    if (creds == NULL) {
        return st;
    }
    int port = grpc_server_add_http2_port(g_srv.server, cfg->listen_addr, creds);
    grpc_server_credentials_release(creds);
    if (port == 0) {
        return status_make(STATUS_UNAVAILABLE, REASON_LISTEN_FAILED, "cannot listen on %s",
                           cfg->listen_addr);
    }
    grpc_server_start(g_srv.server);

    char channel[128];
    for (const char *const *f = g_srv.opts->follow_invalidations; f != NULL && *f != NULL; f++) {
        snprintf(channel, sizeof channel, "loyalty:invalidate:%s", *f);
        if (!near_cache_follow(channel)) {
            return status_make(STATUS_INTERNAL, REASON_CONFIG_INVALID,
                               "too many followed services");
        }
    }
    snprintf(channel, sizeof channel, "loyalty:invalidate:%s", g_srv.opts->service_name);
    if (near_cache_start(cfg->redis_url, channel, cfg->near_cache_entries, cfg->near_cache_bytes,
                         cfg->near_cache_ttl_ms)) {
        log_msg(LOG_INFO, "near cache on: %lld entries, %lld bytes, %lld ms, invalidations on %s",
                (long long)cfg->near_cache_entries, (long long)cfg->near_cache_bytes,
                (long long)cfg->near_cache_ttl_ms, channel);
    }
    g_srv.workers = calloc((size_t)g_srv.worker_count, sizeof *g_srv.workers);
    if (g_srv.workers == NULL) {
        abort();
    }
    for (int i = 0; i < g_srv.worker_count; i++) {
        worker_t *w = &g_srv.workers[i];
        w->q = &g_srv.cqs[i % cqs];
        w->q->workers++;
        w->db = srv_db_create();
        w->cache = cache_create(cfg->redis_url, cfg->cache_ttl_s);
    }
    for (int q = 0; q < cqs; q++) {
        srv_call_request_unknown(&g_srv.cqs[q]);
        for (int k = 0; k < g_srv.cqs[q].workers; k++) {
            for (int m = 0; m < g_srv.method_count; m++) {
                srv_call_request(&g_srv.methods[m], &g_srv.cqs[q]);
            }
        }
    }
    for (int i = 0; i < g_srv.worker_count; i++) {
        if (pthread_create(&g_srv.workers[i].thread, NULL, worker_main, &g_srv.workers[i]) != 0) {
            abort();
        }
    }
    if (pthread_create(&g_srv.monitor_thread, NULL, srv_monitor_main, NULL) != 0) {
        abort();
    }
    srv_jobs_start();
    consume_start(g_srv.opts->consumers);
    g_srv.job_thread_started = true;
    if (pthread_create(&g_srv.outbox_thread, NULL, srv_outbox_main, NULL) != 0) {
        abort();
    }
    log_msg(LOG_INFO, "listening on %s (port %d), %d workers on %d completion queues",
            cfg->listen_addr, port, g_srv.worker_count, cqs);
    return status_ok();
}

static bool srv_shutdown_tag_seen(void) {
    pthread_mutex_lock(&g_srv.mu);
    bool seen = g_srv.shutdown_tag_seen;
    pthread_mutex_unlock(&g_srv.mu);
    return seen;
}

/* Lets in-flight calls finish within the grace period, then closes what is left: the shutdown
 * tag also waits for idle client connections to go away, which a client that is not polling
 * never does, so once no call of ours is in flight the remaining connections are cut. */
static void srv_drain_calls(int64_t grace_ms) {
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        if (srv_shutdown_tag_seen()) {
            return;
        }
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        int64_t elapsed_ms =
            (int64_t)(now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        long live = atomic_load(&g_srv.live_calls);
        if (live == 0 || elapsed_ms >= grace_ms) {
            if (live > 0) {
                log_msg(LOG_WARN, "grace period over; cancelling %ld calls still in flight", live);
            }
            grpc_server_cancel_all_calls(g_srv.server);
            break;
        }
        struct timespec ts = {0, 5 * 1000000};
        nanosleep(&ts, NULL);
    }
    pthread_mutex_lock(&g_srv.mu);
    while (!g_srv.shutdown_tag_seen) {
        pthread_cond_wait(&g_srv.cond, &g_srv.mu);
    }
    pthread_mutex_unlock(&g_srv.mu);
}

static void srv_stop(void) {
    const config_t *cfg = &g_srv.config;
    health_set_shutting_down(true);
    srv_watch_notify(); /* watchers hear NOT_SERVING now, during the drain */
    log_msg(LOG_INFO, "shutting down: not serving, draining for %lld ms",
            (long long)cfg->shutdown_drain_ms);
    if (cfg->shutdown_drain_ms > 0) {
        struct timespec ts = {cfg->shutdown_drain_ms / 1000,
                              (cfg->shutdown_drain_ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
    }
    atomic_store(&g_srv.shutting_down, true);
    srv_watch_close_all();
    grpc_server_shutdown_and_notify(g_srv.server, g_srv.cqs[0].cq, &g_srv.shutdown_tag);
    srv_drain_calls(cfg->shutdown_grace_ms);
    log_msg(LOG_DEBUG, "listeners closed and calls done");
    /* The shutdown tag does not wait for calls a worker still holds: wait for every context. */
    while (atomic_load(&g_srv.live_calls) > 0) {
        struct timespec ts = {0, 5 * 1000000};
        nanosleep(&ts, NULL);
    }
    pthread_mutex_lock(&g_srv.mu);
    g_srv.stop_background = true;
    pthread_cond_broadcast(&g_srv.cond);
    pthread_mutex_unlock(&g_srv.mu);
    for (int q = 0; q < g_srv.cq_count; q++) {
        grpc_completion_queue_shutdown(g_srv.cqs[q].cq);
    }
    for (int i = 0; i < g_srv.worker_count; i++) {
        pthread_join(g_srv.workers[i].thread, NULL);
    }
    log_msg(LOG_DEBUG, "workers joined");
    pthread_join(g_srv.monitor_thread, NULL);
    if (g_srv.job_thread_started) {
        srv_jobs_join();
        consume_join();
        outbox_stop();
        pthread_join(g_srv.outbox_thread, NULL);
    }
    for (int i = 0; i < g_srv.worker_count; i++) {
        db_destroy(g_srv.workers[i].db);
        cache_destroy(g_srv.workers[i].cache);
    }
    free(g_srv.workers);
    db_pool_destroy(g_srv.db_pool); /* after every handle */
    g_srv.db_pool = NULL;
    log_msg(LOG_DEBUG, "background threads joined");
    near_cache_stop();
    grpc_server_destroy(g_srv.server);
    for (int q = 0; q < g_srv.cq_count; q++) {
        grpc_completion_queue_destroy(g_srv.cqs[q].cq);
    }
    reflection_dispose();
}

static const char *env_lookup(const char *name, void *arg) {
    (void)arg;
    return getenv(name);
}

static int srv_migrate_only(void) {
    db_t *db = srv_db_create();
    status_t st = db_migrate(db, runtime_migrations, g_srv.opts->migrations);
    db_destroy(db);
    db_pool_destroy(g_srv.db_pool);
    g_srv.db_pool = NULL;
    if (!status_is_ok(&st)) {
        log_msg(LOG_ERROR, "migrations failed: %s", st.message);
        return 1;
    }
    log_msg(LOG_INFO, "migrations applied");
    return 0;
}

/* A fixed mmap threshold: glibc raises it after every large free, after which large buffers
 * (gRPC's copies of 1 MB requests) are carved from the heap and stay in RSS after the burst. */
static void srv_malloc_tune(void) {
#ifdef M_MMAP_THRESHOLD
    if (mallopt(M_MMAP_THRESHOLD, SRV_MMAP_THRESHOLD_BYTES) != 1) {
        log_msg(LOG_WARN, "cannot fix the malloc mmap threshold; RSS may stay up after bursts");
    }
#endif
}

int rpc_server_main(const rpc_server_options_t *opts, int argc, char **argv) {
    bool migrate_only = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--migrate") == 0) {
            migrate_only = true;
        } else if (strcmp(argv[i], "--help") == 0) {
            printf("usage: %s [--migrate]\n"
                   "Serves %s over gRPC; configured by environment variables (see README).\n"
                   "  --migrate  apply the database migrations and exit\n",
                   argv[0], opts->service_name);
            return 0;
        } else {
            fprintf(stderr, "%s: unknown flag %s\n", argv[0], argv[i]);
            return 2;
        }
    }
    g_srv.opts = opts;
    status_t st =
        config_load(&g_srv.config, opts->service_name, opts->default_port, env_lookup, NULL);
    log_level_t level = LOG_INFO;
    (void)log_level_parse(g_srv.config.log_level, &level);
    log_init(opts->service_name, level);
    srv_malloc_tune();
    if (!status_is_ok(&st)) {
        log_msg(LOG_ERROR, "bad configuration: %s", st.message);
        return 1;
    }
    config_log(&g_srv.config);
    srv_db_pool_create();
    if (migrate_only) {
        return srv_migrate_only();
    }

    /* Signals go to the main thread only: block them before any thread starts. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP); /* re-read the credential file */
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* After the mask: its watcher thread must not take SIGTERM or SIGHUP either. */
    st = credentials_start(g_srv.config.cred_file, g_srv.config.auth_token);
    if (!status_is_ok(&st)) {
        log_msg(LOG_ERROR, "bad LOYALTY_CREDENTIALS_FILE: %s", st.message);
        return 1;
    }

    grpc_init();
    rpc_client_init(&g_srv.config);
    rpc_metrics_start(&g_srv.config); /* before serving: /livez while PostgreSQL is awaited */
    if (opts->on_start) {
        st = opts->on_start(&g_srv.config, &g_srv.service_state);
    } else {
        g_srv.service_state = opts->service_state;
    }
    if (status_is_ok(&st)) {
        st = srv_start();
    }
    if (!status_is_ok(&st)) {
        log_msg(LOG_ERROR, "cannot start: %s", st.message);
        return 1;
    }
    int sig = 0;
    while (sigwait(&sigs, &sig) == 0 && sig == SIGHUP) {
        log_msg(LOG_INFO, "received SIGHUP: re-reading the credential file");
        (void)credentials_reload(); /* a bad file is logged and the current set stays */
    }
    log_msg(LOG_INFO, "received %s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    srv_stop();
    rpc_metrics_stop();
    if (opts->on_stop) {
        opts->on_stop(g_srv.service_state);
    }
    rpc_client_shutdown();
    credentials_stop();
    log_msg(LOG_DEBUG, "server destroyed");
    grpc_shutdown();
    log_msg(LOG_INFO, "stopped");
    return 0;
}
