/* credentials.c -- the credential file (parse, lookup by SHA-256 in constant time, role and
 * merchant decisions) and the process-wide set behind a read-write lock, re-read by a watcher
 * thread when the file's identity or modification time changes, and on SIGHUP. */
#include "credentials.h"

#include "auth.h"
#include "clock.h"
#include "log.h"
#include "validate.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* How often the watcher looks at the file: a rotation step is picked up within this. */
#define CRED_WATCH_INTERVAL_MS 1000
#define CRED_PATH_MAX 1024

struct cred_set {
    cred_entry_t *entries;
    size_t count;
    size_t cap;
    char *text; /* the file's text, cut into the merchants' strings */
};

void cred_digest(const char *token, size_t len, uint8_t digest[CRED_DIGEST_BYTES]) {
    unsigned int n = 0;
    /* EVP_Digest with SHA-256 cannot fail short of memory exhaustion in OpenSSL itself. */
    int ok = EVP_Digest(token, len, digest, &n, EVP_sha256(), NULL);
    if (ok != 1 || n != CRED_DIGEST_BYTES) {
        abort();
    }
}

void cred_set_free(cred_set_t *set) {
    if (set == NULL) {
        return;
    }
    for (size_t i = 0; i < set->count; i++) {
        free((void *)set->entries[i].merchants);
    }
    free(set->entries);
    free(set->text);
    free(set);
}

