/* points_clock.c -- the local-day cache behind points_clock_get: a few time zones' current local
 * days, shared by the worker threads under a mutex. A day is asked of PostgreSQL once per zone
 * and local day (and again on a daylight-saving day, which is never cached), instead of once per
 * earn. */
#include "points_clock.h"

#include "points_store.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define CLOCK_ZONES_MAX 16
#define CLOCK_ZONE_NAME_MAX 64

typedef struct clock_zone {
    char tz[CLOCK_ZONE_NAME_MAX]; /* "" = free */
    points_local_day_t day;
} clock_zone_t;

static struct {
    pthread_mutex_t mu;
    clock_zone_t zones[CLOCK_ZONES_MAX];
    unsigned next_victim;
} g_clock = {.mu = PTHREAD_MUTEX_INITIALIZER};

static bool cached_clock(const char *tz, int64_t at_s, int64_t add_days,
                         points_local_clock_t *out) {
    bool hit = false;
    pthread_mutex_lock(&g_clock.mu);
    for (int i = 0; i < CLOCK_ZONES_MAX && !hit; i++) {
        if (strcmp(g_clock.zones[i].tz, tz) == 0) {
            hit = points_rules_clock_in_day(&g_clock.zones[i].day, at_s, add_days, out);
        }
    }
    pthread_mutex_unlock(&g_clock.mu);
    return hit;
}

static void remember_day(const char *tz, const points_local_day_t *day) {
    if (strlen(tz) >= CLOCK_ZONE_NAME_MAX) {
        return; /* no zone name is this long; not worth a slot */
    }
    pthread_mutex_lock(&g_clock.mu);
    clock_zone_t *slot = NULL;
    for (int i = 0; i < CLOCK_ZONES_MAX && slot == NULL; i++) {
        if (strcmp(g_clock.zones[i].tz, tz) == 0 || g_clock.zones[i].tz[0] == '\0') {
            slot = &g_clock.zones[i];
        }
    }
    if (slot == NULL) {
        slot = &g_clock.zones[g_clock.next_victim++ % CLOCK_ZONES_MAX];
    }
    snprintf(slot->tz, sizeof slot->tz, "%s", tz);
    slot->day = *day;
    pthread_mutex_unlock(&g_clock.mu);
}

status_t points_clock_get(db_t *db, const char *tz, int64_t at_s, int64_t add_days,
                          points_local_clock_t *out) {
    if (cached_clock(tz, at_s, add_days, out)) {
        return status_ok();
    }
    if (add_days != 0) {
        return points_store_local_clock(db, tz, at_s, add_days, out);
    }
    points_local_day_t day;
    status_t st = points_store_local_day(db, tz, at_s, &day);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (points_rules_clock_in_day(&day, at_s, 0, out)) {
        remember_day(tz, &day);
        return status_ok();
    }
    /* A daylight-saving day: the zone's rules decide what a local time maps back to. */
    return points_store_local_clock(db, tz, at_s, 0, out);
}
