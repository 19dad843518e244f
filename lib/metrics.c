/* metrics.c -- the metrics registry: families, series found through a lock-free-read hash
 * table, per-thread shards of slots, and the text exposition renderer.
 *
 * A series owns a run of slots: one for a counter or a gauge, bucket_count + 2 for a histogram
 * (the buckets, +Inf, and the sum as the bits of a double). Each thread writes its own shard
 * with relaxed atomic loads and stores (plain moves on the machine; atomic only so that a
 * scrape reading them concurrently is not a data race). A shard's slots come in chunks,
 * allocated when the thread first touches one. When a thread ends, its shard is added into the
 * `retired` shard under the mutex, so counters never go backwards. */
#include "metrics.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS_PER_CHUNK 1024
#define CHUNKS_MAX 256 /* 262144 slots: METRICS_SERIES_MAX histograms of 30 slots */
#define TABLE_SIZE (METRICS_SERIES_MAX * 2)
#define COLLECTORS_MAX 16

const double metrics_latency_buckets_s[14] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                              0.1,    0.25,  0.5,    1,     2.5,  5,     10};

struct metrics_series {
    metrics_family_t *family;
    uint64_t hash;
    uint32_t slot; /* first slot */
    atomic_bool has_set;
    _Atomic uint64_t set_bits; /* metrics_series_set's value, as a double's bits */
    metrics_series_t *next;    /* in the family, in creation order */
    char *values[METRICS_LABELS_MAX];
};

typedef struct shard {
    _Atomic(_Atomic uint64_t *) chunks[CHUNKS_MAX];
    struct shard *next;
} shard_t;

static struct {
    pthread_mutex_t mu; /* guards everything below but the table's reads and `enabled` */
    metrics_family_t *families_head, *families_tail;
    int family_count;
    uint32_t next_slot;
    int series_count;
    shard_t *shards; /* of living threads */
    shard_t retired; /* of ended threads, added up */
    metrics_collector_fn collectors[COLLECTORS_MAX];
    int collector_count;
    atomic_bool enabled;
} g_met = {.mu = PTHREAD_MUTEX_INITIALIZER, .enabled = true};

static _Atomic(metrics_series_t *) g_table[TABLE_SIZE];

static pthread_once_t g_key_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_key;
static __thread shard_t *t_shard;

void metrics_set_enabled(bool on) {
    atomic_store(&g_met.enabled, on);
}

bool metrics_enabled(void) {
    return atomic_load_explicit(&g_met.enabled, memory_order_relaxed);
}

/* ---- slots ---- */

static uint32_t series_slot_count(const metrics_family_t *f) {
    return f->type == METRICS_TYPE_HISTOGRAM ? (uint32_t)f->bucket_count + 2 : 1;
}

static _Atomic uint64_t *shard_chunk(shard_t *sh, uint32_t chunk, bool create) {
    _Atomic uint64_t *c = atomic_load_explicit(&sh->chunks[chunk], memory_order_acquire);
    if (c == NULL && create) {
        c = calloc(SLOTS_PER_CHUNK, sizeof *c);
        if (c == NULL) {
            abort();
        }
        atomic_store_explicit(&sh->chunks[chunk], c, memory_order_release);
    }
    return c;
}

static uint64_t shard_read(shard_t *sh, uint32_t slot) {
    _Atomic uint64_t *c = shard_chunk(sh, slot / SLOTS_PER_CHUNK, false);
    return c ? atomic_load_explicit(&c[slot % SLOTS_PER_CHUNK], memory_order_relaxed) : 0;
}

static double bits_to_double(uint64_t bits) {
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

static uint64_t double_to_bits(double d) {
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    return bits;
}

/* Adds shard `from`'s slots of `s` into `to`; the caller holds the mutex and nobody writes
 * `to`, nor `from` (its thread is ending). */
static void shard_merge_series(shard_t *to, shard_t *from, const metrics_series_t *s) {
    uint32_t n = series_slot_count(s->family);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t slot = s->slot + i;
        uint64_t v = shard_read(from, slot);
        if (v == 0) {
            continue;
        }
        _Atomic uint64_t *p =
            &shard_chunk(to, slot / SLOTS_PER_CHUNK, true)[slot % SLOTS_PER_CHUNK];
        uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
        bool is_sum = s->family->type == METRICS_TYPE_HISTOGRAM && i == n - 1;
        uint64_t sum = is_sum ? double_to_bits(bits_to_double(old) + bits_to_double(v)) : old + v;
        atomic_store_explicit(p, sum, memory_order_relaxed);
    }
}

