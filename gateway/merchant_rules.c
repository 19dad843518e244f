/* merchant_rules.c -- the shapes of the merchant settings record's values and the backoff of
 * its pushes (merchant_rules.h). */
#include "merchant_rules.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>

#define TIME_ZONE_FIELD "settings.time_zone"
#define CURRENCY_FIELD "settings.currency"
#define LOCALE_FIELD "settings.locale"

status_t merchant_check_time_zone(const char *tz) {
    size_t n = strlen(tz);
    if (n == 0 || n > MERCHANT_TIME_ZONE_MAX) {
        return status_invalid_field(TIME_ZONE_FIELD, "1..%d characters", MERCHANT_TIME_ZONE_MAX);
    }
    for (const char *p = tz; *p; p++) {
        if (!isalnum((unsigned char)*p) && strchr("/_+-", *p) == NULL) {
            return status_invalid_field(TIME_ZONE_FIELD, "not an IANA time zone");
        }
    }
    return status_ok();
}

status_t merchant_check_currency(const char *currency) {
    size_t n = strlen(currency);
    if (n == 0) {
        return status_ok();
    }
    bool letters = n == MERCHANT_CURRENCY_LEN;
    for (size_t i = 0; letters && i < n; i++) {
        letters = currency[i] >= 'A' && currency[i] <= 'Z';
    }
    return letters ? status_ok()
                   : status_invalid_field(CURRENCY_FIELD,
                                          "an ISO 4217 code: three capital letters (\"SGD\")");
}

static bool all_of(const char *s, size_t n, int (*is)(int)) {
    for (size_t i = 0; i < n; i++) {
        if (!is((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

/* Where a subtag may stand, in the order BCP 47 allows them. */
enum { AT_SCRIPT, AT_REGION, AT_VARIANT, AT_EXTENSION, AT_PRIVATE };

/* Checks and re-cases one subtag s[0..n) (not the first) given what came before; *at moves on. */
static bool locale_subtag(char *s, size_t n, int *at, bool *after_singleton) {
    if (n == 0 || n > 8 || !all_of(s, n, isalnum)) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        s[i] = (char)tolower((unsigned char)s[i]);
    }
    if (*at == AT_PRIVATE) {
        *after_singleton = false;
        return true; /* x-... : any 1..8 alphanumerics */
    }
    if (*after_singleton) {
        *after_singleton = false;
        return n >= 2;
    }
    if (n == 1) { /* a singleton starts an extension, or private use with x */
        *at = s[0] == 'x' ? AT_PRIVATE : AT_EXTENSION;
        *after_singleton = true;
        return true;
    }
    if (*at == AT_EXTENSION) {
        return n >= 2;
    }
    if (*at <= AT_SCRIPT && n == 4 && all_of(s, n, isalpha)) {
        s[0] = (char)toupper((unsigned char)s[0]);
        *at = AT_REGION;
        return true;
    }
    if (*at <= AT_REGION &&
        ((n == 2 && all_of(s, n, isalpha)) || (n == 3 && all_of(s, n, isdigit)))) {
        s[0] = (char)toupper((unsigned char)s[0]);
        s[1] = (char)toupper((unsigned char)s[1]);
        *at = AT_VARIANT;
        return true;
    }
    if ((n >= 5) || (n == 4 && isdigit((unsigned char)s[0]))) {
        *at = AT_VARIANT;
        return true;
    }
    return false;
}

status_t merchant_normalize_locale(const char *locale, char *out) {
    size_t n = strlen(locale);
    out[0] = '\0';
    if (n == 0) {
        return status_ok();
    }
    if (n > MERCHANT_LOCALE_MAX) {
        return status_invalid_field(LOCALE_FIELD, "at most %d characters", MERCHANT_LOCALE_MAX);
    }
    char buf[MERCHANT_LOCALE_MAX + 1];
    memcpy(buf, locale, n + 1);
    /* The language: 2..3 letters. */
    size_t lang = strcspn(buf, "-");
    bool ok = lang >= 2 && lang <= 3 && all_of(buf, lang, isalpha);
    for (size_t i = 0; ok && i < lang; i++) {
        buf[i] = (char)tolower((unsigned char)buf[i]);
    }
    int at = AT_SCRIPT;
    bool after_singleton = false;
    for (size_t pos = lang; ok && buf[pos] == '-';) {
        size_t start = pos + 1, len = strcspn(buf + start, "-");
        ok = locale_subtag(buf + start, len, &at, &after_singleton);
        pos = start + len;
    }
    if (!ok || after_singleton) {
        return status_invalid_field(LOCALE_FIELD,
                                    "a BCP 47 language tag (\"en-SG\", \"zh-Hans-CN\")");
    }
    memcpy(out, buf, n + 1);
    return status_ok();
}

int64_t merchant_push_backoff_s(int32_t attempts) {
    int64_t s = 1;
    for (int32_t i = 1; i < attempts && s < MERCHANT_PUSH_BACKOFF_MAX_S; i++) {
        s *= 2;
    }
    return s < MERCHANT_PUSH_BACKOFF_MAX_S ? s : MERCHANT_PUSH_BACKOFF_MAX_S;
}
