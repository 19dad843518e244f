/* config.c -- the configuration table and its parser. */
#include "config.h"

#include "log.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { CFG_STR, CFG_INT } cfg_type_t;

typedef struct cfg_entry {
    const char *env;
    cfg_type_t type;
    size_t offset;
    size_t size; /* for strings: the buffer size */
    const char *default_value;
    int64_t min, max; /* for integers */
    bool secret;
} cfg_entry_t;

#define STR(env, field, def, secret)                                                               \
    { env, CFG_STR, offsetof(config_t, field), sizeof(((config_t *)0)->field), def, 0, 0, secret }
#define INT(env, field, def, lo, hi)                                                               \
    { env, CFG_INT, offsetof(config_t, field), sizeof(int64_t), def, lo, hi, false }

static const cfg_entry_t cfg_table[] = {
    STR("LISTEN_ADDR", listen_addr, NULL, false),
    STR("METRICS_ADDR", metrics_addr, "", false), /* default derived: cfg_metrics_default */
    STR("LOYALTY_PG_DSN", pg_dsn, "host=127.0.0.1 port=5432 dbname=loyalty user=loyalty", true),
    STR("LOYALTY_REDIS_URL", redis_url, "redis://127.0.0.1:6379/0", false),
    STR("LOYALTY_AUTH_TOKEN", auth_token, "", true),
    STR("LOYALTY_CREDENTIALS_FILE", cred_file, "", false),
    STR("LOYALTY_TLS_CERT", tls_cert_path, "", false),
    STR("LOYALTY_TLS_KEY", tls_key_path, "", false),
    STR("LOYALTY_TLS_CA", tls_ca_path, "", false),
    STR("LOG_LEVEL", log_level, "info", false),
    INT("RPC_WORKERS", workers, "16", 1, 512),
    INT("RPC_COMPLETION_QUEUES", completion_queues, "0", 0, 64),
    INT("RPC_MAX_MESSAGE_BYTES", max_message_bytes, "4194304", 1024, 67108864),
    INT("RPC_CLIENT_TIMEOUT_MS", client_timeout_ms, "5000", 1, 600000),
    INT("RPC_CLIENT_BATCH_IN_FLIGHT", client_batch_in_flight, "1", 0, 16),
    INT("SHUTDOWN_GRACE_MS", shutdown_grace_ms, "10000", 0, 600000),
    INT("SHUTDOWN_DRAIN_MS", shutdown_drain_ms, "0", 0, 600000),
    INT("CACHE_TTL_S", cache_ttl_s, "300", 1, 86400),
    INT("NEAR_CACHE_ENTRIES", near_cache_entries, "8192", 0, 1048576),
    /* 16 MiB: an eighth of the 128 Mi pod limit; 8192 entries of up to 64 KiB would be 512 MiB. */
    INT("NEAR_CACHE_BYTES", near_cache_bytes, "16777216", 1048576, 1073741824),
    INT("NEAR_CACHE_TTL_MS", near_cache_ttl_ms, "5000", 1, 600000),
    INT("JOB_INTERVAL_S", job_interval_s, "60", 0, 86400),
    INT("DB_STATEMENT_TIMEOUT_MS", db_statement_timeout_ms, "10000", 0, 3600000),
    INT("DB_MIGRATE_ON_START", db_migrate_on_start, "1", 0, 1),
    STR("LOYALTY_PG_POOLER", pg_pooler, "", false),
    INT("DB_POOL_SIZE", db_pool_size, "0", 0, 1024),
    INT("DB_POOL_WAIT_MS", db_pool_wait_ms, "1000", 1, 600000),
    INT("EVENTS_STREAM_MAXLEN", events_stream_maxlen, "1000000", 1000, 1000000000),
    INT("OUTBOX_RETENTION_DAYS", outbox_retention_days, "0", 0, 3650),
    STR("MEMBER_SVC_ADDR", member_svc_addr, "127.0.0.1:50051", false),
    STR("POINTS_SVC_ADDR", points_svc_addr, "127.0.0.1:50052", false),
    STR("WALLET_SVC_ADDR", wallet_svc_addr, "127.0.0.1:50053", false),
    STR("REFERRAL_SVC_ADDR", referral_svc_addr, "127.0.0.1:50054", false),
    STR("PROMO_SVC_ADDR", promo_svc_addr, "127.0.0.1:50055", false),
};

#define CFG_COUNT (sizeof cfg_table / sizeof cfg_table[0])

bool config_parse_int(const char *text, int64_t min, int64_t max, int64_t *out) {
    if (text == NULL || *text == '\0') {
        return false;
    }
    errno = 0;
    char *end = NULL;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < min || v > max) {
        return false;
    }
    *out = (int64_t)v;
    return true;
}

static status_t cfg_apply(config_t *cfg, const cfg_entry_t *e, const char *value) {
    char *field = (char *)cfg + e->offset;
    if (e->type == CFG_STR) {
        size_t n = strlen(value);
        if (n >= e->size) {
            return status_make(STATUS_INVALID_ARGUMENT, REASON_INVALID_CONFIG,
                               "%s: longer than %zu characters", e->env, e->size - 1);
        }
        memcpy(field, value, n + 1);
        return status_ok();
    }
    int64_t v;
    if (!config_parse_int(value, e->min, e->max, &v)) {
        return status_make(STATUS_INVALID_ARGUMENT, REASON_INVALID_CONFIG,
                           "%s: expected an integer in [%lld, %lld]", e->env, (long long)e->min,
                           (long long)e->max);
    }
    memcpy(field, &v, sizeof v);
    return status_ok();
}