/* pthread key destructor: the thread is ending; keep what it counted. */
static void shard_retire(void *arg) {
    shard_t *sh = arg;
    pthread_mutex_lock(&g_met.mu);
    for (metrics_family_t *f = g_met.families_head; f; f = f->next) {
        for (metrics_series_t *s = f->series_head; s; s = s->next) {
            shard_merge_series(&g_met.retired, sh, s);
        }
    }
    for (shard_t **pp = &g_met.shards; *pp; pp = &(*pp)->next) {
        if (*pp == sh) {
            *pp = sh->next;
            break;
        }
    }
    pthread_mutex_unlock(&g_met.mu);
    for (int i = 0; i < CHUNKS_MAX; i++) {
        free(atomic_load(&sh->chunks[i]));
    }
    free(sh);
    t_shard = NULL;
}

static void key_create(void) {
    if (pthread_key_create(&g_key, shard_retire) != 0) {
        abort();
    }
}

/* The calling thread's shard, registered on its first record. */
static shard_t *shard_self(void) {
    if (t_shard != NULL) {
        return t_shard;
    }
    pthread_once(&g_key_once, key_create);
    shard_t *sh = calloc(1, sizeof *sh);
    if (sh == NULL) {
        abort();
    }
    pthread_mutex_lock(&g_met.mu);
    sh->next = g_met.shards;
    g_met.shards = sh;
    pthread_mutex_unlock(&g_met.mu);
    pthread_setspecific(g_key, sh);
    t_shard = sh;
    return sh;
}

static _Atomic uint64_t *slot_self(uint32_t slot) {
    shard_t *sh = shard_self();
    _Atomic uint64_t *c =
        atomic_load_explicit(&sh->chunks[slot / SLOTS_PER_CHUNK], memory_order_relaxed);
    if (c == NULL) {
        c = shard_chunk(sh, slot / SLOTS_PER_CHUNK, true);
    }
    return &c[slot % SLOTS_PER_CHUNK];
}