size_t cred_set_count(const cred_set_t *set) {
    return set ? set->count : 0;
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static bool parse_digest(const char *hex, uint8_t digest[CRED_DIGEST_BYTES]) {
    if (strlen(hex) != 2 * CRED_DIGEST_BYTES) {
        return false;
    }
    for (size_t i = 0; i < CRED_DIGEST_BYTES; i++) {
        int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return false;
        }
        digest[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static bool parse_role(const char *s, cred_role_t *role) {
    if (strcmp(s, "storefront") == 0) {
        *role = CRED_ROLE_STOREFRONT;
    } else if (strcmp(s, "admin") == 0) {
        *role = CRED_ROLE_ADMIN;
    } else if (strcmp(s, "service") == 0) {
        *role = CRED_ROLE_SERVICE;
    } else {
        return false;
    }
    return true;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static cred_entry_t *set_append(cred_set_t *set) {
    if (set->count == set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 16;
        cred_entry_t *ne = realloc(set->entries, cap * sizeof *ne);
        if (ne == NULL) {
            abort();
        }
        set->entries = ne;
        set->cap = cap;
    }
    cred_entry_t *e = &set->entries[set->count++];
    memset(e, 0, sizeof *e);
    return e;
}

/* Splits `merchants` (cut in place) into e->merchants; NULL or the reason it is wrong. */
static const char *parse_merchants(cred_entry_t *e, char *merchants) {
    if (strcmp(merchants, "*") == 0) {
        if (e->role == CRED_ROLE_STOREFRONT) {
            return "a storefront credential cannot have every merchant (*)";
        }
        e->every_merchant = true;
        return NULL;
    }
    size_t n = 1;
    for (const char *p = merchants; *p; p++) {
        n += *p == ',';
    }
    const char **list = calloc(n, sizeof *list);
    if (list == NULL) {
        abort();
    }
    e->merchants = list;
    char *save = NULL;
    size_t count = 0;
    for (char *m = strtok_r(merchants, ",", &save); m; m = strtok_r(NULL, ",", &save)) {
        if (strcmp(m, "*") == 0) {
            return "* stands alone";
        }
        status_t st = validate_merchant_id(m);
        if (!status_is_ok(&st)) {
            return "a merchant id is not valid";
        }
        list[count++] = m;
    }
    if (count == 0) {
        return "no merchant";
    }
    qsort(list, count, sizeof *list, cmp_str);
    e->merchant_count = count;
    return NULL;
}

bool cred_id_valid(const char *id) {
    size_t n = strlen(id);
    if (n == 0 || n > CRED_ID_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.' || c == ':' || c == '@';
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* Parses one line's fields (cut in place) into a new entry; NULL or the reason it is wrong. */
static const char *parse_line(cred_set_t *set, char *line) {
    char *hash = strchr(line, '#');
    if (hash) {
        *hash = '\0';
    }
    char *fields[5];
    int n = 0;
    char *save = NULL;
    for (char *f = strtok_r(line, " \t\r", &save); f; f = strtok_r(NULL, " \t\r", &save)) {
        if (n == 5) {
            break;
        }
        fields[n++] = f;
    }
    if (n == 0) {
        return NULL; /* blank or comment */
    }
    if (n != 4) {
        return "expected 4 fields: id role merchants sha256";
    }
    if (set->count == CRED_ENTRIES_MAX) {
        return "too many credentials";
    }
    if (!cred_id_valid(fields[0])) {
        return "the id must be 1..64 characters of [A-Za-z0-9_.:@-]";
    }
    if (strcmp(fields[0], CRED_SERVICE_ID) == 0) {
        return "the id \"" CRED_SERVICE_ID "\" is LOYALTY_AUTH_TOKEN's";
    }
    cred_role_t role;
    if (!parse_role(fields[1], &role)) {
        return "the role must be storefront, admin or service";
    }
    uint8_t digest[CRED_DIGEST_BYTES];
    if (!parse_digest(fields[3], digest)) {
        return "the token's SHA-256 must be 64 hexadecimal digits";
    }
    for (size_t i = 0; i < set->count; i++) {
        if (strcmp(set->entries[i].id, fields[0]) == 0) {
            return "the id is given twice";
        }
        if (memcmp(set->entries[i].digest, digest, sizeof digest) == 0) {
            return "the token is given twice";
        }
    }
    cred_entry_t *e = set_append(set);
    snprintf(e->id, sizeof e->id, "%s", fields[0]);
    e->role = role;
    memcpy(e->digest, digest, sizeof digest);
    return parse_merchants(e, fields[2]);
}

status_t cred_set_parse(const char *text, cred_set_t **out) {
    *out = NULL;
    cred_set_t *set = calloc(1, sizeof *set);
    if (set == NULL) {
        abort();
    }
    set->text = strdup(text);
    if (set->text == NULL) {
        abort();
    }
    int line_no = 0;
    /* Cut at each newline by hand: strtok_r would skip empty lines and miscount. */
    for (char *line = set->text; line;) {
        line_no++;
        char *nl = strchr(line, '\n');
        if (nl) {
            *nl = '\0';
        }
        const char *why = parse_line(set, line);
        if (why) {
            cred_set_free(set);
            return status_make(STATUS_INVALID_ARGUMENT, REASON_INVALID_CREDENTIALS, "line %d: %s",
                               line_no, why);
        }
        line = nl ? nl + 1 : NULL;
    }
    *out = set;
    return status_ok();
}

status_t cred_set_add_service(cred_set_t *set, const char *token) {
    if (token[0] == '\0') {
        return status_ok();
    }
    uint8_t digest[CRED_DIGEST_BYTES];
    cred_digest(token, strlen(token), digest);
    for (size_t i = 0; i < set->count; i++) {
        if (memcmp(set->entries[i].digest, digest, sizeof digest) == 0) {
            return status_make(STATUS_INVALID_ARGUMENT, REASON_INVALID_CREDENTIALS,
                               "credential %s has the token of LOYALTY_AUTH_TOKEN",
                               set->entries[i].id);
        }
    }
    cred_entry_t *e = set_append(set);
    snprintf(e->id, sizeof e->id, "%s", CRED_SERVICE_ID);
    e->role = CRED_ROLE_SERVICE;
    e->every_merchant = true;
    memcpy(e->digest, digest, sizeof digest);
    return status_ok();
}

const cred_entry_t *cred_set_find(const cred_set_t *set, const uint8_t digest[CRED_DIGEST_BYTES]) {
    const cred_entry_t *found = NULL;
    if (set == NULL) {
        return NULL;
    }
    /* Every entry is compared in full; which one matched is no secret (the answer says it). */
    for (size_t i = 0; i < set->count; i++) {
        if (CRYPTO_memcmp(set->entries[i].digest, digest, CRED_DIGEST_BYTES) == 0) {
            found = &set->entries[i];
        }
    }
    return found;
}

static bool entry_has_merchant(const cred_entry_t *e, const char *merchant_id) {
    if (e->every_merchant) {
        return true;
    }
    const char *key = merchant_id;
    return bsearch(&key, e->merchants, e->merchant_count, sizeof *e->merchants, cmp_str) != NULL;
}

status_t cred_authorize(const cred_entry_t *who, cred_access_t access, const char *merchant_id) {
    if (who == NULL) {
        return status_make(STATUS_UNAUTHENTICATED, REASON_UNAUTHENTICATED,
                           "missing or invalid bearer token");
    }
    if (access == CRED_ACCESS_ANY) {
        return status_ok();
    }
    if (access == CRED_ACCESS_ADMIN && who->role == CRED_ROLE_STOREFRONT) {
        return status_make(STATUS_PERMISSION_DENIED, REASON_ROLE_NOT_ALLOWED,
                           "credential %s (storefront) may not call this method", who->id);
    }
    if (merchant_id[0] == '\0') {
        /* A view across merchants: an operator's, so an admin of every merchant only. */
        if (who->role != CRED_ROLE_ADMIN) {
            return status_make(STATUS_PERMISSION_DENIED, REASON_ROLE_NOT_ALLOWED,
                               "credential %s may not read across merchants", who->id);
        }
        if (!who->every_merchant) {
            return status_make(STATUS_PERMISSION_DENIED, REASON_MERCHANT_NOT_ALLOWED,
                               "credential %s may not read across merchants", who->id);
        }
        return status_ok();
    }
    if (!entry_has_merchant(who, merchant_id)) {
        return status_make(STATUS_PERMISSION_DENIED, REASON_MERCHANT_NOT_ALLOWED,
                           "credential %s may not act for this merchant", who->id);
    }
    return status_ok();
}

/* ---- the process-wide set ---- */

typedef struct file_sig {
    bool present;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} file_sig_t;

static struct {
    pthread_rwlock_t lock; /* guards set */
    cred_set_t *set;       /* NULL when no file is in use */
    bool enabled;
    char path[CRED_PATH_MAX];
    char service_token[CRED_PATH_MAX];
    file_sig_t sig; /* of the file as last read (watcher thread and SIGHUP, under mu) */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool stop;
    bool running;
    pthread_t thread;
} g_cred = {.lock = PTHREAD_RWLOCK_INITIALIZER,
            .mu = PTHREAD_MUTEX_INITIALIZER,
            .cond = PTHREAD_COND_INITIALIZER};

static file_sig_t file_sig_of(const char *path) {
    file_sig_t s = {0};
    struct stat st;
    if (stat(path, &st) == 0) {
        s.present = true;
        s.dev = st.st_dev;
        s.ino = st.st_ino;
        s.size = st.st_size;
        s.mtime = st.st_mtim;
    }
    return s;
}

static bool file_sig_equal(const file_sig_t *a, const file_sig_t *b) {
    return a->present == b->present && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

static status_t read_text(const char *path, char **out) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return status_make(STATUS_INVALID_ARGUMENT, REASON_INVALID_CREDENTIALS,
                           "cannot open %s: %s", path, strerror(errno));
    }
    char *buf = malloc(CRED_FILE_MAX_BYTES + 1);
    if (buf == NULL) {
        abort();
    }
    size_t len = fread(buf, 1, CRED_FILE_MAX_BYTES + 1, f);
    bool failed = ferror(f) != 0;
    fclose(f);
    if (failed || len > CRED_FILE_MAX_BYTES) {
        free(buf);
        return status_make(STATUS_INVALID_ARGUMENT, REASON_INVALID_CREDENTIALS,
                           failed ? "cannot read %s" : "%s is larger than 4 MiB", path);
    }
    buf[len] = '\0';
    if (memchr(buf, '\0', len) != NULL) {
        free(buf);
        return status_make(STATUS_INVALID_ARGUMENT, REASON_INVALID_CREDENTIALS,
                           "%s holds a NUL byte", path);
    }
    *out = buf;
    return status_ok();
}

/* Reads and parses the file; swaps the set in when it parses. Caller holds g_cred.mu. */
static status_t reload_locked(void) {
    /* The signature is taken before reading: a change made while reading shows as another
     * signature next time, so the watcher never settles on a half-written file. */
    g_cred.sig = file_sig_of(g_cred.path);
    char *text = NULL;
    status_t st = read_text(g_cred.path, &text);
    cred_set_t *set = NULL;
    if (status_is_ok(&st)) {
        st = cred_set_parse(text, &set);
        free(text);
    }
    if (status_is_ok(&st)) {
        st = cred_set_add_service(set, g_cred.service_token);
    }
    if (!status_is_ok(&st)) {
        cred_set_free(set);
        return st;
    }
    pthread_rwlock_wrlock(&g_cred.lock);
    cred_set_t *old = g_cred.set;
    g_cred.set = set;
    pthread_rwlock_unlock(&g_cred.lock);
    cred_set_free(old);
    log_msg(LOG_INFO, "credentials loaded from %s: %zu credentials", g_cred.path,
            cred_set_count(set));
    return status_ok();
}

status_t credentials_reload(void) {
    if (!g_cred.enabled) {
        return status_ok();
    }
    pthread_mutex_lock(&g_cred.mu);
    status_t st = reload_locked();
    pthread_mutex_unlock(&g_cred.mu);
    if (!status_is_ok(&st)) {
        log_msg(LOG_ERROR, "credential file not loaded, the previous credentials stay: %s",
                st.message);
    }
    return st;
}

/* Sleeps up to ms unless told to stop; true when stopping. Caller holds g_cred.mu. */
static bool watch_sleep_locked(int64_t ms) {
    struct timespec until = clock_realtime_after_ms(ms);
    while (!g_cred.stop) {
        if (pthread_cond_timedwait(&g_cred.cond, &g_cred.mu, &until) == ETIMEDOUT) {
            break;
        }
    }
    return g_cred.stop;
}

static void *watch_main(void *arg) {
    (void)arg;
    pthread_mutex_lock(&g_cred.mu);
    while (!watch_sleep_locked(CRED_WATCH_INTERVAL_MS)) {
        file_sig_t now = file_sig_of(g_cred.path);
        if (file_sig_equal(&now, &g_cred.sig)) {
            continue;
        }
        status_t st = reload_locked();
        if (!status_is_ok(&st)) {
            log_msg(LOG_ERROR, "credential file not loaded, the previous credentials stay: %s",
                    st.message);
        }
    }
    pthread_mutex_unlock(&g_cred.mu);
    return NULL;
}

status_t credentials_start(const char *path, const char *service_token) {
    if (path[0] == '\0') {
        return status_ok();
    }
    if (strlen(path) >= sizeof g_cred.path ||
        strlen(service_token) >= sizeof g_cred.service_token) {
        return status_make(STATUS_INVALID_ARGUMENT, REASON_INVALID_CONFIG,
                           "LOYALTY_CREDENTIALS_FILE or LOYALTY_AUTH_TOKEN too long");
    }
    snprintf(g_cred.path, sizeof g_cred.path, "%s", path);
    snprintf(g_cred.service_token, sizeof g_cred.service_token, "%s", service_token);
    g_cred.enabled = true;
    pthread_mutex_lock(&g_cred.mu);
    status_t st = reload_locked();
    pthread_mutex_unlock(&g_cred.mu);
    if (!status_is_ok(&st)) {
        g_cred.enabled = false;
        return st;
    }
    if (service_token[0] == '\0') {
        log_msg(LOG_WARN, "LOYALTY_CREDENTIALS_FILE without LOYALTY_AUTH_TOKEN: calls between "
                          "services carry no credential and will be refused");
    }
    g_cred.stop = false;
    if (pthread_create(&g_cred.thread, NULL, watch_main, NULL) != 0) {
        abort();
    }
    g_cred.running = true;
    return status_ok();
}

void credentials_stop(void) {
    if (g_cred.running) {
        pthread_mutex_lock(&g_cred.mu);
        g_cred.stop = true;
        pthread_cond_broadcast(&g_cred.cond);
        pthread_mutex_unlock(&g_cred.mu);
        pthread_join(g_cred.thread, NULL);
        g_cred.running = false;
    }
    pthread_rwlock_wrlock(&g_cred.lock);
    cred_set_free(g_cred.set);
    g_cred.set = NULL;
    pthread_rwlock_unlock(&g_cred.lock);
    g_cred.enabled = false;
}

bool credentials_enabled(void) {
    return g_cred.enabled;
}

status_t credentials_authenticate(const char *header, size_t header_len,
                                  uint8_t digest[CRED_DIGEST_BYTES]) {
    const char *token = NULL;
    size_t token_len = 0;
    const cred_entry_t *who = NULL;
    if (auth_bearer_token(header, header_len, &token, &token_len)) {
        cred_digest(token, token_len, digest);
        pthread_rwlock_rdlock(&g_cred.lock);
        who = cred_set_find(g_cred.set, digest);
        pthread_rwlock_unlock(&g_cred.lock);
    }
    if (who == NULL) {
        return status_make(STATUS_UNAUTHENTICATED, REASON_UNAUTHENTICATED,
                           "missing or invalid bearer token");
    }
    return status_ok();
}

status_t credentials_authorize(const uint8_t digest[CRED_DIGEST_BYTES], cred_access_t access,
                               const char *merchant_id, char *id_out) {
    pthread_rwlock_rdlock(&g_cred.lock);
    const cred_entry_t *who = cred_set_find(g_cred.set, digest);
    if (who) {
        memcpy(id_out, who->id, sizeof who->id);
    }
    status_t st = cred_authorize(who, access, merchant_id);
    pthread_rwlock_unlock(&g_cred.lock);
    return st;
}
