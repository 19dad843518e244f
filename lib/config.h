/* config.h -- service configuration from environment variables (12-factor,
 * docs/architecture.md#conventions). One declarative table in config.c lists every variable with
 * its default and bounds. */
#ifndef LOYALTY_CONFIG_H
#define LOYALTY_CONFIG_H

#include "status.h"

#include <stdint.h>

#define CONFIG_STR_MAX 1024
#define CONFIG_ADDR_MAX 256

typedef struct config {
    char service[64];                   /* set by the program, not the environment */
    char listen_addr[CONFIG_ADDR_MAX];  /* LISTEN_ADDR */
    char metrics_addr[CONFIG_ADDR_MAX]; /* METRICS_ADDR: /metrics, /livez, /readyz; "" = off */
    char pg_dsn[CONFIG_STR_MAX];        /* LOYALTY_PG_DSN (secret: may hold a password) */
    char redis_url[CONFIG_STR_MAX];     /* LOYALTY_REDIS_URL; empty disables caching */
    char auth_token[CONFIG_STR_MAX];    /* LOYALTY_AUTH_TOKEN; empty disables auth (secret) */
    char cred_file[CONFIG_STR_MAX];     /* LOYALTY_CREDENTIALS_FILE: scoped credentials */
    char tls_cert_path[CONFIG_STR_MAX]; /* LOYALTY_TLS_CERT: server certificate chain (PEM) */
    char tls_key_path[CONFIG_STR_MAX];  /* LOYALTY_TLS_KEY: its private key (PEM) */
    char tls_ca_path[CONFIG_STR_MAX];   /* LOYALTY_TLS_CA: roots for calls to other services */
    char log_level[16];                 /* LOG_LEVEL: debug|info|warn|error */
    int64_t workers;                    /* RPC_WORKERS: handler threads */
    int64_t completion_queues;          /* RPC_COMPLETION_QUEUES: 0 = one per two workers */
    int64_t max_message_bytes;          /* RPC_MAX_MESSAGE_BYTES */
    int64_t client_timeout_ms;          /* RPC_CLIENT_TIMEOUT_MS: default deadline of calls out */
    int64_t client_batch_in_flight;     /* RPC_CLIENT_BATCH_IN_FLIGHT: batchable calls in flight per
                                           channel and method before the next ones wait and go
                                           together as one BatchService/Run (1 by
                                           default); 0 = never batch */
    int64_t shutdown_grace_ms;          /* SHUTDOWN_GRACE_MS: in-flight calls may finish */
    int64_t shutdown_drain_ms;          /* SHUTDOWN_DRAIN_MS: NOT_SERVING before listeners close */
    int64_t cache_ttl_s;                /* CACHE_TTL_S: upper bound on a cache entry's age */
    int64_t near_cache_entries;         /* NEAR_CACHE_ENTRIES: in-process entries, 0 = off */
    int64_t near_cache_bytes;           /* NEAR_CACHE_BYTES: memory bound of those entries */
    int64_t near_cache_ttl_ms;          /* NEAR_CACHE_TTL_MS: age bound of an in-process entry */
    int64_t job_interval_s;             /* JOB_INTERVAL_S: period of background jobs; 0 = off */
    int64_t db_statement_timeout_ms;    /* DB_STATEMENT_TIMEOUT_MS: per statement, 0 = none */
    int64_t db_migrate_on_start;        /* DB_MIGRATE_ON_START: 0 = wait for `--migrate` */
    char pg_pooler[16];                 /* LOYALTY_PG_POOLER: "" (direct) or "transaction" */
    int64_t db_pool_size;          /* DB_POOL_SIZE: connections per process; 0 = one per thread */
    int64_t db_pool_wait_ms;       /* DB_POOL_WAIT_MS: longest wait for a pooled connection */
    int64_t events_stream_maxlen;  /* EVENTS_STREAM_MAXLEN: approximate stream length cap */
    int64_t outbox_retention_days; /* OUTBOX_RETENTION_DAYS: published entries kept; 0 deletes at
                                      publication */
    char member_svc_addr[CONFIG_ADDR_MAX];   /* MEMBER_SVC_ADDR */
    char points_svc_addr[CONFIG_ADDR_MAX];   /* POINTS_SVC_ADDR */
    char wallet_svc_addr[CONFIG_ADDR_MAX];   /* WALLET_SVC_ADDR */
    char referral_svc_addr[CONFIG_ADDR_MAX]; /* REFERRAL_SVC_ADDR */
    char promo_svc_addr[CONFIG_ADDR_MAX];    /* PROMO_SVC_ADDR */
} config_t;

/** Looks a variable up; returns NULL when unset. getenv() in production, a table in tests. */
typedef const char *(*config_lookup_fn)(const char *name, void *arg);

/** Fills `cfg` from defaults, then from the environment through `lookup`. The default listen
 *  address is 0.0.0.0:<default_port>; the default METRICS_ADDR is 0.0.0.0:<LISTEN_ADDR's port
 *  + 1000> (empty, i.e. off, when that is no port). Fails INVALID_ARGUMENT naming the
 *  variable when a value is malformed or out of bounds. */
status_t config_load(config_t *cfg, const char *service, int default_port, config_lookup_fn lookup,
                     void *lookup_arg);

/** Parses a whole decimal integer within [min, max]; false otherwise. */
bool config_parse_int(const char *text, int64_t min, int64_t max, int64_t *out);

/** Logs every setting at INFO, secrets masked and the DSN password hidden. */
void config_log(const config_t *cfg);

#endif