/* Only this thread writes the slot: a load and a store, no read-modify-write. */
static void slot_add(uint32_t slot, uint64_t n) {
    _Atomic uint64_t *p = slot_self(slot);
    atomic_store_explicit(p, atomic_load_explicit(p, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static void slot_add_double(uint32_t slot, double v) {
    _Atomic uint64_t *p = slot_self(slot);
    double old = bits_to_double(atomic_load_explicit(p, memory_order_relaxed));
    atomic_store_explicit(p, double_to_bits(old + v), memory_order_relaxed);
}

/* ---- families and series ---- */

/* The caller holds the mutex. */
static void family_register_locked(metrics_family_t *f) {
    if (atomic_load(&f->registered)) {
        return;
    }
    size_t n = 0;
    while (n < METRICS_LABELS_MAX && f->labels[n] != NULL) {
        n++;
    }
    f->label_count = n;
    assert(f->type != METRICS_TYPE_HISTOGRAM ||
           (f->bucket_count > 0 && f->bucket_count <= METRICS_BUCKETS_MAX));
    if (g_met.family_count == METRICS_FAMILIES_MAX) {
        assert(!"too many metric families");
        return;
    }
    g_met.family_count++;
    if (g_met.families_tail) {
        g_met.families_tail->next = f;
    } else {
        g_met.families_head = f;
    }
    g_met.families_tail = f;
    atomic_store(&f->registered, true);
}

static size_t value_len(const char *v) {
    size_t n = strlen(v);
    return n < METRICS_LABEL_VALUE_MAX - 1 ? n : METRICS_LABEL_VALUE_MAX - 1;
}

static uint64_t series_hash(const metrics_family_t *f, const char *const *values, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    uintptr_t fp = (uintptr_t)f;
    for (size_t i = 0; i < sizeof fp; i++) {
        h = (h ^ ((fp >> (8 * i)) & 0xff)) * 1099511628211ULL;
    }
    for (size_t i = 0; i < n; i++) {
        const char *v = values[i];
        size_t len = value_len(v);
        for (size_t k = 0; k < len; k++) {
            h = (h ^ (unsigned char)v[k]) * 1099511628211ULL;
        }
        h = (h ^ 0xff) * 1099511628211ULL;
    }
    return h;
}

static bool series_matches(const metrics_series_t *s, const metrics_family_t *f, uint64_t h,
                           const char *const *values) {
    if (s->hash != h || s->family != f) {
        return false;
    }
    for (size_t i = 0; i < f->label_count; i++) {
        size_t len = value_len(values[i]);
        if (strlen(s->values[i]) != len || memcmp(s->values[i], values[i], len) != 0) {
            return false;
        }
    }
    return true;
}

/* Probes the table; returns the series, or NULL with *free_at the first empty entry. */
static metrics_series_t *table_find(const metrics_family_t *f, uint64_t h,
                                    const char *const *values, size_t *free_at) {
    size_t idx = (size_t)(h & (TABLE_SIZE - 1));
    for (size_t probe = 0; probe < TABLE_SIZE; probe++) {
        metrics_series_t *s = atomic_load_explicit(&g_table[idx], memory_order_acquire);
        if (s == NULL) {
            *free_at = idx;
            return NULL;
        }
        if (series_matches(s, f, h, values)) {
            return s;
        }
        idx = (idx + 1) & (TABLE_SIZE - 1);
    }
    *free_at = TABLE_SIZE;
    return NULL;
}

static metrics_series_t *series_create_locked(metrics_family_t *f, uint64_t h,
                                              const char *const *values, size_t at) {
    uint32_t slots = series_slot_count(f);
    if (at == TABLE_SIZE || g_met.series_count == METRICS_SERIES_MAX ||
        g_met.next_slot + slots > (uint32_t)CHUNKS_MAX * SLOTS_PER_CHUNK) {
        return NULL;
    }
    metrics_series_t *s = calloc(1, sizeof *s);
    if (s == NULL) {
        abort();
    }
    s->family = f;
    s->hash = h;
    /* a histogram's slots never straddle a chunk, so that its record touches one chunk */
    uint32_t room = SLOTS_PER_CHUNK - g_met.next_slot % SLOTS_PER_CHUNK;
    if (room < slots) {
        g_met.next_slot += room;
    }
    s->slot = g_met.next_slot;
    g_met.next_slot += slots;
    for (size_t i = 0; i < f->label_count; i++) {
        size_t len = value_len(values[i]);
        s->values[i] = malloc(len + 1);
        if (s->values[i] == NULL) {
            abort();
        }
        memcpy(s->values[i], values[i], len);
        s->values[i][len] = '\0';
    }
    if (f->series_tail) {
        f->series_tail->next = s;
    } else {
        f->series_head = s;
    }
    f->series_tail = s;
    g_met.series_count++;
    atomic_store_explicit(&g_table[at], s, memory_order_release);
    return s;
}

metrics_series_t *metrics_series(metrics_family_t *f, const char *const *values) {
    if (!metrics_enabled()) {
        return NULL;
    }
    static const char *const no_values[1] = {NULL};
    if (values == NULL) {
        values = no_values;
    }
    if (!atomic_load_explicit(&f->registered, memory_order_acquire)) {
        metrics_register(f);
    }
    uint64_t h = series_hash(f, values, f->label_count);
    size_t at = 0;
    metrics_series_t *s = table_find(f, h, values, &at);
    if (s != NULL) {
        return s;
    }
    pthread_mutex_lock(&g_met.mu);
    s = table_find(f, h, values, &at);
    if (s == NULL) {
        s = series_create_locked(f, h, values, at);
    }
    pthread_mutex_unlock(&g_met.mu);
    return s;
}

void metrics_register(metrics_family_t *f) {
    pthread_mutex_lock(&g_met.mu);
    family_register_locked(f);
    pthread_mutex_unlock(&g_met.mu);
    if (f->label_count == 0 && metrics_enabled()) {
        (void)metrics_series(f, NULL); /* a family without labels shows 0 from the start */
    }
}

void metrics_series_add(metrics_series_t *s, uint64_t n) {
    if (s != NULL) {
        slot_add(s->slot, n);
    }
}

void metrics_series_gauge_add(metrics_series_t *s, int64_t delta) {
    if (s != NULL) {
        slot_add(s->slot, (uint64_t)delta); /* two's complement: the sum comes out signed */
    }
}

void metrics_series_set(metrics_series_t *s, double value) {
    if (s != NULL) {
        atomic_store_explicit(&s->set_bits, double_to_bits(value), memory_order_relaxed);
        atomic_store_explicit(&s->has_set, true, memory_order_release);
    }
}

void metrics_series_observe(metrics_series_t *s, double value) {
    if (s == NULL) {
        return;
    }
    const metrics_family_t *f = s->family;
    size_t b = 0;
    while (b < f->bucket_count && value > f->buckets[b]) {
        b++;
    }
    slot_add(s->slot + (uint32_t)b, 1); /* b == bucket_count: +Inf */
    slot_add_double(s->slot + (uint32_t)f->bucket_count + 1, value);
}

void metrics_inc(metrics_family_t *f, const char *const *values) {
    metrics_series_add(metrics_series(f, values), 1);
}

void metrics_gauge_add(metrics_family_t *f, const char *const *values, int64_t delta) {
    metrics_series_gauge_add(metrics_series(f, values), delta);
}

void metrics_set(metrics_family_t *f, const char *const *values, double value) {
    metrics_series_set(metrics_series(f, values), value);
}

void metrics_observe(metrics_family_t *f, const char *const *values, double value) {
    metrics_series_observe(metrics_series(f, values), value);
}

void metrics_add_collector(metrics_collector_fn fn) {
    pthread_mutex_lock(&g_met.mu);
    bool known = false;
    for (int i = 0; i < g_met.collector_count && !known; i++) {
        known = g_met.collectors[i] == fn;
    }
    if (!known && g_met.collector_count < COLLECTORS_MAX) {
        g_met.collectors[g_met.collector_count++] = fn;
    }
    pthread_mutex_unlock(&g_met.mu);
}

/* ---- rendering ---- */

typedef struct buf {
    char *data;
    size_t len, cap;
    bool failed;
} buf_t;

static void buf_reserve(buf_t *b, size_t more) {
    if (b->failed || b->len + more + 1 <= b->cap) {
        return;
    }
    size_t cap = b->cap ? b->cap : 16384;
    while (cap < b->len + more + 1) {
        cap *= 2;
    }
    char *d = realloc(b->data, cap);
    if (d == NULL) {
        b->failed = true;
        return;
    }
    b->data = d;
    b->cap = cap;
}

static void buf_append(buf_t *b, const char *s, size_t n) {
    buf_reserve(b, n);
    if (!b->failed) {
        memcpy(b->data + b->len, s, n);
        b->len += n;
        b->data[b->len] = '\0';
    }
}

static void buf_puts(buf_t *b, const char *s) {
    buf_append(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void buf_printf(buf_t *b, const char *fmt, ...) {
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return;
    }
    if ((size_t)n < sizeof small) {
        buf_append(b, small, (size_t)n);
        return;
    }
    buf_reserve(b, (size_t)n);
    if (!b->failed) {
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
        b->len += (size_t)n;
    }
}

size_t metrics_escape_label_value(const char *value, char *out, size_t cap) {
    size_t n = 0;
    for (const char *p = value; *p; p++) {
        const char *rep = NULL;
        char one[2] = {*p, '\0'};
        switch (*p) {
        case '\\':
            rep = "\\\\";
            break;
        case '"':
            rep = "\\\"";
            break;
        case '\n':
            rep = "\\n";
            break;
        default:
            rep = one;
        }
        for (const char *r = rep; *r; r++, n++) {
            if (n + 1 < cap) {
                out[n] = *r;
            }
        }
    }
    if (cap > 0) {
        out[n < cap ? n : cap - 1] = '\0';
    }
    return n;
}

void metrics_format_double(double v, char *out, size_t cap) {
    if (isnan(v)) {
        snprintf(out, cap, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(out, cap, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (v > -1e15 && v < 1e15 && v == (double)(long long)v) { /* 10, not 1e+01 */
        snprintf(out, cap, "%.0f", v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, cap, "%.*g", prec, v);
        if (strtod(out, NULL) == v) {
            return;
        }
    }
}

static void buf_help(buf_t *b, const char *help) {
    for (const char *p = help; *p; p++) {
        if (*p == '\\') {
            buf_puts(b, "\\\\");
        } else if (*p == '\n') {
            buf_puts(b, "\\n");
        } else {
            buf_append(b, p, 1);
        }
    }
}

/* `name{a="x",b="y"[,le="..."]}`: the labels of `s`, then `le` when given. */
static void buf_series_name(buf_t *b, const char *name, const char *suffix,
                            const metrics_series_t *s, const char *le) {
    buf_puts(b, name);
    buf_puts(b, suffix);
    size_t n = s->family->label_count;
    if (n == 0 && le == NULL) {
        return;
    }
    buf_puts(b, "{");
    char esc[METRICS_LABEL_VALUE_MAX * 2 + 1];
    for (size_t i = 0; i < n; i++) {
        metrics_escape_label_value(s->values[i], esc, sizeof esc);
        buf_printf(b, "%s%s=\"%s\"", i ? "," : "", s->family->labels[i], esc);
    }
    if (le != NULL) {
        buf_printf(b, "%sle=\"%s\"", n ? "," : "", le);
    }
    buf_puts(b, "}");
}

static uint64_t series_sum_u64(const metrics_series_t *s, uint32_t offset) {
    uint32_t slot = s->slot + offset;
    uint64_t total = shard_read(&g_met.retired, slot);
    for (shard_t *sh = g_met.shards; sh; sh = sh->next) {
        total += shard_read(sh, slot);
    }
    return total;
}

static double series_sum_double(const metrics_series_t *s, uint32_t offset) {
    uint32_t slot = s->slot + offset;
    double total = bits_to_double(shard_read(&g_met.retired, slot));
    for (shard_t *sh = g_met.shards; sh; sh = sh->next) {
        total += bits_to_double(shard_read(sh, slot));
    }
    return total;
}

static void render_series(buf_t *b, const metrics_series_t *s) {
    const metrics_family_t *f = s->family;
    char num[64];
    if (f->type == METRICS_TYPE_HISTOGRAM) {
        uint64_t cumulative = 0;
        char le[64];
        for (size_t i = 0; i <= f->bucket_count; i++) {
            cumulative += series_sum_u64(s, (uint32_t)i);
            if (i < f->bucket_count) {
                metrics_format_double(f->buckets[i], le, sizeof le);
            } else {
                snprintf(le, sizeof le, "+Inf");
            }
            buf_series_name(b, f->name, "_bucket", s, le);
            buf_printf(b, " %llu\n", (unsigned long long)cumulative);
        }
        metrics_format_double(series_sum_double(s, (uint32_t)f->bucket_count + 1), num, sizeof num);
        buf_series_name(b, f->name, "_sum", s, NULL);
        buf_printf(b, " %s\n", num);
        buf_series_name(b, f->name, "_count", s, NULL);
        buf_printf(b, " %llu\n", (unsigned long long)cumulative);
        return;
    }
    buf_series_name(b, f->name, "", s, NULL);
    if (atomic_load_explicit(&s->has_set, memory_order_acquire)) {
        double v = bits_to_double(atomic_load_explicit(&s->set_bits, memory_order_relaxed));
        if (f->type == METRICS_TYPE_GAUGE) {
            v += (double)(int64_t)series_sum_u64(s, 0);
        }
        metrics_format_double(v, num, sizeof num);
        buf_printf(b, " %s\n", num);
    } else if (f->type == METRICS_TYPE_GAUGE) {
        buf_printf(b, " %lld\n", (long long)(int64_t)series_sum_u64(s, 0));
    } else {
        buf_printf(b, " %llu\n", (unsigned long long)series_sum_u64(s, 0));
    }
}

char *metrics_render(size_t *len) {
    metrics_collector_fn collectors[COLLECTORS_MAX];
    pthread_mutex_lock(&g_met.mu);
    int nc = g_met.collector_count;
    memcpy(collectors, g_met.collectors, sizeof collectors);
    pthread_mutex_unlock(&g_met.mu);
    for (int i = 0; i < nc; i++) {
        collectors[i](); /* without the mutex: they create series */
    }
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    _Static_assert(sizeof type_names / sizeof *type_names == METRICS_TYPE_HISTOGRAM + 1,
                   "a name per metric type");
    buf_t b = {0};
    buf_reserve(&b, 0);
    if (!b.failed) {
        b.data[0] = '\0';
    }
    pthread_mutex_lock(&g_met.mu);
    for (metrics_family_t *f = g_met.families_head; f; f = f->next) {
        buf_printf(&b, "# HELP %s ", f->name);
        buf_help(&b, f->help);
        buf_printf(&b, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
        for (metrics_series_t *s = f->series_head; s; s = s->next) {
            render_series(&b, s);
        }
    }
    pthread_mutex_unlock(&g_met.mu);
    if (b.failed) {
        free(b.data);
        return NULL;
    }
    if (len) {
        *len = b.len;
    }
    return b.data;
}
