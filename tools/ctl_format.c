/* ctl_format.c -- loyaltyctl's small conversions between text and values: enum value names
 * without their prefix (both ways), durations such as "15m", and times in UTC. */
#include "ctl.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* The longest duration accepted: ten years, as ListSagas's older_than_s. */
#define CTL_DURATION_MAX_S 315360000LL

/* The length of the prefix every value name of d shares up to an underscore
 * ("GATEWAY_SAGA_STATE_"), found from the first and last value names. */
static size_t enum_prefix_len(const ProtobufCEnumDescriptor *d) {
    if (d->n_values < 2) {
        return 0;
    }
    const char *a = d->values[0].name, *b = d->values[d->n_values - 1].name;
    size_t last_sep = 0;
    for (size_t i = 0; a[i] && a[i] == b[i]; i++) {
        if (a[i] == '_') {
            last_sep = i + 1;
        }
    }
    return last_sep;
}

const char *ctl_enum_name(const ProtobufCEnumDescriptor *d, int v, char buf[24]) {
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(d, v);
    if (ev == NULL) {
        snprintf(buf, 24, "%d", v);
        return buf;
    }
    size_t skip = enum_prefix_len(d);
    return strlen(ev->name) > skip ? ev->name + skip : ev->name;
}

bool ctl_enum_parse(const ProtobufCEnumDescriptor *d, const char *name, int *out) {
    size_t skip = enum_prefix_len(d);
    for (unsigned i = 0; i < d->n_values; i++) {
        const char *full = d->values[i].name;
        if (strcasecmp(full, name) == 0 || strcasecmp(full + skip, name) == 0) {
            *out = d->values[i].value;
            return true;
        }
    }
    return false;
}

bool ctl_parse_duration(const char *text, int64_t *seconds) {
    if (text == NULL || !isdigit((unsigned char)text[0])) {
        return false;
    }
    char *end = NULL;
    long long n = strtoll(text, &end, 10);
    long long unit = 1;
    if (end[0] != '\0') {
        if (end[1] != '\0') {
            return false;
        }
        switch (end[0]) {
        case 's':
            unit = 1;
            break;
        case 'm':
            unit = 60;
            break;
        case 'h':
            unit = 3600;
            break;
        case 'd':
            unit = 86400;
            break;
        default:
            return false;
        }
    }
    if (n < 0 || n > CTL_DURATION_MAX_S / unit) {
        return false;
    }
    *seconds = n * unit;
    return true;
}

const char *ctl_time(int64_t unix_s, char buf[24]) {
    if (unix_s == 0) {
        return "-";
    }
    time_t t = (time_t)unix_s;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(buf, 24, "%Y-%m-%d %H:%M:%SZ", &tm) == 0) {
        snprintf(buf, 24, "%lld", (long long)unix_s);
    }
    return buf;
}