/* METRICS_ADDR's default: LISTEN_ADDR's port + 1000 on every interface (51051 for member-svc's
 * 50051), empty when LISTEN_ADDR has no port that leaves room for it. */
static void cfg_metrics_default(config_t *cfg) {
    const char *colon = strrchr(cfg->listen_addr, ':');
    int64_t port = 0;
    cfg->metrics_addr[0] = '\0';
    if (colon != NULL && config_parse_int(colon + 1, 1, 65535 - 1000, &port)) {
        snprintf(cfg->metrics_addr, sizeof cfg->metrics_addr, "0.0.0.0:%lld",
                 (long long)(port + 1000));
    }
}

/* METRICS_ADDR when set: empty, or host:port with a port in [0, 65535]. */
static bool cfg_metrics_valid(const char *addr) {
    const char *colon = strrchr(addr, ':');
    int64_t port = 0;
    return addr[0] == '\0' ||
           (colon != NULL && colon != addr && config_parse_int(colon + 1, 0, 65535, &port));
}

status_t config_load(config_t *cfg, const char *service, int default_port, config_lookup_fn lookup,
                     void *lookup_arg) {
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->service, sizeof cfg->service, "%s", service);
    char listen_default[64];
    snprintf(listen_default, sizeof listen_default, "0.0.0.0:%d", default_port);
    for (size_t i = 0; i < CFG_COUNT; i++) {
        const cfg_entry_t *e = &cfg_table[i];
        const char *def = e->default_value ? e->default_value : listen_default;
        status_t st = cfg_apply(cfg, e, def);
        if (!status_is_ok(&st)) {
            return st;
        }
        const char *value = lookup ? lookup(e->env, lookup_arg) : NULL;
        if (value == NULL && strcmp(e->env, "METRICS_ADDR") == 0) {
            cfg_metrics_default(cfg); /* LISTEN_ADDR comes first in the table */
        }
        if (value != NULL) {
            st = cfg_apply(cfg, e, value);
            if (!status_is_ok(&st)) {
                return st;
            }
        }
    }
    log_level_t level;
    if (!log_level_parse(cfg->log_level, &level)) {
        return status_make(STATUS_INVALID_ARGUMENT, REASON_INVALID_CONFIG,
                           "LOG_LEVEL: expected debug, info, warn or error");
    }
    if (!cfg_metrics_valid(cfg->metrics_addr)) {
        return status_make(STATUS_INVALID_ARGUMENT, REASON_INVALID_CONFIG,
                           "METRICS_ADDR: expected host:port, or empty to disable");
    }
    if (cfg->pg_pooler[0] != '\0' && strcmp(cfg->pg_pooler, "transaction") != 0) {
        return status_make(STATUS_INVALID_ARGUMENT, REASON_INVALID_CONFIG,
                           "LOYALTY_PG_POOLER: expected transaction, or empty for a direct "
                           "connection");
    }
    if ((cfg->tls_cert_path[0] == '\0') != (cfg->tls_key_path[0] == '\0')) {
        return status_make(STATUS_INVALID_ARGUMENT, REASON_INVALID_CONFIG,
                           "LOYALTY_TLS_CERT and LOYALTY_TLS_KEY must be set together");
    }
    return status_ok();
}

/* Copies a libpq DSN with the value of password=... replaced, for logging. */
static void cfg_mask_dsn(const char *dsn, char *out, size_t cap) {
    snprintf(out, cap, "%s", dsn);
    char *p = strstr(out, "password=");
    if (p != NULL) {
        char *v = p + strlen("password=");
        char *end = strchr(v, ' ');
        char rest[CONFIG_STR_MAX];
        snprintf(rest, sizeof rest, "%s", end ? end : "");
        snprintf(v, cap - (size_t)(v - out), "***%s", rest);
    }
    char *at = strstr(out, "://");
    char *cred_end = at ? strchr(at + 3, '@') : NULL;
    if (cred_end != NULL) { /* URI form: hide user:password@ */
        char rest[CONFIG_STR_MAX];
        snprintf(rest, sizeof rest, "%s", cred_end);
        snprintf(at + 3, cap - (size_t)(at + 3 - out), "***%s", rest);
    }
}

void config_log(const config_t *cfg) {
    for (size_t i = 0; i < CFG_COUNT; i++) {
        const cfg_entry_t *e = &cfg_table[i];
        const char *field = (const char *)cfg + e->offset;
        if (e->type == CFG_INT) {
            int64_t v;
            memcpy(&v, field, sizeof v);
            log_msg(LOG_DEBUG, "config %s=%lld", e->env, (long long)v);
        } else if (strcmp(e->env, "LOYALTY_PG_DSN") == 0) {
            char masked[CONFIG_STR_MAX];
            cfg_mask_dsn(field, masked, sizeof masked);
            log_msg(LOG_DEBUG, "config %s=%s", e->env, masked);
        } else if (e->secret) {
            log_msg(LOG_DEBUG, "config %s=%s", e->env, field[0] ? "(set)" : "(unset)");
        } else {
            log_msg(LOG_DEBUG, "config %s=%s", e->env, field);
        }
    }
}
