/* metrics.h -- a registry of Prometheus counters, gauges and histograms with labels, rendered
 * as text exposition format 0.0.4 (docs/architecture.md#metrics).
 *
 * The hot path takes no lock and does no read-modify-write on shared memory: every thread
 * records into a shard of its own (registered once per thread in a global list), and a scrape
 * adds the shards up. A series (one combination of label values) is found through a table that
 * is read without a lock and only written, under a mutex, the first time the combination is
 * seen; its storage in a shard is allocated the first time the thread touches it. So a call
 * that records costs a hash of its label values and a few plain stores.
 *
 * Families are static definitions (METRICS_COUNTER etc. below) registered on first use; a
 * family's series appear in the exposition once recorded. Label values are bounded by the
 * caller (method paths, status codes, reasons from code): never label by request input. */
#ifndef LOYALTY_METRICS_H
#define LOYALTY_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define METRICS_LABELS_MAX 4
#define METRICS_BUCKETS_MAX 24
#define METRICS_SERIES_MAX 8192     /* further label combinations are dropped */
#define METRICS_LABEL_VALUE_MAX 128 /* longer label values are cut */
#define METRICS_FAMILIES_MAX 128

typedef enum metrics_type {
    METRICS_TYPE_COUNTER,
    METRICS_TYPE_GAUGE,
    METRICS_TYPE_HISTOGRAM,
} metrics_type_t;

typedef struct metrics_series metrics_series_t;

/** One metric family. Define it static and const-initialised with the macros below; the
 *  fields after `bucket_count` are the registry's. */
typedef struct metrics_family {
    const char *name;
    const char *help;
    metrics_type_t type;
    const char *labels[METRICS_LABELS_MAX]; /* names, NULL after the last */
    const double *buckets;                  /* histograms: ascending upper bounds, no +Inf */
    size_t bucket_count;
    /* the registry's */
    atomic_bool registered;
    size_t label_count;
    struct metrics_family *next;
    metrics_series_t *series_head, *series_tail;
} metrics_family_t;

#define METRICS_COUNTER(name_, help_, ...)                                                         \
    {                                                                                              \
        .name = name_, .help = help_, .type = METRICS_TYPE_COUNTER, .labels = { __VA_ARGS__ }      \
    }
#define METRICS_GAUGE(name_, help_, ...)                                                           \
    {                                                                                              \
        .name = name_, .help = help_, .type = METRICS_TYPE_GAUGE, .labels = { __VA_ARGS__ }        \
    }
#define METRICS_HISTOGRAM(name_, help_, buckets_, ...)                                             \
    {                                                                                              \
        .name = name_, .help = help_, .type = METRICS_TYPE_HISTOGRAM, .buckets = buckets_,         \
        .bucket_count = sizeof buckets_ / sizeof buckets_[0], .labels = {                          \
            __VA_ARGS__                                                                            \
        }                                                                                          \
    }

/** Latency buckets in seconds for calls and statements: 0.5 ms to 10 s. */
extern const double metrics_latency_buckets_s[14];

/** Turns recording on or off for the whole process (off: every record call returns at once;
 *  what was recorded stays). On by default; the server turns it off when METRICS_ADDR is empty. */
void metrics_set_enabled(bool on);
bool metrics_enabled(void);

/** The series of `family` with `values` (family's label count of them, in the order of its
 *  labels), created on first use. NULL when recording is off or METRICS_SERIES_MAX series
 *  exist. Thread-safe; lock-free once the series exists. The pointer stays valid for the life
 *  of the process, so callers may keep it. */
metrics_series_t *metrics_series(metrics_family_t *family, const char *const *values);

/** Counter: adds `n`. Series may be NULL (then nothing happens), as for all of these. */
void metrics_series_add(metrics_series_t *s, uint64_t n);
/** Gauge: adds `delta` (may be negative) to this thread's share of the value. */
void metrics_series_gauge_add(metrics_series_t *s, int64_t delta);
/** Gauge (or a counter kept elsewhere, like CPU seconds): sets the value outright. A series set
 *  this way should not also use gauge_add. */
void metrics_series_set(metrics_series_t *s, double value);
/** Histogram: records one observation. */
void metrics_series_observe(metrics_series_t *s, double value);

/** Shorthands: metrics_series() then the update. `values` may be NULL for a family without
 *  labels. */
void metrics_inc(metrics_family_t *family, const char *const *values);
void metrics_gauge_add(metrics_family_t *family, const char *const *values, int64_t delta);
void metrics_set(metrics_family_t *family, const char *const *values, double value);
void metrics_observe(metrics_family_t *family, const char *const *values, double value);

/** Registers a family so that it is rendered (HELP and TYPE) before any series exists. */
void metrics_register(metrics_family_t *family);

/** A function run at the start of every render, to set gauges computed at scrape time. At most
 *  16; the same function is registered once. */
typedef void (*metrics_collector_fn)(void);
void metrics_add_collector(metrics_collector_fn fn);

/** Renders every registered family in text exposition format 0.0.4, with the shards of all
 *  threads (living and ended) added up. Returns a malloc'd, NUL-terminated text the caller
 *  frees, and its length in *len (may be NULL); NULL when out of memory. Thread-safe. */
char *metrics_render(size_t *len);

/** Writes `value` as a Prometheus label value (escaping backslash, double quote and newline)
 *  into out[cap]; returns the length the whole would need (like snprintf). */
size_t metrics_escape_label_value(const char *value, char *out, size_t cap);

/** Prometheus' spelling of a float: shortest round-tripping decimal, +Inf, -Inf, NaN. */
void metrics_format_double(double v, char *out, size_t cap);

#endif
